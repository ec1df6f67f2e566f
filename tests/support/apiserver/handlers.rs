//! HTTP routing: discovery documents, resource requests, watches and pod logs.

use super::discovery::{self, ResourceInfo};
use super::errors::{ApiError, ApiResult};
use super::kubelet;
use super::lock;
use super::openapi;
use super::patch::PatchKind;
use super::protobuf;
use super::selectors;
use super::rbac;
use super::store::{self, DeleteOpts, Key, ListOpts, Shared, WatchEvent, WriteOpts};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The server's router: one handler that parses Kubernetes paths itself.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared)
}

type Query = HashMap<String, String>;

/// A parsed resource path.
struct Target {
    res: ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    /// The legacy `/watch/` path prefix.
    watch_prefix: bool,
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.to_status())
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(&shared, &method, &uri, &headers, &body).await {
        Ok(resp) => resp,
        Err(err) => error_response(&err),
    }
}

fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    *lock(&shared.requests) += 1;
    let outage = *lock(&shared.outage);
    if let Some((until, status)) = outage.filter(|(until, _)| std::time::Instant::now() < *until) {
        let left = until - std::time::Instant::now();
        return Err(ApiError::unavailable(status, format!("the API server is unavailable (a test outage, {} s left)", left.as_secs())));
    }
    let held = {
        let mut holds = lock(&shared.holds);
        // `path[?fragment]`: the path starts with `path`, and the query contains `fragment`.
        let matches = |h: &store::Hold| {
            let (path, fragment) = h.path.split_once('?').unwrap_or((h.path.as_str(), ""));
            uri.path().starts_with(path) && uri.query().unwrap_or_default().contains(fragment)
        };
        let at = holds.iter().position(|h| h.method == method.as_str() && matches(h));
        at.map(|i| holds.remove(i))
    };
    if let Some(hold) = held {
        hold.reached.send_replace(true);
        let mut released = hold.released.subscribe();
        let _ = released.wait_for(|r| *r).await;
        return Err(ApiError::internal("the stand-in dropped this request (a test held it)"));
    }
    let query: Query = axum::extract::Query::<Query>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let caller = {
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        rbac::authenticate(&lock(&shared.state), authorization)?
    };

    // Discovery and health.
    if *method == Method::GET {
        let state = lock(&shared.state);
        let resources = state.resources();
        let groups = discovery::groups(&resources, &state.preferred_versions());
        drop(state);
        let doc = match segs.as_slice() {
            ["version"] => Some(discovery::version_doc()),
            ["api"] => Some(discovery::api_versions_doc(
                shared.config.url.trim_start_matches("http://"),
            )),
            ["api", "v1"] => discovery::resource_list_doc(&resources, "", "v1"),
            ["apis"] => Some(discovery::group_list_doc(&groups)),
            ["apis", group] => groups
                .iter()
                .find(|g| g.name == *group)
                .map(discovery::group_doc),
            ["apis", group, version] => discovery::resource_list_doc(&resources, group, version),
            ["healthz"] | ["livez"] | ["readyz"] => {
                return Ok(
                    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
                )
            }
            ["openapi", "v3"] => Some(openapi::index(&resources)),
            ["openapi", "v3", "api", version] => {
                openapi::group_version_doc(&resources, "", version)
            }
            ["openapi", "v3", "apis", group, version] => {
                openapi::group_version_doc(&resources, group, version)
            }
            ["openapi", ..] => return Err(ApiError::no_route()),
            _ => None,
        };
        if let Some(doc) = doc {
            return Ok(json_response(200, &doc));
        }
        if matches!(
            segs.as_slice(),
            ["version"]
                | ["api"]
                | ["api", "v1"]
                | ["apis"]
                | ["apis", _]
                | ["apis", _, _]
                | ["openapi", ..]
        ) {
            return Err(ApiError::no_route());
        }
    }

    // An empty segment is an empty name (`…/storageclasses/`): no route, as on a real server,
    // not the collection.
    if uri.path().ends_with('/') || uri.path().contains("//") {
        return Err(ApiError::no_route());
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", "v1", rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => (*group, *version, rest),
        _ => return Err(ApiError::no_route()),
    };
    let target = {
        let state = lock(&shared.state);
        parse_target(&state, group, version, rest).ok_or_else(ApiError::no_route)?
    };
    authorize(shared, &caller, method, &query, &target)?;
    handle_resource(shared, method, headers, body, &query, target).await
}

