//! What the product may do in a cluster: its roles, rule by rule, each with the step that needs
//! it. `kubectl k10 install` applies them and `charts/k10` renders the same (a test compares);
//! `tests/rbac_rules.txt` is the reviewed list a test holds them to, so a rule cannot widen
//! unnoticed.
//!
//! Three roles, all bound to the ServiceAccount `kasten-io/k10`:
//! * ClusterRole `k10` — policy runs, retention, maintenance, DR: reads what a backup captures
//!   (named resources only: no subresource such as `pods/exec`, `pods/attach`,
//!   `serviceaccounts/token` or `nodes/proxy` matches), cuts and removes CSI snapshots, and
//!   keeps the catalog (restore points). It writes nothing else outside `kasten-io`: no Secret,
//!   no Job, no Pod, no RBAC object.
//! * Role `k10` in `kasten-io` — the product's own namespace: its Secrets, claims, Jobs,
//!   profiles and policies, Events, and the controller's leader Lease.
//! * ClusterRole `k10-applications` — `restore` and `restorepoint verify`, and data movers beside live
//!   volumes: creates and deletes the kinds a restore recreates, in any namespace. This is the
//!   widest need (creating Pods or workloads in a namespace runs code as any ServiceAccount
//!   there); it is a role of its own so that a team can bind it elsewhere. It grants no RBAC
//!   object: Roles and RoleBindings are restored by an administrator (see the README).
//!
//! Custom resources are reached through ClusterRole `k10-custom-resources`, an aggregated role:
//! every ClusterRole labelled [`AGGREGATE_LABEL`]`: "true"` adds its rules (a platform team grants
//! `get, list` for backups and `create, delete` for restores of its own API groups).

use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;

use crate::api::K10_NAMESPACE;
use crate::k8s::jobs::SERVICE_ACCOUNT;

/// The label that adds a ClusterRole's rules to `k10-custom-resources`.
pub const AGGREGATE_LABEL: &str = "k10.kasten.io/aggregate-to-k10";
pub const APPLICATIONS_ROLE: &str = "k10-applications";
pub const CUSTOM_RESOURCES_ROLE: &str = "k10-custom-resources";

/// One rule and the step that needs it.
pub struct Grant {
    pub groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub why: &'static str,
}

const READ: &[&str] = &["get", "list"];

