//! core/v1 Events in kasten-io about the product's objects (what `kubectl describe` and
//! `kubectl get events` show). Recording one is best effort: a failure is logged, never fatal.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Resource;

use super::Cluster;
use crate::api::K10_NAMESPACE;

/// Records an Event of `type_` (`Normal` or `Warning`) about `obj`, from `component`.
pub async fn publish<K: Resource<DynamicType = ()>>(cluster: &Cluster, obj: &K, component: &str, type_: &str, reason: &str, message: &str) {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let involved = ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        ..Default::default()
    };
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", involved.name.clone().unwrap_or_default())),
            namespace: Some(K10_NAMESPACE.into()),
            ..Default::default()
        },
        involved_object: involved,
        type_: Some(type_.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(cluster.client.clone(), K10_NAMESPACE);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        tracing::warn!("could not record Event {reason}: {e}");
    }
}
