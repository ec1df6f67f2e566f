//! A minimal OpenAPI v3: just enough for kubectl to see that the server validates fields
//! itself (`fieldValidation` on each PATCH), so it sends `fieldValidation=Strict` and does
//! no client-side schema validation. PATCH operations do not list strategic merge patch, so
//! `kubectl apply` computes its patches from its own compiled-in types, as with an old server.
//! There are no schemas: `kubectl explain` does not work.

use super::discovery::ResourceInfo;
use serde_json::{json, Map, Value};

/// `api/v1` or `apis/<group>/<version>`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per served group/version.
pub fn index(resources: &[ResourceInfo]) -> Value {
    let mut paths = Map::new();
    for res in resources {
        let path = gv_path(&res.group, &res.version);
        paths.entry(path.clone()).or_insert_with(
            || json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=standin")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<api/v1 | apis/g/v>`: `None` if nothing is served there.
pub fn group_version_doc(resources: &[ResourceInfo], group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    for res in resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let prefix = format!("/{}", gv_path(group, version));
        let item_path = if res.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", res.plural)
        } else {
            format!("{prefix}/{}/{{name}}", res.plural)
        };
        let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
        let body = |_: ()| json!({"schema": {"type": "object"}});
        paths.insert(
            item_path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", res.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version, "kind": res.kind},
                    "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
                    "requestBody": {"content": {
                        "application/apply-patch+yaml": body(()),
                        "application/json-patch+json": body(()),
                        "application/merge-patch+json": body(()),
                    }},
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (k10 stand-in)", "version": "v1.34.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