/// The namespaced kinds a backup captures (the built-in ones; custom resources by aggregation).
pub const CAPTURED: &[(&str, &[&str])] = &[
    ("", &["configmaps", "limitranges", "persistentvolumeclaims", "pods", "podtemplates", "replicationcontrollers", "resourcequotas", "secrets", "serviceaccounts", "services"]),
    ("apps", &["controllerrevisions", "daemonsets", "deployments", "replicasets", "statefulsets"]),
    ("autoscaling", &["horizontalpodautoscalers"]),
    ("batch", &["cronjobs", "jobs"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
    ("policy", &["poddisruptionbudgets"]),
    ("rbac.authorization.k8s.io", &["rolebindings", "roles"]),
];

/// ClusterRole `k10`: policy runs, retention, maintenance and DR, across namespaces.
pub const CLUSTER: &[Grant] = &[
    Grant { groups: &[""], resources: CAPTURED[0].1, verbs: READ, why: "capturing an application (core kinds); reading the product's Secrets and its Jobs' pods" },
    Grant { groups: &["apps"], resources: CAPTURED[1].1, verbs: READ, why: "capturing an application (workloads)" },
    Grant { groups: &["autoscaling"], resources: CAPTURED[2].1, verbs: READ, why: "capturing an application" },
    Grant { groups: &["batch"], resources: CAPTURED[3].1, verbs: READ, why: "capturing an application; following the product's Jobs; telling a live run from an interrupted one" },
    Grant { groups: &["batch"], resources: &["jobs"], verbs: &["watch"], why: "waiting for the product's Jobs (data movers beside live volumes too) by watch" },
    Grant { groups: &["networking.k8s.io"], resources: CAPTURED[4].1, verbs: READ, why: "capturing an application" },
    Grant { groups: &["policy"], resources: CAPTURED[5].1, verbs: READ, why: "capturing an application" },
    Grant { groups: &["rbac.authorization.k8s.io"], resources: CAPTURED[6].1, verbs: READ, why: "capturing an application's Roles and RoleBindings (read only)" },
    Grant { groups: &[""], resources: &["namespaces"], verbs: READ, why: "selecting a policy's namespaces; a namespace's uid names its repository" },
    Grant { groups: &["storage.k8s.io"], resources: &["storageclasses"], verbs: &["get"], why: "finding a claim's CSI driver" },
    Grant { groups: &["apiextensions.k8s.io"], resources: &["customresourcedefinitions"], verbs: &["get"], why: "capturing the definition of captured custom resources" },
    Grant { groups: &["snapshot.storage.k8s.io"], resources: &["volumesnapshotclasses"], verbs: READ, why: "finding a claim's VolumeSnapshotClass" },
    Grant { groups: &["snapshot.storage.k8s.io"], resources: &["volumesnapshots"], verbs: &["get", "list", "create", "delete"], why: "cutting a CSI snapshot of a volume, exposing it in kasten-io; removing what an interrupted run left" },
    Grant { groups: &["snapshot.storage.k8s.io"], resources: &["volumesnapshotcontents"], verbs: &["get", "list", "create", "patch", "delete"], why: "moving a snapshot into kasten-io (import its handle, set the original to Retain, delete it)" },
    Grant { groups: &["apps.kio.kasten.io"], resources: &["restorepoints", "restorepointcontents"], verbs: &["get", "list", "create", "delete"], why: "the catalog: recording restore points, retention, DR" },
    Grant { groups: &["actions.kio.kasten.io"], resources: &["runactions"], verbs: &["get", "list", "watch", "create"], why: "RunActions (cluster-scoped): the controller runs them, `policy run` creates one" },
    Grant { groups: &["actions.kio.kasten.io"], resources: &["runactions/status"], verbs: &["patch", "update"], why: "a RunAction's state, error and restore points" },
];

/// Role `k10` in kasten-io: the product's own namespace.
pub const OWN_NAMESPACE: &[Grant] = &[
    Grant { groups: &[""], resources: &["secrets"], verbs: &["create", "delete"], why: "profile keys, repository passwords, the DR passphrase, data mover Secrets" },
    Grant { groups: &[""], resources: &["configmaps"], verbs: &["create", "update", "delete"], why: "claims (creating a repository once; a stale claim is taken over by a conditional replace)" },
    Grant { groups: &[""], resources: &["persistentvolumeclaims"], verbs: &["create", "delete"], why: "clones of CSI snapshots for the data movers" },
    Grant { groups: &[""], resources: &["events"], verbs: &["list", "create"], why: "why a Job's pod cannot start; the controller's Events on profiles and policies" },
    Grant { groups: &[""], resources: &["pods/log"], verbs: &["get"], why: "a Job's output" },
    Grant { groups: &["batch"], resources: &["jobs"], verbs: &["create", "patch", "delete", "watch"], why: "control Jobs and data movers (created suspended, resumed once what they own exists); the controller follows the runs it starts" },
    Grant { groups: &["config.kio.kasten.io"], resources: &["profiles", "policies"], verbs: &["get", "list", "watch", "create", "patch", "update", "delete"], why: "`profile`, `policy`, DR restore; the controller watches them" },
    Grant { groups: &["config.kio.kasten.io"], resources: &["profiles/status", "policies/status"], verbs: &["patch", "update"], why: "validation results and the last run of a policy" },
    Grant { groups: &["coordination.k8s.io"], resources: &["leases"], verbs: &["get", "create", "update"], why: "electing the controller's leader among its replicas" },
];

/// ClusterRole `k10-applications`: restore, verify, and data movers beside live volumes.
pub const APPLICATIONS: &[Grant] = &[
    Grant { groups: &[""], resources: &["configmaps", "limitranges", "persistentvolumeclaims", "pods", "podtemplates", "replicationcontrollers", "resourcequotas", "secrets", "serviceaccounts", "services"], verbs: &["create", "delete"], why: "recreating an application (`--existing replace` deletes first); a data mover's Secret beside a live volume" },
    Grant { groups: &["apps"], resources: &["daemonsets", "deployments", "replicasets", "statefulsets"], verbs: &["create", "delete"], why: "recreating workloads" },
    Grant { groups: &["autoscaling"], resources: &["horizontalpodautoscalers"], verbs: &["create", "delete"], why: "recreating an application" },
    Grant { groups: &["batch"], resources: &["cronjobs", "jobs"], verbs: &["create", "delete"], why: "recreating an application; data movers in application namespaces" },
    Grant { groups: &["batch"], resources: &["jobs"], verbs: &["patch"], why: "resuming a data mover once its Secret exists" },
    Grant { groups: &["networking.k8s.io"], resources: &["ingresses", "networkpolicies"], verbs: &["create", "delete"], why: "recreating an application" },
    Grant { groups: &["policy"], resources: &["poddisruptionbudgets"], verbs: &["create", "delete"], why: "recreating an application" },
    Grant { groups: &[""], resources: &["namespaces"], verbs: &["create", "delete"], why: "a restored namespace; verify's throw-away namespace" },
    Grant { groups: &["apiextensions.k8s.io"], resources: &["customresourcedefinitions"], verbs: &["create"], why: "the definitions of restored custom resources" },
    Grant { groups: &[""], resources: &["events"], verbs: &["list"], why: "why a data mover's pod cannot start" },
    Grant { groups: &[""], resources: &["pods/log"], verbs: &["get"], why: "a data mover's output" },
];

fn rules(grants: &[Grant]) -> Vec<PolicyRule> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    grants
        .iter()
        .map(|g| PolicyRule {
            api_groups: Some(strings(g.groups)),
            resources: Some(strings(g.resources)),
            verbs: strings(g.verbs),
            ..Default::default()
        })
        .collect()
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        ..Default::default()
    }
}

