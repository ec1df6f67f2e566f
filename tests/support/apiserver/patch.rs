//! Patch formats: JSON patch, merge patch, the strategic-merge subset kubectl uses, and the
//! field bookkeeping behind server-side apply.

use serde_json::{Map, Value};

/// The patch types the server accepts, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            _ => None,
        }
    }
}

/// RFC 6902. `Err` carries a message for a 422.
pub fn apply_json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &ops).map_err(|e| e.to_string())
}

/// RFC 7386.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Strategic merge patch, as far as kubectl uses it: merge-patch semantics plus the directives
/// `$patch`, `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
pub fn apply_strategic_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = Value::Object(without_directives(patch_map));
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target_map) = target else {
        return;
    };
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        if value.is_null() {
            target_map.remove(key);
            continue;
        }
        let order = patch_map.get(&format!("$setElementOrder/{key}"));
        let deletions = patch_map.get(&format!("$deleteFromPrimitiveList/{key}"));
        match value {
            Value::Array(items) => {
                let current = target_map.remove(key);
                let merged = merge_list(key, current, items, order, deletions);
                target_map.insert(key.clone(), merged);
            }
            Value::Object(_) => {
                let mut slot = target_map.remove(key).unwrap_or(Value::Null);
                apply_strategic_patch(&mut slot, value);
                if !slot.is_null() {
                    target_map.insert(key.clone(), slot);
                }
            }
            _ => {
                target_map.insert(key.clone(), value.clone());
            }
        }
    }
    // Lists that only appear in a directive (an order change, or deletions only).
    for (key, order) in patch_map {
        if let Some(list) = key.strip_prefix("$setElementOrder/") {
            if !patch_map.contains_key(list) {
                let current = target_map.remove(list);
                let deletions = patch_map.get(&format!("$deleteFromPrimitiveList/{list}"));
                target_map.insert(
                    list.to_string(),
                    merge_list(list, current, &[], Some(order), deletions),
                );
            }
        }
        if let Some(list) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if !patch_map.contains_key(list)
                && !patch_map.contains_key(&format!("$setElementOrder/{list}"))
            {
                if let (Some(Value::Array(current)), Value::Array(del)) =
                    (target_map.get_mut(list), order)
                {
                    current.retain(|v| !del.contains(v));
                }
            }
        }
    }
    if let Some(Value::Array(retain)) = patch_map.get("$retainKeys") {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        target_map.retain(|k, _| keep.contains(&k.as_str()));
    }
}

fn without_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The patch merge key of the well-known merging lists of built-in kinds, by field name, if
/// the patch's items carry it: `containers`, `initContainers`, `env`, `volumes`, ... by `name`,
/// `volumeMounts` by `mountPath`, `ports` by `containerPort` (or `port`), `conditions` by
/// `type`, `ownerReferences` by `uid`. A real server takes these from the types' schemas.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let candidates: &[&'static str] = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "ports" => &["containerPort", "port"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        "topologySpreadConstraints" => &["topologyKey"],
        _ => &[],
    };
    candidates
        .iter()
        .copied()
        .find(|key| !items.is_empty() && items.iter().all(|item| item.get(*key).is_some()))
}

