//! The controller's Deployment in kasten-io, as `kubectl k10 install` applies it
//! (`charts/k10/templates/controller.yaml` renders the same; a test compares them).

use k8s_openapi::api::apps::v1::Deployment;

use crate::api::K10_NAMESPACE;
use crate::k8s::jobs::{image, SERVICE_ACCOUNT};

pub const NAME: &str = "k10-controller";
/// Two replicas: one leads, the other takes over within the Lease duration.
pub const REPLICAS: i32 = 2;
pub const METRICS_PORT: i32 = 8080;
/// Retention maintenance: daily (the contract asks for every 2 days at least), 6 hours at most.
pub const MAINTENANCE_FREQUENCY: &str = "@daily";
pub const MAINTENANCE_TIMEOUT: &str = "21600s";

pub fn deployment() -> Deployment {
    let labels = serde_json::json!({"app.kubernetes.io/name": "k10", "app.kubernetes.io/component": "controller"});
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": K10_NAMESPACE, "labels": labels},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": METRICS_PORT.to_string(), "prometheus.io/path": "/metrics"}
                },
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "controller",
                        "image": image(),
                        "command": ["kubectl-k10"],
                        "args": ["controller", "--maintenance-frequency", MAINTENANCE_FREQUENCY, "--maintenance-timeout", MAINTENANCE_TIMEOUT],
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            // The Jobs it starts run the same image.
                            {"name": "K10_IMAGE", "value": image()},
                            {"name": "HOME", "value": "/tmp"}
                        ],
                        "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 20},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 10},
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}]
                }
            }
        }
    }))
    .expect("a valid Deployment")
}