fn subject() -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: SERVICE_ACCOUNT.into(),
        namespace: Some(K10_NAMESPACE.into()),
        ..Default::default()
    }]
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

pub fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(SERVICE_ACCOUNT, None),
        rules: Some(rules(CLUSTER)),
        ..Default::default()
    }
}

pub fn own_namespace_role() -> Role {
    Role {
        metadata: meta(SERVICE_ACCOUNT, Some(K10_NAMESPACE)),
        rules: Some(rules(OWN_NAMESPACE)),
    }
}

pub fn applications_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(APPLICATIONS_ROLE, None),
        rules: Some(rules(APPLICATIONS)),
        ..Default::default()
    }
}

/// The aggregated role of custom resources (its rules are the cluster's to fill in).
pub fn custom_resources_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(CUSTOM_RESOURCES_ROLE, None),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([(AGGREGATE_LABEL.to_string(), "true".to_string())].into()),
                ..Default::default()
            }]),
        }),
        rules: None,
    }
}

/// Every RBAC object, as JSON documents: the roles, then their bindings to `kasten-io/k10`.
pub fn objects() -> Vec<serde_json::Value> {
    let binding = |name: &str| ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: role_ref("ClusterRole", name),
        subjects: Some(subject()),
    };
    let values = [
        serde_json::to_value(cluster_role()),
        serde_json::to_value(own_namespace_role()),
        serde_json::to_value(applications_role()),
        serde_json::to_value(custom_resources_role()),
        serde_json::to_value(binding(SERVICE_ACCOUNT)),
        serde_json::to_value(RoleBinding {
            metadata: meta(SERVICE_ACCOUNT, Some(K10_NAMESPACE)),
            role_ref: role_ref("Role", SERVICE_ACCOUNT),
            subjects: Some(subject()),
        }),
        serde_json::to_value(binding(APPLICATIONS_ROLE)),
        serde_json::to_value(binding(CUSTOM_RESOURCES_ROLE)),
    ];
    values.into_iter().map(|v| v.expect("RBAC objects serialize")).collect()
}

/// The rules of every role, one line per rule (`Kind/name group resources verbs`): the form of
/// the reviewed list `tests/rbac_rules.txt`.
pub fn rule_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for (role, grants) in [("ClusterRole/k10", CLUSTER), ("Role/kasten-io/k10", OWN_NAMESPACE), ("ClusterRole/k10-applications", APPLICATIONS)] {
        for g in grants {
            let group = if g.groups == [""] { "core".to_string() } else { g.groups.join(",") };
            lines.push(format!("{role} {group} {} {}", g.resources.join(","), g.verbs.join(",")));
        }
    }
    lines
}
