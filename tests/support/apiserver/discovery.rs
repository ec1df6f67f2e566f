//! The resource model (built-in table) and the discovery documents built from it.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Verbs every resource here supports.
pub const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One resource as served at one group/version.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource.
    pub has_status: bool,
    /// Has a `/log` subresource (pods).
    pub has_log: bool,
    /// Name of the CRD that defines it; `None` for built-ins.
    pub crd: Option<String>,
    /// The CRD version's `openAPIV3Schema`, used for pruning.
    pub schema: Option<Value>,
}

impl ResourceInfo {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// `(group, plural)` of core resources, e.g. `is("", "pods")`.
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }

    /// Whether objects of this resource carry `metadata.generation`.
    pub fn tracks_generation(&self) -> bool {
        self.is_custom()
            || matches!(
                self.group.as_str(),
                "apps" | "batch" | "networking.k8s.io" | "policy" | "apiextensions.k8s.io"
            )
    }

    fn discovery_entries(&self) -> Vec<Value> {
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": VERBS,
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            entry["categories"] = json!(self.categories);
        }
        let mut out = vec![entry];
        if self.has_status {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if self.has_log {
            out.push(json!({
                "name": format!("{}/log", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get"],
            }));
        }
        out
    }
}

/// (group, version, plural, kind, namespaced, short names, has status, in category `all`).
type Builtin = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    bool,
);

/// The built-in resources.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    ("", "v1", "namespaces", "Namespace", false, &["ns"], true, false),
    ("", "v1", "secrets", "Secret", true, &[], false, false),
    ("", "v1", "configmaps", "ConfigMap", true, &["cm"], false, false),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"], false, false),
    ("", "v1", "services", "Service", true, &["svc"], true, true),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, &["pvc"], true, false),
    ("", "v1", "persistentvolumes", "PersistentVolume", false, &["pv"], true, false),
    ("", "v1", "pods", "Pod", true, &["po"], true, true),
    ("", "v1", "events", "Event", true, &["ev"], false, false),
    ("", "v1", "endpoints", "Endpoints", true, &["ep"], false, false),
    ("apps", "v1", "deployments", "Deployment", true, &["deploy"], true, true),
    ("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"], true, true),
    ("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true, true),
    ("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"], true, true),
    ("batch", "v1", "jobs", "Job", true, &[], true, true),
    ("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true, true),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[], false, false),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[], false, false),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, &["crd", "crds"], true, false),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", false, &["sc"], false, false),
    ("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, &[], false, false),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true, &["ing"], true, false),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"], false, false),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"], true, false),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false, false),
];

/// The built-in resource table.
pub fn builtin_resources() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, plural, kind, namespaced, short, status, all)| ResourceInfo {
                group: group.into(),
                version: version.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                kind: kind.into(),
                list_kind: format!("{kind}List"),
                namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: if all { vec!["all".into()] } else { vec![] },
                has_status: status,
                has_log: plural == "pods",
                crd: None,
                schema: None,
            },
        )
        .collect()
}

/// Kubernetes version priority: GA > beta > alpha > other; higher numbers first.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u64>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    for (prefix, tier) in [("beta", 2u8), ("alpha", 1u8)] {
        if let Some(n) = tail.strip_prefix(prefix) {
            if let Ok(minor) = n.parse::<u64>() {
                return (tier, major, minor);
            }
        }
    }
    (0, 0, 0)
}

/// A group with its versions (highest priority first) and its preferred version.
pub struct GroupView {
    pub name: String,
    pub versions: Vec<String>,
    pub preferred: String,
}

/// Groups (without the core group) in a stable order: built-in groups first, then custom ones.
/// `preferred` maps a group to the version it should prefer (CRD storage versions).
pub fn groups(resources: &[ResourceInfo], preferred: &BTreeMap<String, String>) -> Vec<GroupView> {
    let mut out: Vec<GroupView> = Vec::new();
    for res in resources.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|g| g.name == res.group) {
            Some(g) => {
                if !g.versions.contains(&res.version) {
                    g.versions.push(res.version.clone());
                }
            }
            None => out.push(GroupView {
                name: res.group.clone(),
                versions: vec![res.version.clone()],
                preferred: String::new(),
            }),
        }
    }
    for g in &mut out {
        g.versions
            .sort_by(|a, b| version_priority(b).cmp(&version_priority(a)).then(a.cmp(b)));
        g.preferred = preferred
            .get(&g.name)
            .filter(|v| g.versions.contains(v))
            .cloned()
            .unwrap_or_else(|| g.versions[0].clone());
    }
    out
}

fn group_json(g: &GroupView) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{}/{}", g.name, v), "version": v}))
        .collect();
    json!({
        "name": g.name,
        "versions": versions,
        "preferredVersion": {"groupVersion": format!("{}/{}", g.name, g.preferred), "version": g.preferred},
    })
}

/// `/version`.
pub fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-k10-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn api_versions_doc(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`.
pub fn group_list_doc(groups: &[GroupView]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(group_json).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`.
pub fn group_doc(group: &GroupView) -> Value {
    let mut doc = group_json(group);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    doc
}

/// `/api/v1` or `/apis/<group>/<version>`: `None` if nothing is served there.
pub fn resource_list_doc(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let entries: Vec<Value> = resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .flat_map(|r| r.discovery_entries())
        .collect();
    if entries.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }))
}