/// The RBAC verb of a request, and whether the caller may.
fn authorize(shared: &Arc<Shared>, caller: &rbac::Caller, method: &Method, query: &Query, t: &Target) -> ApiResult<()> {
    let verb = match (method.as_str(), t.name.as_deref()) {
        ("GET", None) if t.watch_prefix || flag(query, "watch") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) if t.watch_prefix || flag(query, "watch") => "watch",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => return Ok(()),
    };
    let request = rbac::Request {
        verb,
        group: &t.res.group,
        resource: &t.res.plural,
        subresource: t.subresource.as_deref(),
        namespace: t.namespace.as_deref(),
        name: t.name.as_deref(),
    };
    rbac::authorize(&lock(&shared.state), caller, &request)
}

/// Splits `[watch/][namespaces/<ns>/]<plural>[/<name>[/<sub>]]`.
fn parse_target(state: &store::State, group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(res) = state
            .resolve(group, version, plural)
            .filter(|r| r.namespaced)
        {
            if tail.len() > 2 {
                return None;
            }
            return Some(Target {
                res,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                subresource: tail.get(1).map(|s| s.to_string()),
                watch_prefix,
            });
        }
    }
    let (plural, tail) = rest.split_first()?;
    if tail.len() > 2 {
        return None;
    }
    let res = state.resolve(group, version, plural)?;
    Some(Target {
        res,
        namespace: None,
        name: tail.first().map(|s| s.to_string()),
        subresource: tail.get(1).map(|s| s.to_string()),
        watch_prefix,
    })
}

fn flag(query: &Query, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true") | Some("1"))
}

fn write_opts(query: &Query) -> WriteOpts {
    WriteOpts {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        strict: query.get("fieldValidation").is_some_and(|v| v == "Strict"),
        internal: false,
        field_manager: query.get("fieldManager").cloned(),
        force: flag(query, "force"),
    }
}

fn list_opts(query: &Query, name: Option<&str>) -> ApiResult<ListOpts> {
    let labels = match query.get("labelSelector") {
        Some(s) => selectors::parse_label_selector(s).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    let mut fields = match query.get("fieldSelector") {
        Some(s) => selectors::parse_field_selector(s).map_err(ApiError::bad_request)?,
        None => Vec::new(),
    };
    if let Some(name) = name {
        fields.push(selectors::FieldRequirement {
            path: "metadata.name".into(),
            value: name.into(),
            negate: false,
        });
    }
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    Ok(ListOpts {
        labels,
        fields,
        limit,
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

/// Parses a JSON (or YAML) request body.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(body)
            .map_err(|e| ApiError::unsupported_media_type_because(content_type, &e));
    }
    if content_type.contains("cbor") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) if content_type.contains("yaml") => serde_yaml::from_slice::<Value>(body)
            .map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            }),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))),
    }
}

fn delete_opts(query: &Query, body: &Bytes) -> ApiResult<DeleteOpts> {
    let mut opts = DeleteOpts {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        propagation: query.get("propagationPolicy").cloned(),
        grace_period_seconds: query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
        ..DeleteOpts::default()
    };
    if flag(query, "orphanDependents") {
        opts.propagation = Some("Orphan".into());
    }
    if !body.is_empty() {
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?;
        if let Some(p) = doc["propagationPolicy"].as_str() {
            opts.propagation = Some(p.to_string());
        }
        if doc["orphanDependents"].as_bool() == Some(true) {
            opts.propagation = Some("Orphan".into());
        }
        if doc["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"))
        {
            opts.dry_run = true;
        }
        opts.grace_period_seconds = doc["gracePeriodSeconds"].as_i64();
        opts.precondition_uid = doc["preconditions"]["uid"].as_str().map(str::to_string);
        opts.precondition_rv = doc["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string);
    }
    if let Some(p) = &opts.propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(opts)
}

