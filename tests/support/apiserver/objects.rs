//! Type-specific behaviour of built-in resources: seeding, defaults, validation, and the side
//! effects of creating and deleting some kinds (namespaces, CRDs, PVCs, pods).

use super::crd;
use super::discovery::ResourceInfo;
use super::errors::{ApiError, ApiResult};
use super::lock;
use super::snapshots;
use super::store::{State, WriteOpts};
use base64::Engine;
use serde_json::{json, Value};

const DNS1123_SUBDOMAIN_HELP: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_HELP: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// A fixed placeholder for the `kube-root-ca.crt` ConfigMap every namespace gets.
const ROOT_CA_PLACEHOLDER: &str = "-----BEGIN CERTIFICATE-----\nMIIBk3N0YW5kLWluIGt1YmUtYXBpc2VydmVyIHJvb3QgQ0EgKG5vdCByZWFsKQ==\n-----END CERTIFICATE-----\n";

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Names must be DNS-1123 subdomains (labels for namespaces and services; RBAC objects only
/// need to be path segments, as on a real server).
pub fn validate_name(res: &ResourceInfo, name: &str) -> ApiResult<()> {
    let (ok, help) = if res.group == "rbac.authorization.k8s.io" {
        let ok = !name.contains('/') && !name.contains('%') && name != "." && name != "..";
        (ok, "may not contain '/' or '%' and may not be '.' or '..'")
    } else if res.is("", "namespaces") || res.is("", "services") {
        (is_dns_label(name), DNS1123_LABEL_HELP)
    } else {
        (is_dns_subdomain(name), DNS1123_SUBDOMAIN_HELP)
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &res.group,
            &res.kind,
            name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": {help}"),
        ))
    }
}

/// Refuses (400) a body whose fields have the wrong JSON types, as the real API's decoding does:
/// built-in kinds are decoded as their k8s-openapi type, every object's metadata as ObjectMeta.
/// Unknown fields of built-in kinds are not reported.
pub fn check_types(res: &ResourceInfo, obj: &Value) -> ApiResult<()> {
    use k8s_openapi::api::{apps, batch, coordination, core, discovery, networking, policy, rbac, storage};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    fn decode<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(obj.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    let result = match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => decode::<core::v1::Namespace>(obj),
        ("", "secrets") => decode::<core::v1::Secret>(obj),
        ("", "configmaps") => decode::<core::v1::ConfigMap>(obj),
        ("", "serviceaccounts") => decode::<core::v1::ServiceAccount>(obj),
        ("", "services") => decode::<core::v1::Service>(obj),
        ("", "persistentvolumeclaims") => decode::<core::v1::PersistentVolumeClaim>(obj),
        ("", "persistentvolumes") => decode::<core::v1::PersistentVolume>(obj),
        ("", "pods") => decode::<core::v1::Pod>(obj),
        ("", "events") => decode::<core::v1::Event>(obj),
        ("", "endpoints") => decode::<core::v1::Endpoints>(obj),
        ("apps", "deployments") => decode::<apps::v1::Deployment>(obj),
        ("apps", "statefulsets") => decode::<apps::v1::StatefulSet>(obj),
        ("apps", "daemonsets") => decode::<apps::v1::DaemonSet>(obj),
        ("apps", "replicasets") => decode::<apps::v1::ReplicaSet>(obj),
        ("batch", "jobs") => decode::<batch::v1::Job>(obj),
        ("batch", "cronjobs") => decode::<batch::v1::CronJob>(obj),
        ("rbac.authorization.k8s.io", "roles") => decode::<rbac::v1::Role>(obj),
        ("rbac.authorization.k8s.io", "rolebindings") => decode::<rbac::v1::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "clusterroles") => decode::<rbac::v1::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            decode::<rbac::v1::ClusterRoleBinding>(obj)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            decode::<CustomResourceDefinition>(obj)
        }
        ("storage.k8s.io", "storageclasses") => decode::<storage::v1::StorageClass>(obj),
        ("discovery.k8s.io", "endpointslices") => decode::<discovery::v1::EndpointSlice>(obj),
        ("networking.k8s.io", "ingresses") => decode::<networking::v1::Ingress>(obj),
        ("networking.k8s.io", "networkpolicies") => decode::<networking::v1::NetworkPolicy>(obj),
        ("policy", "poddisruptionbudgets") => decode::<policy::v1::PodDisruptionBudget>(obj),
        ("coordination.k8s.io", "leases") => decode::<coordination::v1::Lease>(obj),
        _ => decode::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(&obj["metadata"]),
    };
    result.map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            res.kind, res.version, res.kind
        ))
    })
}