/// Merges a patched list. With `$setElementOrder` the list is merged by the key its entries
/// name (or by value for primitives) and put in that order. Without it, a well-known merging
/// list ([`merge_key`]) is merged item by item and `finalizers` is a union; any other list is
/// replaced by the patch.
fn merge_list(
    field: &str,
    current: Option<Value>,
    patch: &[Value],
    order: Option<&Value>,
    deletions: Option<&Value>,
) -> Value {
    let current = match current {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let deleted: Vec<Value> = match deletions {
        Some(Value::Array(d)) => d.clone(),
        _ => Vec::new(),
    };
    let Some(Value::Array(order)) = order else {
        let replace = patch
            .iter()
            .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"));
        let items: Vec<Value> = patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .cloned()
            .collect();
        if replace {
            return Value::Array(items);
        }
        if field == "finalizers" {
            let mut out = current;
            for item in items {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            out.retain(|v| !deleted.contains(v));
            return Value::Array(out);
        }
        let Some(key) = merge_key(field, patch) else {
            return Value::Array(items);
        };
        let mut out = current;
        for item in patch {
            let position = out.iter().position(|c| c.get(key) == item.get(key));
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (position, delete) {
                (Some(i), true) => {
                    out.remove(i);
                }
                (Some(i), false) => apply_strategic_patch(&mut out[i], item),
                (None, false) => out.push(item.clone()),
                (None, true) => {}
            }
        }
        return Value::Array(out);
    };
    // Primitive lists: ordered union, minus deletions.
    if order.iter().all(|v| !v.is_object()) {
        let mut out: Vec<Value> = order
            .iter()
            .filter(|v| !deleted.contains(v))
            .cloned()
            .collect();
        for v in current.iter().chain(patch.iter()) {
            if !out.contains(v) && !deleted.contains(v) {
                out.push(v.clone());
            }
        }
        return Value::Array(out);
    }
    // Lists of maps: the merge key is the one key of the order entries.
    let merge_key = order
        .iter()
        .find_map(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
        .unwrap_or_else(|| "name".to_string());
    let key_of = |v: &Value| v.get(&merge_key).cloned();
    let mut out = Vec::new();
    for entry in order {
        let Some(k) = key_of(entry) else { continue };
        let from_patch = patch.iter().find(|p| key_of(p).as_ref() == Some(&k));
        let from_current = current.iter().find(|c| key_of(c).as_ref() == Some(&k));
        if from_patch
            .and_then(|p| p.get("$patch"))
            .and_then(Value::as_str)
            == Some("delete")
        {
            continue;
        }
        let mut item = from_current.cloned().unwrap_or(Value::Null);
        if let Some(p) = from_patch {
            apply_strategic_patch(&mut item, p);
        }
        if !item.is_null() {
            out.push(item);
        }
    }
    // Items others added (not in the order) stay, unless the patch deletes them.
    for item in &current {
        let k = key_of(item);
        let in_order = order.iter().any(|o| key_of(o) == k);
        let deleted_by_patch = patch
            .iter()
            .any(|p| key_of(p) == k && p.get("$patch").and_then(Value::as_str) == Some("delete"));
        if !in_order && !deleted_by_patch {
            out.push(item.clone());
        }
    }
    Value::Array(out)
}

// ---------------------------------------------------------------------------------------------
// Server-side apply bookkeeping.

/// The part of an applied configuration that counts as owned fields: everything but
/// `apiVersion`, `kind` and the identifying metadata.
pub fn owned_fields(config: &Value) -> Value {
    let mut fields = config.clone();
    if let Some(map) = fields.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
                "generateName",
            ] {
                meta.remove(k);
            }
            if meta.is_empty() {
                map.remove("metadata");
            }
        }
    }
    fields
}

/// Leaf paths of a value: maps are walked, everything else (lists, scalars) is a leaf.
pub fn leaf_paths(value: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out.retain(|p| !p.is_empty());
    out
}

pub fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

/// `.data.key` as SSA reports field paths.
pub fn path_string(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// Removes the field at `path`, then every map above it that became empty and is not in `keep`.
pub fn remove_path(value: &mut Value, path: &[String], keep: &Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = parents.iter().try_fold(&mut *value, |v, k| v.get_mut(k)) else {
        return;
    };
    if let Some(map) = parent.as_object_mut() {
        map.remove(last);
    }
    for depth in (1..path.len()).rev() {
        let prefix = &path[..depth];
        let empty =
            get_path(value, prefix).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if empty && get_path(keep, prefix).is_none() {
            remove_path_only(value, prefix);
        } else {
            break;
        }
    }
}

fn remove_path_only(value: &mut Value, path: &[String]) {
    if let Some((last, parents)) = path.split_last() {
        if let Some(Value::Object(map)) = parents.iter().try_fold(&mut *value, |v, k| v.get_mut(k))
        {
            map.remove(last);
        }
    }
}

/// Merges an applied configuration into an object: maps merge recursively, anything else
/// (lists included) is replaced. A null in the configuration removes the field.
pub fn merge_applied(target: &mut Value, config: &Value) {
    match (target, config) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    t.remove(k);
                } else if let Some(existing) = t.get_mut(k) {
                    merge_applied(existing, v);
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// The `fieldsV1` form of a configuration: `{"f:data": {"f:key": {}}}`.
pub fn fields_v1(config: &Value) -> Value {
    match config {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(format!("f:{k}"), fields_v1(v));
            }
            Value::Object(out)
        }
        _ => Value::Object(Map::new()),
    }
}
