//! Authentication and RBAC authorization, as kube-apiserver does them for the requests the
//! product makes:
//! * A bearer token names the caller: the kubeconfig's `standin-token` is the cluster admin
//!   (`system:masters`); a token the stand-in kubelet minted for a pod is its ServiceAccount
//!   (`system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
//!   `system:serviceaccounts:<ns>`, `system:authenticated`). An unknown token is 401. kubectl
//!   sends no credentials over plain HTTP, which the stand-in serves: a request without any is the
//!   admin's, as through `kubectl proxy`. Pod tokens stay valid while the server runs (a real
//!   bound token ends with its pod).
//! * A ServiceAccount's request is allowed when a rule of a ClusterRole bound to it by a
//!   ClusterRoleBinding, or of a Role or ClusterRole bound to it by a RoleBinding in the request's
//!   namespace, matches: the verb (or `*`), the API group (or `*`), the resource (`*` matches
//!   every resource and subresource, `*/sub` every resource's `sub`, `res/sub` only that), and,
//!   when the rule lists `resourceNames`, the object's name (so never a list, a watch or a
//!   create). Otherwise 403 with the real message. Discovery, OpenAPI, version and health are
//!   open to every authenticated caller (`system:discovery`).
//! * An aggregated ClusterRole (`aggregationRule` with `matchLabels` selectors) has the rules of
//!   the ClusterRoles its selectors match, as the aggregation controller fills them in (at once
//!   here; `matchExpressions` are not modelled).
//! * Not modelled: users and groups other than the above, non-resource URL rules, escalation
//!   checks on writing RBAC objects, impersonation.

use serde_json::Value;

use super::errors::ApiError;
use super::store::State;

/// The bearer token of the stand-in's kubeconfig: the cluster admin.
pub const ADMIN_TOKEN: &str = "standin-token";

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    ServiceAccount { namespace: String, name: String },
}

impl Caller {
    fn user(&self) -> String {
        match self {
            Caller::Admin => "standin".into(),
            Caller::ServiceAccount { namespace, name } => format!("system:serviceaccount:{namespace}:{name}"),
        }
    }

    fn groups(&self) -> Vec<String> {
        match self {
            Caller::Admin => vec!["system:masters".into(), "system:authenticated".into()],
            Caller::ServiceAccount { namespace, .. } => vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// What a request does to which resource.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// The caller of a request with these headers' `Authorization`.
pub fn authenticate(state: &State, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let token = authorization.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    match token {
        Some(ADMIN_TOKEN) => Ok(Caller::Admin),
        Some(t) => state.tokens.get(t).cloned().ok_or_else(ApiError::unauthorized),
        // kubectl sends no credentials over plain HTTP, which the stand-in serves: a request
        // without any is the admin's (kubectl's and the tests'), as through a local proxy.
        None => Ok(Caller::Admin),
    }
}

/// Allows the request or says, as kube-apiserver does, who may not do what.
pub fn authorize(state: &State, caller: &Caller, req: &Request) -> Result<(), ApiError> {
    if caller.groups().iter().any(|g| g == "system:masters") || rules_for(state, caller, req.namespace).iter().any(|r| matches(r, req)) {
        return Ok(());
    }
    let resource = match req.subresource {
        Some(sub) => format!("{}/{sub}", req.resource),
        None => req.resource.to_string(),
    };
    let scope = match req.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let why = format!("User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}", caller.user(), req.verb, req.group);
    Err(ApiError::forbidden(req.group, req.resource, req.name, &why))
}

/// The RBAC objects of a kind (in a namespace).
fn objects(state: &State, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    state
        .find_resource("rbac.authorization.k8s.io", plural)
        .map(|res| state.select(&res, namespace, &Default::default()).into_iter().map(|(_, v)| v).collect())
        .unwrap_or_default()
}

/// Every rule that applies to the caller in `namespace` (cluster-wide ones included).
fn rules_for(state: &State, caller: &Caller, namespace: Option<&str>) -> Vec<Value> {
    let (user, groups) = (caller.user(), caller.groups());
    let bound = |binding: &Value| {
        binding["subjects"].as_array().into_iter().flatten().any(|s| match s["kind"].as_str() {
            Some("ServiceAccount") => {
                matches!(caller, Caller::ServiceAccount { namespace, name } if s["name"] == name.as_str() && s["namespace"] == namespace.as_str())
            }
            Some("User") => s["name"] == user.as_str(),
            Some("Group") => groups.iter().any(|g| s["name"] == g.as_str()),
            _ => false,
        })
    };
    let role = |kind: &str, name: &str, ns: &str| -> Vec<Value> {
        match kind {
            "ClusterRole" => state
                .get_object("rbac.authorization.k8s.io", "clusterroles", "", name)
                .map(|r| cluster_role_rules(state, r))
                .unwrap_or_default(),
            _ => state
                .get_object("rbac.authorization.k8s.io", "roles", ns, name)
                .and_then(|r| r["rules"].as_array().cloned())
                .unwrap_or_default(),
        }
    };
    let mut rules = Vec::new();
    for binding in objects(state, "clusterrolebindings", None) {
        if bound(&binding) && binding["roleRef"]["kind"] == "ClusterRole" {
            rules.extend(role("ClusterRole", binding["roleRef"]["name"].as_str().unwrap_or(""), ""));
        }
    }
    if let Some(ns) = namespace {
        for binding in objects(state, "rolebindings", Some(ns)) {
            if bound(&binding) {
                rules.extend(role(binding["roleRef"]["kind"].as_str().unwrap_or(""), binding["roleRef"]["name"].as_str().unwrap_or(""), ns));
            }
        }
    }
    rules
}

/// A ClusterRole's rules. An aggregated one (`aggregationRule`) has the rules of every
/// ClusterRole whose labels match one of its `clusterRoleSelectors` (`matchLabels`), as the
/// cluster-role aggregation controller writes them into it (here: at each request, so without
/// the controller's delay).
fn cluster_role_rules(state: &State, role: &Value) -> Vec<Value> {
    let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() else {
        return role["rules"].as_array().cloned().unwrap_or_default();
    };
    let name = role["metadata"]["name"].as_str().unwrap_or("");
    let selected = |labels: &Value| {
        selectors.iter().any(|sel| {
            sel["matchLabels"].as_object().is_some_and(|want| !want.is_empty() && want.iter().all(|(k, v)| &labels[k] == v))
        })
    };
    objects(state, "clusterroles", None)
        .into_iter()
        .filter(|r| r["metadata"]["name"].as_str() != Some(name) && selected(&r["metadata"]["labels"]))
        .flat_map(|r| r["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Whether one PolicyRule allows the request.
fn matches(rule: &Value, req: &Request) -> bool {
    let list = |field: &str| -> Vec<&str> { rule[field].as_array().into_iter().flatten().filter_map(Value::as_str).collect() };
    let verbs = list("verbs");
    let groups = list("apiGroups");
    let resources = list("resources");
    let names = list("resourceNames");
    let resource_ok = resources.iter().any(|r| match req.subresource {
        None => *r == "*" || *r == req.resource,
        Some(sub) => *r == "*" || *r == format!("{}/{sub}", req.resource) || *r == format!("*/{sub}"),
    });
    (verbs.contains(&"*") || verbs.contains(&req.verb))
        && (groups.contains(&"*") || groups.contains(&req.group))
        && resource_ok
        && (names.is_empty() || req.name.is_some_and(|n| names.contains(&n)))
}