async fn handle_resource(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    query: &Query,
    t: Target,
) -> ApiResult<Response> {
    let res = &t.res;
    let ns = t.namespace.as_deref();
    if res.namespaced && ns.is_none() && t.name.is_some() {
        // A namespaced object needs its namespace in the path.
        return Err(ApiError::no_route());
    }
    let watching = t.watch_prefix || flag(query, "watch");

    match (t.name.as_deref(), t.subresource.as_deref()) {
        // Collection.
        (None, None) => match *method {
            Method::GET if watching => {
                let opts = list_opts(query, None)?;
                watch(shared, res.clone(), t.namespace.clone(), opts, query).await
            }
            Method::GET => {
                let opts = list_opts(query, None)?;
                let list = lock(&shared.state).list(res, ns, &opts)?;
                Ok(json_response(200, &list))
            }
            Method::POST => {
                if res.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed());
                }
                let obj = parse_body(headers, body)?;
                let opts = write_opts(query);
                let created = lock(&shared.state).create(res, ns, obj, &opts)?;
                if !opts.dry_run {
                    after_write(shared, res, &created);
                }
                Ok(json_response(201, &created))
            }
            Method::DELETE => {
                let list = list_opts(query, None)?;
                let opts = delete_opts(query, body)?;
                let deleted = lock(&shared.state).delete_collection(res, ns, &list, &opts)?;
                Ok(json_response(200, &deleted))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        // One object.
        (Some(name), None) => match *method {
            Method::GET if watching => {
                let opts = list_opts(query, Some(name))?;
                watch(shared, res.clone(), t.namespace.clone(), opts, query).await
            }
            Method::GET => Ok(json_response(200, &lock(&shared.state).get(res, ns, name)?)),
            Method::PUT => {
                let obj = parse_body(headers, body)?;
                let updated =
                    lock(&shared.state).replace(res, ns, name, obj, false, &write_opts(query))?;
                Ok(json_response(200, &updated))
            }
            Method::PATCH => patch(shared, headers, body, query, res, ns, name, false),
            Method::DELETE => {
                let opts = delete_opts(query, body)?;
                if res.is("", "pods") && opts.grace_period_seconds == Some(0) {
                    return kubelet::force_delete_pod(shared, res, ns.unwrap_or(""), name, &opts).map(|d| json_response(200, &d));
                }
                let deleted = lock(&shared.state).delete(res, ns, name, &opts)?;
                Ok(json_response(200, &deleted))
            }
            _ => Err(ApiError::method_not_allowed()),
        },
        (Some(name), Some("status")) if res.has_status => match *method {
            Method::GET => Ok(json_response(200, &lock(&shared.state).get(res, ns, name)?)),
            Method::PUT => {
                let obj = parse_body(headers, body)?;
                let updated =
                    lock(&shared.state).replace(res, ns, name, obj, true, &write_opts(query))?;
                Ok(json_response(200, &updated))
            }
            Method::PATCH => patch(shared, headers, body, query, res, ns, name, true),
            _ => Err(ApiError::method_not_allowed()),
        },
        (Some(name), Some("log")) if res.has_log => match *method {
            Method::GET => pod_log(shared, ns.unwrap_or(""), name, query).await,
            _ => Err(ApiError::method_not_allowed()),
        },
        _ => Err(ApiError::no_route()),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Arc<Shared>,
    headers: &HeaderMap,
    body: &Bytes,
    query: &Query,
    res: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    status_only: bool,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind = PatchKind::from_content_type(content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the patch body is empty"));
    }
    let opts = write_opts(query);
    let suspended = |state: &store::State| {
        res.is("batch", "jobs")
            && state.get_object("batch", "jobs", ns.unwrap_or(""), name).is_some_and(|j| j["spec"]["suspend"] == true)
    };
    let (obj, created, resumed) = {
        let mut state = lock(&shared.state);
        let was_suspended = suspended(&state);
        let (obj, created) = state.patch(res, ns, name, kind, body, status_only, &opts)?;
        (obj, created, was_suspended && !suspended(&state))
    };
    // A created object, or a suspended Job resumed: the Job controller starts its pod.
    if (created || resumed) && !opts.dry_run {
        after_write(shared, res, &obj);
    }
    Ok(json_response(if created { 201 } else { 200 }, &obj))
}

/// Work that follows a stored create outside the state lock: the kubelet for Jobs.
fn after_write(shared: &Arc<Shared>, res: &ResourceInfo, created: &Value) {
    if res.is("batch", "jobs") {
        let ns = created["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = created["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        kubelet::start_job(shared.clone(), ns, name);
    }
}

// ---------------------------------------------------------------------------------------------
// Watch.

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

async fn watch(
    shared: &Arc<Shared>,
    res: ResourceInfo,
    namespace: Option<String>,
    opts: ListOpts,
    query: &Query,
) -> ApiResult<Response> {
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Duration::from_secs(t.min(7 * 24 * 3600)))
        .unwrap_or(Duration::from_secs(1800));
    let send_initial = flag(query, "sendInitialEvents");
    let requested_rv = query.get("resourceVersion").cloned().unwrap_or_default();

    // What to send first, and where the live stream starts.
    let (initial, start_rv, mut changes) = {
        let state = lock(&shared.state);
        let changes = state.subscribe();
        let from_rv = requested_rv.parse::<u64>().ok().filter(|rv| *rv > 0);
        let mut initial: Vec<Bytes> = Vec::new();
        match from_rv {
            Some(rv) if !send_initial => match state.events_since(rv) {
                Ok(events) => {
                    for e in events
                        .iter()
                        .filter(|e| event_matches(e, &res, namespace.as_deref(), &opts))
                    {
                        initial.push(event_line(e.kind, &store::present(&res, &e.object)));
                    }
                }
                Err(()) => {
                    let gone =
                        ApiError::gone(format!("too old resource version: {rv} ({})", state.rv));
                    initial.push(event_line("ERROR", &gone.to_status()));
                }
            },
            _ => {
                for (_, obj) in state.select(&res, namespace.as_deref(), &opts) {
                    initial.push(event_line("ADDED", &obj));
                }
                if send_initial {
                    let bookmark = json!({
                        "kind": res.kind,
                        "apiVersion": res.api_version(),
                        "metadata": {
                            "resourceVersion": state.rv.to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    });
                    initial.push(event_line("BOOKMARK", &bookmark));
                }
            }
        }
        (initial, state.rv, changes)
    };

    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let state_owner = shared.clone();
    let task = tokio::spawn(async move {
        let shared = state_owner;
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = start_rv;
        loop {
            let lines: Vec<Bytes> = {
                let state = lock(&shared.state);
                match state.events_since(last) {
                    Ok(events) => {
                        last = state.rv;
                        events
                            .iter()
                            .filter(|e| event_matches(e, &res, namespace.as_deref(), &opts))
                            .map(|e| event_line(e.kind, &store::present(&res, &e.object)))
                            .collect()
                    }
                    Err(()) => {
                        let gone = ApiError::gone("too old resource version");
                        vec![event_line("ERROR", &gone.to_status())]
                    }
                }
            };
            for line in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    shared.track(task.abort_handle());
    Ok(streaming_response("application/json", rx))
}

fn event_matches(
    e: &WatchEvent,
    res: &ResourceInfo,
    namespace: Option<&str>,
    opts: &ListOpts,
) -> bool {
    let Key {
        group,
        plural,
        namespace: ns,
        ..
    } = &e.key;
    *group == res.group
        && *plural == res.plural
        && namespace.is_none_or(|want| want == ns)
        && store::object_matches(&e.object, &opts.labels, &opts.fields)
}

// ---------------------------------------------------------------------------------------------
// Pod logs.

async fn pod_log(
    shared: &Arc<Shared>,
    namespace: &str,
    pod: &str,
    query: &Query,
) -> ApiResult<Response> {
    let buffer = {
        let state = lock(&shared.state);
        let Some(obj) = state.get_object("", "pods", namespace, pod) else {
            return Err(ApiError::not_found("", "pods", pod));
        };
        match state.logs.get(&(namespace.to_string(), pod.to_string())) {
            Some(buf) => buf.clone(),
            None => {
                let container = obj["spec"]["containers"][0]["name"].as_str().unwrap_or("");
                return Err(ApiError::bad_request(format!(
                    "container \"{container}\" in pod \"{pod}\" is waiting to start: the stand-in runs only pods of Jobs"
                )));
            }
        }
    };
    let tail = query.get("tailLines").and_then(|t| t.parse::<usize>().ok());
    let limit = query
        .get("limitBytes")
        .and_then(|t| t.parse::<usize>().ok());
    let text_response = |data: Vec<u8>| {
        (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], data).into_response()
    };
    let snapshot = {
        let buf = lock(&buffer);
        let mut data = buf.data.clone();
        if let Some(n) = tail {
            data = last_lines(&data, n);
        }
        if let Some(n) = limit {
            data.truncate(n);
        }
        data
    };
    if !flag(query, "follow") {
        return Ok(text_response(snapshot));
    }
    // Follow: send what there is, then what comes, until the process ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let start = lock(&buffer).data.len();
    let task = tokio::spawn(async move {
        if tx.send(Bytes::from(snapshot)).await.is_err() {
            return;
        }
        let mut sent = start;
        loop {
            let (chunk, done) = {
                let buf = lock(&buffer);
                (buf.data[sent.min(buf.data.len())..].to_vec(), buf.done)
            };
            if !chunk.is_empty() {
                sent += chunk.len();
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
            }
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    shared.track(task.abort_handle());
    Ok(streaming_response("text/plain", rx))
}

/// A 200 response whose body is whatever arrives on `rx`, until the sender goes away.
fn streaming_response(
    content_type: &'static str,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

fn last_lines(data: &[u8], n: usize) -> Vec<u8> {
    if n == 0 {
        return Vec::new();
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return data[i + 1..].to_vec();
            }
        }
    }
    data.to_vec()
}
