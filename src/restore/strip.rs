//! Strips what the API server sets from a captured object, so that it can be created again
//! (possibly in another namespace).

use serde_json::Value;

/// Metadata fields the server owns.
pub const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
];

/// Annotations the control plane sets when it binds and provisions a claim.
const PVC_ANNOTATIONS: &[&str] = &[
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

pub fn server_fields(obj: &mut Value, group: &str, plural: &str, namespace: &str) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
        meta.insert("namespace".into(), Value::String(namespace.into()));
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    match (group, plural) {
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("volumeName");
                // The data comes from the backup, not from the snapshot the claim was made from.
                spec.remove("dataSource");
                spec.remove("dataSourceRef");
            }
            if let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
                for a in PVC_ANNOTATIONS {
                    ann.remove(*a);
                }
            }
        }
        ("", "services") => {
            // Cluster IPs are allocated again (a headless service keeps "None").
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
                if !headless {
                    spec.remove("clusterIP");
                    spec.remove("clusterIPs");
                }
                spec.remove("healthCheckNodePort");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_server_fields_and_maps_the_namespace() {
        let mut pvc = serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop", "uid": "u", "resourceVersion": "5",
                "creationTimestamp": "t", "managedFields": [], "ownerReferences": [],
                "labels": {"app": "web"},
                "annotations": {"pv.kubernetes.io/bind-completed": "yes", "keep": "me"}},
            "spec": {"volumeName": "pvc-1", "resources": {}},
            "status": {"phase": "Bound"}
        });
        server_fields(&mut pvc, "", "persistentvolumeclaims", "shop-copy");
        assert_eq!(
            pvc,
            serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data", "namespace": "shop-copy", "labels": {"app": "web"},
                    "annotations": {"keep": "me"}},
                "spec": {"resources": {}}
            })
        );
        let mut svc = serde_json::json!({"metadata": {}, "spec": {"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"], "ports": []}});
        server_fields(&mut svc, "", "services", "x");
        assert_eq!(svc["spec"], serde_json::json!({"ports": []}));
        let mut headless = serde_json::json!({"metadata": {}, "spec": {"clusterIP": "None"}});
        server_fields(&mut headless, "", "services", "x");
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }
}