/// Creates the objects a fresh cluster has.
pub fn seed(state: &mut State, default_namespace_uid: &str) {
    let internal = WriteOpts {
        internal: true,
        ..WriteOpts::default()
    };
    if let Some(sc) = state.find_resource("storage.k8s.io", "storageclasses") {
        let class = json!({
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": super::STANDARD_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        });
        let _ = state.create(&sc, None, class, &internal);
    }
    let Some(ns) = state.find_resource("", "namespaces") else {
        return;
    };
    for (name, uid) in [
        ("default", default_namespace_uid),
        ("kube-system", super::KUBE_SYSTEM_UID),
        ("kube-public", super::KUBE_PUBLIC_UID),
    ] {
        let obj = json!({"metadata": {"name": name, "uid": uid}});
        let _ = state.create(&ns, None, obj, &internal);
    }
}

/// Defaults and validation before an object is first stored.
pub fn on_create(
    state: &mut State,
    res: &ResourceInfo,
    obj: &mut Value,
    opts: &WriteOpts,
) -> ApiResult<()> {
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "secrets") => normalize_secret(res, obj)?,
        ("", "services") => default_service(state, res, obj, None)?,
        ("", "persistentvolumeclaims") if !opts.internal => provision_claim(state, obj),
        ("", "pods") if !opts.internal => {
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("batch", "jobs") => default_job(res, obj)?,
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crd::validate(obj)?;
            crd::set_status(obj, None);
        }
        _ => {}
    }
    Ok(())
}

/// Defaults and validation before an update is stored.
pub fn on_update(
    state: &mut State,
    res: &ResourceInfo,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            let name = old["metadata"]["name"].as_str().unwrap_or("").to_string();
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if new.get("spec").is_none() {
                new["spec"] = old["spec"].clone();
            }
        }
        ("", "secrets") => normalize_secret(res, new)?,
        ("", "services") => default_service(state, res, new, Some(old))?,
        // The selector the API set on create stays.
        ("batch", "jobs") if new["spec"].get("selector").is_none() => {
            new["spec"]["selector"] = old["spec"]["selector"].clone();
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crd::validate(new)?;
            crd::set_status(new, Some(old));
        }
        _ => {}
    }
    Ok(())
}

/// Side effects of a stored create.
pub fn after_create(state: &mut State, res: &ResourceInfo, obj: &Value) {
    let internal = WriteOpts {
        internal: true,
        ..WriteOpts::default()
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => {
            // What the service-account and root-CA controllers add to every namespace.
            if let Some(sa) = state.find_resource("", "serviceaccounts") {
                let _ = state.create(
                    &sa,
                    Some(&name),
                    json!({"metadata": {"name": "default"}}),
                    &internal,
                );
            }
            if let Some(cm) = state.find_resource("", "configmaps") {
                let root_ca = json!({
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."},
                    },
                    "data": {"ca.crt": ROOT_CA_PLACEHOLDER},
                });
                let _ = state.create(&cm, Some(&name), root_ca, &internal);
            }
        }
        ("", "persistentvolumeclaims") => {
            let namespace = obj["metadata"]["namespace"].as_str().unwrap_or("");
            let dir = state.volumes_root.join(namespace).join(&name);
            let bound = obj["status"]["phase"] == "Bound";
            match snapshots::claim_source(state, obj) {
                // Restored from a ready VolumeSnapshot: the volume starts as its copy.
                Some(Ok(source)) if bound => {
                    let copied = snapshots::remove_tree(&dir)
                        .and_then(|()| std::fs::create_dir_all(dir.parent().unwrap_or(&dir)))
                        .and_then(|()| snapshots::copy_tree(&source, &dir));
                    if let Err(err) = copied {
                        eprintln!(
                            "k8s stand-in: cannot restore {} from {}: {err}",
                            dir.display(),
                            source.display()
                        );
                    }
                }
                // Waiting for a snapshot that will never be ready: say why, as the provisioner would.
                Some(Err(reason)) if !bound => claim_event(state, obj, &reason),
                _ => {}
            }
            if let Err(err) = std::fs::create_dir_all(&dir) {
                eprintln!(
                    "k8s stand-in: cannot create volume directory {}: {err}",
                    dir.display()
                );
            }
            create_volume_for(state, obj, &dir);
        }
        (snapshots::GROUP, "volumesnapshots") if res.namespaced => snapshots::take(state, obj),
        (snapshots::GROUP, "volumesnapshotcontents") => snapshots::content_created(state, obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            state.register_crd(&name, crd::resources_for(obj));
        }
        _ => {}
    }
}

