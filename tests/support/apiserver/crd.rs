//! CustomResourceDefinitions: validation, the resources they serve, their status, and pruning
//! of custom objects against the version's schema.

use super::discovery::ResourceInfo;
use super::errors::{ApiError, ApiResult};
use super::now_rfc3339;
use serde_json::{json, Value};

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

pub fn group_of(crd: &Value) -> Option<String> {
    crd["spec"]["group"].as_str().map(str::to_string)
}

/// The version marked `storage: true`.
pub fn storage_version(crd: &Value) -> Option<String> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .map(str::to_string)
}

/// Refuses (422) a CRD the real API would refuse for the reasons the stand-in can check.
pub fn validate(crd: &Value) -> ApiResult<()> {
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    let invalid = |field: &str, detail: String| {
        ApiError::invalid(
            CRD_GROUP,
            CRD_KIND,
            name,
            field,
            "FieldValueInvalid",
            &detail,
        )
    };
    let group = crd["spec"]["group"].as_str().unwrap_or("");
    if group.is_empty() {
        return Err(invalid("spec.group", "Required value".into()));
    }
    if !group.contains('.') {
        return Err(invalid(
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or("");
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or("");
    if plural.is_empty() {
        return Err(invalid("spec.names.plural", "Required value".into()));
    }
    if kind.is_empty() {
        return Err(invalid("spec.names.kind", "Required value".into()));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match crd["spec"]["scope"].as_str() {
        Some("Namespaced") | Some("Cluster") => {}
        other => {
            return Err(invalid(
                "spec.scope",
                format!(
                    "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                    other.unwrap_or("")
                ),
            ))
        }
    }
    let versions = crd["spec"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"].as_bool() == Some(true))
        .count();
    if storage != 1 {
        return Err(invalid(
            "spec.versions",
            format!("Invalid value: must have exactly one version marked as storage version (found {storage})"),
        ));
    }
    Ok(())
}

/// The resources a CRD serves: one per served version.
pub fn resources_for(crd: &Value) -> Vec<ResourceInfo> {
    let name = crd["metadata"]["name"].as_str().unwrap_or("").to_string();
    let group = crd["spec"]["group"].as_str().unwrap_or("").to_string();
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or("").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let plural = names["plural"].as_str().unwrap_or("").to_string();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = crd["spec"]["scope"].as_str() == Some("Namespaced");
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| ResourceInfo {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("").to_string(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            has_status: v["subresources"].get("status").is_some(),
            has_log: false,
            crd: Some(name.clone()),
            schema: v["schema"].get("openAPIV3Schema").cloned(),
        })
        .collect()
}

/// Sets the status the real apiextensions controller would: names accepted, established.
pub fn set_status(crd: &mut Value, previous: Option<&Value>) {
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or("");
    let mut accepted = names.clone();
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(kind.to_lowercase());
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!("{kind}List"));
    }
    let since = previous
        .and_then(|p| p["status"]["conditions"].get(0))
        .and_then(|c| c.get("lastTransitionTime"))
        .cloned()
        .unwrap_or_else(|| json!(now_rfc3339()));
    let mut stored: Vec<Value> = previous
        .and_then(|p| p["status"]["storedVersions"].as_array().cloned())
        .unwrap_or_default();
    if let Some(v) = storage_version(crd) {
        if !stored.contains(&json!(v)) {
            stored.push(json!(v));
        }
    }
    crd["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": since},
        ],
        "storedVersions": stored,
    });
}

/// Drops fields the version's schema does not declare. With `strict`, a dropped field is a 400.
pub fn prune(res: &ResourceInfo, obj: &mut Value, strict: bool) -> ApiResult<()> {
    let Some(schema) = &res.schema else {
        return Ok(());
    };
    let mut pruned = Vec::new();
    if let Value::Object(map) = obj {
        let props = &schema["properties"];
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.get(&key) {
                Some(child) => {
                    if let Some(v) = map.get_mut(&key) {
                        prune_value(v, child, &key, &mut pruned);
                    }
                }
                None if preserves_unknown(schema) => {}
                None => {
                    map.remove(&key);
                    pruned.push(key);
                }
            }
        }
    }
    if strict && !pruned.is_empty() {
        let list: Vec<String> = pruned
            .iter()
            .map(|p| format!("unknown field \"{p}\""))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    Ok(())
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn prune_value(value: &mut Value, schema: &Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if schema["x-kubernetes-embedded-resource"].as_bool() == Some(true)
                && preserves_unknown(schema)
            {
                return;
            }
            if let Some(additional) = schema.get("additionalProperties") {
                if additional.is_object() {
                    for (k, v) in map.iter_mut() {
                        prune_value(v, additional, &format!("{path}.{k}"), pruned);
                    }
                }
                return;
            }
            let props = &schema["properties"];
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let embedded_meta = schema["x-kubernetes-embedded-resource"].as_bool()
                    == Some(true)
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                match props.get(&key) {
                    Some(child) => {
                        if let Some(v) = map.get_mut(&key) {
                            prune_value(v, child, &format!("{path}.{key}"), pruned);
                        }
                    }
                    None if embedded_meta || preserves_unknown(schema) => {}
                    None => {
                        map.remove(&key);
                        pruned.push(format!("{path}.{key}"));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_value(item, item_schema, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}
