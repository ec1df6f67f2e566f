//! Pod Security admission, as the API server's built-in plugin enforces it from a namespace's
//! `pod-security.kubernetes.io/enforce` label (`privileged`, `baseline`, `restricted`; any
//! version is taken as `latest`). The checks are the standard's, for the fields a pod of the
//! product or of a test can set; the messages are the real ones' form:
//! `violates PodSecurity "baseline:latest": non-default capabilities (container "k10" must not
//! include "DAC_READ_SEARCH" in securityContext.capabilities.add)`.

use serde_json::Value;

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
];
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
];

/// The level a namespace enforces, from its labels.
pub fn enforced(namespace: &Value) -> Option<String> {
    let level = namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"].as_str()?;
    (level != "privileged").then(|| level.to_string())
}

/// Why `spec` (a pod spec) violates `level`, in the API server's words; None if it does not.
pub fn violation(level: &str, spec: &Value) -> Option<String> {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let name = |c: &Value| c["name"].as_str().unwrap_or("").to_string();
    let mut out = Vec::new();
    // baseline
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[host] == Value::Bool(true) {
            out.push(format!("host namespaces ({host}=true)"));
        }
    }
    for c in &containers {
        if c["securityContext"]["privileged"] == Value::Bool(true) {
            out.push(format!("privileged (container \"{}\" must not set securityContext.privileged=true)", name(c)));
        }
        let bad: Vec<String> = c["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .map(|cap| format!("\"{cap}\""))
            .collect();
        if !bad.is_empty() {
            out.push(format!(
                "non-default capabilities (container \"{}\" must not include {} in securityContext.capabilities.add)",
                name(c),
                bad.join(", ")
            ));
        }
    }
    if let Some(v) = spec["volumes"].as_array().into_iter().flatten().find(|v| v.get("hostPath").is_some()) {
        out.push(format!("hostPath volumes (volume \"{}\")", v["name"].as_str().unwrap_or("")));
    }
    let seccomp = |v: &Value| v["securityContext"]["seccompProfile"]["type"].as_str().map(str::to_string);
    if seccomp(spec).as_deref() == Some("Unconfined") || containers.iter().any(|c| seccomp(c).as_deref() == Some("Unconfined")) {
        out.push("seccompProfile (pod or containers must not set securityContext.seccompProfile.type to \"Unconfined\")".into());
    }
    if level == "restricted" {
        for c in &containers {
            if c["securityContext"]["allowPrivilegeEscalation"] != Value::Bool(false) {
                out.push(format!("allowPrivilegeEscalation != false (container \"{}\" must set securityContext.allowPrivilegeEscalation=false)", name(c)));
            }
            let drops_all = c["securityContext"]["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x == "ALL"));
            let adds_other = c["securityContext"]["capabilities"]["add"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE"));
            let mut unrestricted = Vec::new();
            if !drops_all {
                unrestricted.push(format!("container \"{}\" must set securityContext.capabilities.drop=[\"ALL\"]", name(c)));
            }
            if adds_other {
                unrestricted.push(format!("container \"{}\" must not include capabilities other than NET_BIND_SERVICE in securityContext.capabilities.add", name(c)));
            }
            if !unrestricted.is_empty() {
                out.push(format!("unrestricted capabilities ({})", unrestricted.join("; ")));
            }
            let non_root = c["securityContext"]["runAsNonRoot"].as_bool().or(spec["securityContext"]["runAsNonRoot"].as_bool());
            if non_root != Some(true) {
                out.push(format!("runAsNonRoot != true (pod or container \"{}\" must set securityContext.runAsNonRoot=true)", name(c)));
            }
            let user = c["securityContext"]["runAsUser"].as_i64().or(spec["securityContext"]["runAsUser"].as_i64());
            if user == Some(0) {
                out.push(format!("runAsUser=0 (container \"{}\" must not set runAsUser=0)", name(c)));
            }
            let profile = seccomp(c).or_else(|| seccomp(spec));
            if !matches!(profile.as_deref(), Some("RuntimeDefault" | "Localhost")) {
                out.push(format!("seccompProfile (pod or container \"{}\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")", name(c)));
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            let kind = v.as_object().and_then(|o| o.keys().find(|k| *k != "name")).cloned().unwrap_or_default();
            if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
                out.push(format!("restricted volume types (volume \"{}\" uses restricted volume type \"{kind}\")", v["name"].as_str().unwrap_or("")));
            }
        }
    }
    (!out.is_empty()).then(|| format!("violates PodSecurity \"{level}:latest\": {}", out.join(", ")))
}