/// Side effects of a stored update.
pub fn after_update(state: &mut State, res: &ResourceInfo, _old: &Value, new: &Value) {
    if res.is("apiextensions.k8s.io", "customresourcedefinitions") {
        let name = new["metadata"]["name"].as_str().unwrap_or("");
        state.register_crd(name, crd::resources_for(new));
    }
}

/// Side effects of a delete.
pub fn after_delete(state: &mut State, res: &ResourceInfo, obj: &Value) {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    match (res.group.as_str(), res.plural.as_str()) {
        ("", "namespaces") => state.remove_namespace_contents(&name),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let served = state.unregister_crd(&name);
            if let Some(first) = served.first() {
                state.remove_all_of(first);
            }
        }
        (snapshots::GROUP, "volumesnapshots") if res.namespaced => {
            snapshots::after_delete(state, obj)
        }
        (snapshots::GROUP, "volumesnapshotcontents") => snapshots::content_deleted(state, obj),
        ("", "persistentvolumeclaims") => {
            // Reclaim policy Delete: the volume and its data go with the claim.
            let dir = state.volumes_root.join(&namespace).join(&name);
            if dir.exists() {
                if let Err(err) = std::fs::remove_dir_all(&dir) {
                    eprintln!(
                        "k8s stand-in: cannot remove volume directory {}: {err}",
                        dir.display()
                    );
                }
            }
            if let (Some(pv_name), Some(pv)) = (
                obj["spec"]["volumeName"].as_str(),
                state.find_resource("", "persistentvolumes"),
            ) {
                let _ = state.delete(&pv, None, pv_name, &Default::default());
            }
        }
        ("", "pods") => {
            let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
            if let Some(kill) = state.running.remove(uid) {
                kill.notify_one();
            }
            if let Some(buf) = state.logs.remove(&(namespace, name)) {
                lock(&buf).done = true;
            }
        }
        _ => {}
    }
}

/// Folds `stringData` into base64 `data`, checks `data` is base64, defaults `type`.
fn normalize_secret(res: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let engine = base64::engine::general_purpose::STANDARD;
    if let Some(Value::Object(string_data)) =
        obj.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        for (k, v) in string_data {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            obj["data"][k] = json!(engine.encode(text));
        }
    }
    if let Some(Value::Object(data)) = obj.get("data") {
        for (k, v) in data {
            let ok = v.as_str().is_some_and(|s| engine.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}] of {}/{name}",
                    res.plural
                )));
            }
        }
    }
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
    Ok(())
}

/// Service defaults and cluster-IP allocation.
fn default_service(
    state: &mut State,
    res: &ResourceInfo,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["type"] == "ExternalName" {
        return Ok(());
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports {
            if port.get("protocol").is_none() {
                port["protocol"] = json!("TCP");
            }
            if port.get("targetPort").is_none() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
    let wanted = spec["clusterIP"].as_str().unwrap_or("").to_string();
    let ip = if !wanted.is_empty() {
        wanted
    } else if let Some(previous) = old.and_then(|o| o["spec"]["clusterIP"].as_str()) {
        previous.to_string()
    } else {
        loop {
            state.last_cluster_ip += 1;
            let n = state.last_cluster_ip;
            let candidate = format!("10.96.{}.{}", (n >> 8) & 255, n & 255);
            if !cluster_ip_taken(state, &candidate, &namespace, &name) {
                break candidate;
            }
        }
    };
    if ip != "None" && cluster_ip_taken(state, &ip, &namespace, &name) {
        return Err(ApiError::invalid(
            &res.group,
            &res.kind,
            &name,
            "spec.clusterIPs",
            "FieldValueInvalid",
            &format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"),
        ));
    }
    let spec = &mut obj["spec"];
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if spec.get("ipFamilies").is_none() {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if spec.get("ipFamilyPolicy").is_none() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    Ok(())
}

fn cluster_ip_taken(state: &State, ip: &str, namespace: &str, name: &str) -> bool {
    state.objects.iter().any(|(k, svc)| {
        k.group.is_empty()
            && k.plural == "services"
            && !(k.namespace == namespace && k.name == name)
            && svc["spec"]["clusterIP"].as_str() == Some(ip)
    })
}

/// Dynamic provisioning, at once: the claim is Bound to a volume named `pvc-<uid>`, unless it
/// is to be restored from a VolumeSnapshot that is not ready (then it stays Pending).
fn provision_claim(state: &State, claim: &mut Value) {
    let uid = claim["metadata"]["uid"].as_str().unwrap_or("").to_string();
    if claim["spec"]["storageClassName"].is_null() {
        if let Some(class) = snapshots::default_storage_class(state) {
            claim["spec"]["storageClassName"] = json!(class);
        }
    }
    if claim["spec"]["volumeMode"].is_null() {
        claim["spec"]["volumeMode"] = json!("Filesystem");
    }
    // As the API server does: each of dataSource and dataSourceRef defaults to the other.
    let spec = &mut claim["spec"];
    if spec["dataSourceRef"].is_null() && spec["dataSource"].is_object() {
        spec["dataSourceRef"] = spec["dataSource"].clone();
    } else if spec["dataSource"].is_null()
        && spec["dataSourceRef"].is_object()
        && spec["dataSourceRef"]["namespace"].is_null()
    {
        spec["dataSource"] = spec["dataSourceRef"].clone();
    }
    if let Some(Err(_)) = snapshots::claim_source(state, claim) {
        claim["status"] = json!({"phase": "Pending"});
        return;
    }
    // An empty class asks for static binding: to the PersistentVolume named in volumeName, or
    // to any free one without a class; there is no provisioning. None: Pending.
    if claim["spec"]["storageClassName"] == json!("") {
        match static_volume(state, claim) {
            Some(volume) => claim["spec"]["volumeName"] = json!(volume),
            None => {
                claim["status"] = json!({"phase": "Pending"});
                return;
            }
        }
    }
    if claim["spec"]["volumeName"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        claim["spec"]["volumeName"] = json!(format!("pvc-{uid}"));
    }
    let capacity = claim["spec"]["resources"]["requests"]["storage"].clone();
    claim["status"] = json!({
        "phase": "Bound",
        "accessModes": claim["spec"]["accessModes"].clone(),
        "capacity": {"storage": capacity},
    });
}

/// The PersistentVolume a claim of class `""` binds to: the one it names, or the first without a
/// class that no claim holds.
fn static_volume(state: &State, claim: &Value) -> Option<String> {
    let pv_res = state.find_resource("", "persistentvolumes")?;
    let pvc_res = state.find_resource("", "persistentvolumeclaims")?;
    let held: Vec<String> = state
        .select(&pvc_res, None, &Default::default())
        .into_iter()
        .filter_map(|(_, c)| c["spec"]["volumeName"].as_str().map(str::to_string))
        .collect();
    let free = |pv: &Value| {
        let name = pv["metadata"]["name"].as_str().unwrap_or("");
        pv["spec"]["storageClassName"].as_str().unwrap_or("").is_empty() && !held.iter().any(|h| h == name)
    };
    let volumes = state.select(&pv_res, None, &Default::default());
    match claim["spec"]["volumeName"].as_str().filter(|n| !n.is_empty()) {
        Some(named) => volumes.iter().any(|(_, pv)| pv["metadata"]["name"] == named).then(|| named.to_string()),
        None => volumes.iter().find(|(_, pv)| free(pv)).and_then(|(_, pv)| pv["metadata"]["name"].as_str().map(str::to_string)),
    }
}

/// A Warning event on a claim that cannot be provisioned, as the CSI external-provisioner emits.
fn claim_event(state: &mut State, claim: &Value, message: &str) {
    let class = claim["spec"]["storageClassName"].as_str().unwrap_or("");
    let provisioner = snapshots::provisioner_of(state, class)
        .unwrap_or_else(|| super::STANDARD_PROVISIONER.to_string());
    let message = format!("failed to provision volume with StorageClass {class:?}: {message}");
    warning_event(state, ("v1", "PersistentVolumeClaim"), claim, "ProvisioningFailed", &message, &provisioner);
}

/// A Warning event about `object` (of the given apiVersion and kind), as the component that saw
/// the problem records it.
pub(super) fn warning_event(
    state: &mut State,
    (api_version, kind): (&str, &str),
    object: &Value,
    reason: &str,
    message: &str,
    component: &str,
) {
    let Some(events) = state.find_resource("", "events") else {
        return;
    };
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("").to_string();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let now = super::now_rfc3339();
    let event = json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "namespace": namespace,
            "uid": object["metadata"]["uid"].clone(),
        },
        "type": "Warning",
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let internal = WriteOpts {
        internal: true,
        ..WriteOpts::default()
    };
    let _ = state.create(&events, Some(&namespace), event, &internal);
}

/// The PersistentVolume behind a freshly provisioned claim.
fn create_volume_for(state: &mut State, claim: &Value, dir: &std::path::Path) {
    let Some(pv_res) = state.find_resource("", "persistentvolumes") else {
        return;
    };
    let Some(volume_name) = claim["spec"]["volumeName"].as_str() else {
        return;
    };
    if state
        .get_object("", "persistentvolumes", "", volume_name)
        .is_some()
    {
        return;
    }
    let provisioner = claim["spec"]["storageClassName"]
        .as_str()
        .and_then(|class| snapshots::provisioner_of(state, class))
        .unwrap_or_else(|| super::STANDARD_PROVISIONER.to_string());
    let pv = json!({
        "metadata": {
            "name": volume_name,
            "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
        },
        "spec": {
            "capacity": claim["spec"]["resources"]["requests"].clone(),
            "accessModes": claim["spec"]["accessModes"].clone(),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": claim["spec"]["storageClassName"].clone(),
            "volumeMode": "Filesystem",
            "hostPath": {"path": dir.to_string_lossy()},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "name": claim["metadata"]["name"].clone(),
                "namespace": claim["metadata"]["namespace"].clone(),
                "uid": claim["metadata"]["uid"].clone(),
            },
        },
        "status": {"phase": "Bound"},
    });
    let internal = WriteOpts {
        internal: true,
        ..WriteOpts::default()
    };
    let _ = state.create(&pv_res, None, pv, &internal);
}

/// Job defaulting and the validation the stand-in kubelet depends on.
fn default_job(res: &ResourceInfo, job: &mut Value) -> ApiResult<()> {
    let name = job["metadata"]["name"].as_str().unwrap_or("").to_string();
    let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let invalid = |field: &str, reason: &str, detail: &str| {
        ApiError::invalid(&res.group, &res.kind, &name, field, reason, detail)
    };
    if !job["spec"]["template"].is_object() {
        return Err(invalid(
            "spec.template",
            "FieldValueRequired",
            "Required value",
        ));
    }
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if containers.is_empty() {
        return Err(invalid(
            "spec.template.spec.containers",
            "FieldValueRequired",
            "Required value",
        ));
    }
    for (i, c) in containers.iter().enumerate() {
        if c["name"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(
                &format!("spec.template.spec.containers[{i}].name"),
                "FieldValueRequired",
                "Required value",
            ));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            return Err(invalid(
                &format!("spec.template.spec.containers[{i}].image"),
                "FieldValueRequired",
                "Required value",
            ));
        }
    }
    match job["spec"]["template"]["spec"]["restartPolicy"].as_str() {
        Some("Never") | Some("OnFailure") => {}
        other => {
            return Err(invalid(
                "spec.template.spec.restartPolicy",
                "FieldValueRequired",
                &format!(
                    "Required value: valid values: \"OnFailure\", \"Never\" (got {:?})",
                    other.unwrap_or("")
                ),
            ))
        }
    }
    let spec = &mut job["spec"];
    for (field, default) in [
        ("parallelism", json!(1)),
        ("completions", json!(1)),
        ("backoffLimit", json!(6)),
        ("completionMode", json!("NonIndexed")),
        ("suspend", json!(false)),
        ("manualSelector", Value::Null),
        ("podReplacementPolicy", json!("TerminatingOrFailed")),
    ] {
        if spec.get(field).is_none() && !default.is_null() {
            spec[field] = default;
        }
    }
    if spec["manualSelector"].as_bool() != Some(true) {
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut spec["template"]["metadata"]["labels"];
        labels["batch.kubernetes.io/controller-uid"] = json!(uid);
        labels["batch.kubernetes.io/job-name"] = json!(name);
        labels["controller-uid"] = json!(uid);
        labels["job-name"] = json!(name);
    }
    Ok(())
}
