//! Objects in memory and the generic write path: create, update, patch, delete, list, and the
//! history that watches read from.

use super::crd;
use super::discovery::{self, ResourceInfo};
use super::errors::{ApiError, ApiResult};
use super::objects;
use super::patch::{self, PatchKind};
use super::selectors::{self, FieldRequirement, Requirement};
use super::{lock, now_rfc3339};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How many watch events are kept for watches that resume from a resourceVersion.
const HISTORY_LIMIT: usize = 20_000;

/// Settings fixed at start.
#[derive(Clone, Debug)]
pub struct Config {
    pub url: String,
    pub kubeconfig_path: PathBuf,
    pub volumes_root: PathBuf,
    pub k10_binary: Option<PathBuf>,
    pub default_namespace_uid: String,
}

/// Where an object lives. Custom objects are stored once per group/plural, whatever version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(res: &ResourceInfo, namespace: Option<&str>, name: &str) -> Key {
        Key {
            group: res.group.clone(),
            plural: res.plural.clone(),
            namespace: if res.namespaced {
                namespace.unwrap_or("").to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

/// One entry of the watch history.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
}

/// A pod's log: bytes so far, and whether the process has ended.
#[derive(Debug, Default)]
pub struct LogBuffer {
    pub data: Vec<u8>,
    pub done: bool,
}

/// Options of one write request.
#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: compute, do not store.
    pub dry_run: bool,
    /// `fieldValidation=Strict`: unknown fields of custom resources are an error.
    pub strict: bool,
    /// A write by the server itself (kubelet, seeding): keeps `status` and a given `uid`.
    pub internal: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `force` (server-side apply).
    pub force: bool,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds` (0 with `kubectl delete --force --grace-period=0`).
    pub grace_period_seconds: Option<i64>,
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListOpts {
    pub labels: Vec<Requirement>,
    pub fields: Vec<FieldRequirement>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// Everything shared by the request handlers and the kubelet.
pub struct Shared {
    pub config: Config,
    pub state: Mutex<State>,
    /// Background tasks (Job runs), aborted when the server stops.
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Requests a test holds (see [`Hold`]).
    pub holds: Mutex<Vec<Arc<Hold>>>,
    /// Until when every request is answered with this status (see `ApiServer::unavailable_for`).
    pub outage: Mutex<Option<(std::time::Instant, u16)>>,
    /// Requests received (see `ApiServer::requests`).
    pub requests: Mutex<u64>,
}

/// A request a test stops in flight: the first one of `method` whose path starts with `path`
/// waits until the test releases it, and is then dropped unanswered by the store (a 500 says
/// so), as a request is lost when its client dies. Tests use it to kill a client at an exact
/// step.
pub struct Hold {
    pub method: String,
    pub path: String,
    pub reached: tokio::sync::watch::Sender<bool>,
    pub released: tokio::sync::watch::Sender<bool>,
}

impl Hold {
    /// Waits until a request is held (panics after `timeout`).
    pub async fn reached(&self, timeout: std::time::Duration) {
        let mut rx = self.reached.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .unwrap_or_else(|_| panic!("no {} {}* request within {timeout:?}", self.method, self.path))
            .expect("hold open");
    }

    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let state = State::new(&config);
        Shared {
            config,
            state: Mutex::new(state),
            tasks: Mutex::new(Vec::new()),
            holds: Mutex::new(Vec::new()),
            outage: Mutex::new(None),
            requests: Mutex::new(0),
        }
    }

    /// Keeps a background task's handle so that stopping the server aborts it.
    pub fn track(&self, task: tokio::task::AbortHandle) {
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    pub fn abort_background_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    /// The current log of a pod, if it has one.
    pub fn pod_log(&self, namespace: &str, pod: &str) -> Option<String> {
        let state = lock(&self.state);
        let buf = state.logs.get(&(namespace.to_string(), pod.to_string()))?;
        let data = lock(buf).data.clone();
        Some(String::from_utf8_lossy(&data).into_owned())
    }
}

/// The in-memory API state.
pub struct State {
    pub volumes_root: PathBuf,
    builtin: Vec<ResourceInfo>,
    /// CRD name → the resources it serves (one per served version).
    crd_resources: BTreeMap<String, Vec<ResourceInfo>>,
    pub objects: BTreeMap<Key, Value>,
    pub rv: u64,
    history: VecDeque<WatchEvent>,
    /// Events at or below this resourceVersion are no longer in `history`.
    history_floor: u64,
    /// Wakes watchers whenever `rv` moves.
    changes: tokio::sync::watch::Sender<u64>,
    /// (object, field manager) → the fields that manager last applied.
    applied: HashMap<(Key, String), Value>,
    /// (namespace, pod) → log.
    pub logs: HashMap<(String, String), Arc<Mutex<LogBuffer>>>,
    /// Pod uid → signal that kills its process.
    pub running: HashMap<String, Arc<tokio::sync::Notify>>,
    /// Pods force-deleted while their process ran on: their end changes nothing.
    pub orphans: std::collections::HashSet<String>,
    /// ServiceAccount tokens the kubelet minted for pods: token → its ServiceAccount.
    pub tokens: HashMap<String, super::rbac::Caller>,
    /// Last cluster IP handed out (offset in 10.96.0.0/16).
    pub last_cluster_ip: u32,
}

impl State {
    fn new(config: &Config) -> State {
        let (changes, _) = tokio::sync::watch::channel(0);
        let mut state = State {
            volumes_root: config.volumes_root.clone(),
            builtin: discovery::builtin_resources(),
            crd_resources: BTreeMap::new(),
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_floor: 0,
            changes,
            applied: HashMap::new(),
            logs: HashMap::new(),
            running: HashMap::new(),
            orphans: Default::default(),
            tokens: HashMap::new(),
            last_cluster_ip: 9,
        };
        objects::seed(&mut state, &config.default_namespace_uid);
        state
    }

    // -----------------------------------------------------------------------------------------
    // Resources.

    /// Every served resource: built-ins, then custom ones.
    pub fn resources(&self) -> Vec<ResourceInfo> {
        let mut all = self.builtin.clone();
        for list in self.crd_resources.values() {
            all.extend(list.iter().cloned());
        }
        all
    }

    /// The resource served at group/version/plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.builtin
            .iter()
            .chain(self.crd_resources.values().flatten())
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// A resource by group/plural, at its preferred version (for server-internal writes).
    pub fn find_resource(&self, group: &str, plural: &str) -> Option<ResourceInfo> {
        let preferred = self.preferred_versions();
        let candidates: Vec<&ResourceInfo> = self
            .builtin
            .iter()
            .chain(self.crd_resources.values().flatten())
            .filter(|r| r.group == group && r.plural == plural)
            .collect();
        candidates
            .iter()
            .find(|r| preferred.get(group) == Some(&r.version))
            .or(candidates.first())
            .map(|r| (*r).clone())
    }

    /// Group → preferred version, for groups defined by CRDs (the storage version).
    pub fn preferred_versions(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for key in self.objects.keys().filter(|k| {
            k.group == "apiextensions.k8s.io" && k.plural == "customresourcedefinitions"
        }) {
            if !self.crd_resources.contains_key(&key.name) {
                continue;
            }
            let crd = &self.objects[key];
            if let (Some(group), Some(storage)) = (crd::group_of(crd), crd::storage_version(crd)) {
                let better = match out.get(&group) {
                    Some(current) => {
                        discovery::version_priority(&storage) > discovery::version_priority(current)
                    }
                    None => true,
                };
                if better {
                    out.insert(group, storage);
                }
            }
        }
        out
    }

    pub fn register_crd(&mut self, name: &str, resources: Vec<ResourceInfo>) {
        self.crd_resources.insert(name.to_string(), resources);
    }

    pub fn unregister_crd(&mut self, name: &str) -> Vec<ResourceInfo> {
        self.crd_resources.remove(name).unwrap_or_default()
    }

    // -----------------------------------------------------------------------------------------
    // Reads.

    pub fn get_object(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&Value> {
        self.objects.get(&Key {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    pub fn namespace_exists(&self, name: &str) -> bool {
        self.get_object("", "namespaces", "", name).is_some()
    }

    pub fn get(&self, res: &ResourceInfo, namespace: Option<&str>, name: &str) -> ApiResult<Value> {
        let key = Key::new(res, namespace, name);
        self.objects
            .get(&key)
            .map(|obj| present(res, obj))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// Keys of `res` in `namespace` (all namespaces if `None`), in name order.
    fn keys_of(&self, res: &ResourceInfo, namespace: Option<&str>) -> Vec<Key> {
        self.objects
            .keys()
            .filter(|k| k.group == res.group && k.plural == res.plural)
            .filter(|k| namespace.is_none_or(|ns| k.namespace == ns))
            .cloned()
            .collect()
    }

    /// Objects matching the selectors, presented at `res`'s version.
    pub fn select(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        opts: &ListOpts,
    ) -> Vec<(Key, Value)> {
        self.keys_of(res, namespace)
            .into_iter()
            .map(|k| {
                let obj = present(res, &self.objects[&k]);
                (k, obj)
            })
            .filter(|(_, obj)| object_matches(obj, &opts.labels, &opts.fields))
            .collect()
    }

    pub fn list(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        opts: &ListOpts,
    ) -> ApiResult<Value> {
        let mut selected = self.select(res, namespace, opts);
        if let Some(token) = &opts.continue_token {
            let start = decode_continue(token).ok_or_else(|| {
                ApiError::bad_request(format!("invalid continue token {token:?}"))
            })?;
            selected.retain(|(k, _)| {
                (k.namespace.as_str(), k.name.as_str()) > (start.0.as_str(), start.1.as_str())
            });
        }
        let mut metadata = json!({"resourceVersion": self.rv.to_string()});
        if let Some(limit) = opts.limit.filter(|l| *l > 0 && *l < selected.len()) {
            let remaining = selected.len() - limit;
            selected.truncate(limit);
            let last = &selected[limit - 1].0;
            metadata["continue"] = json!(encode_continue(&last.namespace, &last.name));
            metadata["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Value> = selected
            .into_iter()
            .map(|(_, mut obj)| {
                if !res.is_custom() {
                    // Like a real server, typed lists do not repeat apiVersion/kind per item.
                    if let Some(map) = obj.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                }
                obj
            })
            .collect();
        Ok(json!({
            "kind": res.list_kind,
            "apiVersion": res.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }

    // -----------------------------------------------------------------------------------------
    // Watch support.

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Events after `rv`; `Err` if some of them are no longer kept.
    pub fn events_since(&self, rv: u64) -> Result<Vec<WatchEvent>, ()> {
        if rv < self.history_floor {
            return Err(());
        }
        Ok(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    fn record(&mut self, kind: &'static str, key: &Key, object: &Value) {
        self.history.push_back(WatchEvent {
            rv: self.rv,
            kind,
            key: key.clone(),
            object: object.clone(),
        });
        while self.history.len() > HISTORY_LIMIT {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
        self.changes.send_replace(self.rv);
    }

    /// Stores `obj` under `key` with a new resourceVersion and records the event.
    fn store(&mut self, key: Key, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(kind, &key, &obj);
        self.objects.insert(key, obj.clone());
        obj
    }

    // -----------------------------------------------------------------------------------------
    // Writes.

    /// Checks a request body against the URL and fills what the server sets on create.
    fn prepare_new(
        &self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<(Key, Value)> {
        let Value::Object(mut obj) = body else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        check_type_meta(res, &mut obj)?;
        let meta = obj.entry("metadata").or_insert_with(|| json!({}));
        if meta.is_null() {
            *meta = json!({});
        }
        let Value::Object(meta) = meta else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        // Name (or generateName).
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    name = format!("{prefix}{}", random_suffix());
                    meta.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &res.group,
                        &res.kind,
                        "",
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    ))
                }
            }
        }
        objects::validate_name(res, &name)?;
        // Namespace.
        if res.namespaced {
            let url_ns = namespace.ok_or_else(ApiError::method_not_allowed)?;
            match meta.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta.insert("namespace".into(), json!(url_ns));
                }
            }
            if !self.namespace_exists(url_ns) {
                return Err(ApiError::not_found("", "namespaces", url_ns));
            }
        } else {
            meta.remove("namespace");
        }
        if !opts.internal {
            if meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|rv| !rv.is_empty())
            {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            meta.insert("uid".into(), json!(new_uid()));
        } else if meta.get("uid").and_then(Value::as_str).is_none() {
            meta.insert("uid".into(), json!(new_uid()));
        }
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("managedFields");
        meta.remove("selfLink");
        if res.tracks_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if res.has_status && !opts.internal {
            obj.remove("status");
        }
        let key = Key::new(res, namespace, &name);
        let obj = Value::Object(obj);
        objects::check_types(res, &obj)?;
        Ok((key, obj))
    }

    /// POST: creates an object.
    pub fn create(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let (key, mut obj) = self.prepare_new(res, namespace, body, opts)?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&res.group, &res.plural, &key.name));
        }
        if res.is_custom() {
            crd::prune(res, &mut obj, opts.strict)?;
        }
        objects::on_create(self, res, &mut obj, opts)?;
        if opts.dry_run {
            return Ok(present(res, &obj));
        }
        let stored = self.store(key, obj, "ADDED");
        objects::after_create(self, res, &stored);
        Ok(present(res, &stored))
    }

    /// The shared update path of PUT, PATCH and apply. `status_only`: the `/status` subresource.
    fn update(
        &mut self,
        res: &ResourceInfo,
        key: &Key,
        new: Value,
        status_only: bool,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let old = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, &key.name))?;
        let Value::Object(mut new_map) = new else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        check_type_meta(res, &mut new_map)?;
        let mut new = Value::Object(new_map);
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        // Name and namespace must match the URL.
        if let Some(name) = new["metadata"]["name"].as_str() {
            if name != key.name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({})",
                    key.name
                )));
            }
        }
        if let Some(ns) = new["metadata"]["namespace"].as_str() {
            if res.namespaced && !ns.is_empty() && ns != key.namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        // Optimistic concurrency.
        let given_rv = new["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let current_rv = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !given_rv.is_empty() && given_rv != current_rv {
            return Err(ApiError::stale(&res.group, &res.plural, &key.name));
        }
        if status_only {
            // Only status changes.
            let mut merged = old.clone();
            match new.get("status") {
                Some(status) => merged["status"] = status.clone(),
                None => {
                    if let Some(map) = merged.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            new = merged;
            objects::check_types(res, &new)?;
        } else {
            // Server-set metadata stays.
            for field in ["uid", "creationTimestamp", "generation"] {
                match old["metadata"].get(field) {
                    Some(v) => new["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            new["metadata"]["name"] = json!(key.name);
            if res.namespaced {
                new["metadata"]["namespace"] = json!(key.namespace);
            } else if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            if new["metadata"].get("managedFields").is_none() {
                if let Some(mf) = old["metadata"].get("managedFields") {
                    new["metadata"]["managedFields"] = mf.clone();
                }
            }
            if res.has_status && !opts.internal {
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        if let Some(map) = new.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
            }
            if res.is_custom() {
                crd::prune(res, &mut new, opts.strict)?;
            }
            objects::check_types(res, &new)?;
            objects::on_update(self, res, &old, &mut new)?;
            if res.tracks_generation() && spec_of(&old) != spec_of(&new) {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                new["metadata"]["generation"] = json!(generation);
            }
        }
        new["metadata"]["resourceVersion"] = json!(current_rv);
        if new == old {
            return Ok(present(res, &old));
        }
        if opts.dry_run {
            return Ok(present(res, &new));
        }
        let stored = self.store(key.clone(), new, "MODIFIED");
        objects::after_update(self, res, &old, &stored);
        Ok(present(res, &stored))
    }

    /// PUT on the object or its `/status`.
    pub fn replace(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        status_only: bool,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let key = Key::new(res, namespace, name);
        self.update(res, &key, body, status_only, opts)
    }

    /// Writes `status` of an object on behalf of the server (the kubelet). `None` if it is gone.
    pub fn set_status(
        &mut self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Option<Value> {
        let res = self.find_resource(group, plural)?;
        let key = Key::new(&res, Some(namespace), name);
        let mut obj = self.objects.get(&key)?.clone();
        obj["status"] = status;
        let opts = WriteOpts {
            internal: true,
            ..WriteOpts::default()
        };
        self.update(&res, &key, obj, true, &opts).ok()
    }

    /// PATCH (including server-side apply). Returns the object and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        status_only: bool,
        opts: &WriteOpts,
    ) -> ApiResult<(Value, bool)> {
        let patch_doc: Value = match kind {
            PatchKind::Apply => serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
            _ => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        };
        let key = Key::new(res, namespace, name);
        if kind == PatchKind::Apply {
            return self.apply(res, namespace, &key, patch_doc, status_only, opts);
        }
        let current = self
            .objects
            .get(&key)
            .map(|o| present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        let mut patched = current.clone();
        match kind {
            PatchKind::Json => patch::apply_json_patch(&mut patched, &patch_doc).map_err(|e| {
                ApiError::invalid(
                    &res.group,
                    &res.kind,
                    name,
                    "patch",
                    "FieldValueInvalid",
                    &e,
                )
            })?,
            PatchKind::Merge => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                patch::apply_merge_patch(&mut patched, &patch_doc)
            }
            PatchKind::Strategic => {
                if !patch_doc.is_object() {
                    return Err(ApiError::bad_request(
                        "a strategic merge patch must be a JSON object",
                    ));
                }
                patch::apply_strategic_patch(&mut patched, &patch_doc)
            }
            PatchKind::Apply => unreachable!("handled above"),
        }
        if !patched.is_object() {
            return Err(ApiError::invalid(
                &res.group,
                &res.kind,
                name,
                "patch",
                "FieldValueInvalid",
                "the patched object is not a JSON object",
            ));
        }
        // A patch only asks for a resourceVersion precondition if it sets one.
        if patched["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"] {
            if let Some(m) = patched["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
        }
        let updated = self.update(res, &key, patched, status_only, opts)?;
        Ok((updated, false))
    }

    /// Server-side apply: create-or-merge with per-manager field bookkeeping.
    fn apply(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        key: &Key,
        config: Value,
        status_only: bool,
        opts: &WriteOpts,
    ) -> ApiResult<(Value, bool)> {
        let manager = opts
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "PATCH requests with apply content type must specify a fieldManager",
                )
            })?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        }
        match config["metadata"]["name"].as_str() {
            Some(n) if n == key.name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    key.name
                )))
            }
            None => {
                return Err(ApiError::bad_request(
                    "metadata.name is required in an applied configuration",
                ))
            }
        }
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        let fields = patch::owned_fields(&config);
        let entry = managed_entry(&manager, &res.api_version(), &fields, None);

        let Some(current) = self.objects.get(key).map(|o| present(res, o)) else {
            if status_only {
                return Err(ApiError::not_found(&res.group, &res.plural, &key.name));
            }
            let mut obj = config.clone();
            obj["metadata"]["managedFields"] = json!([entry]);
            let mut create_opts = opts.clone();
            create_opts.internal = false;
            let created = self.create(res, namespace, obj, &create_opts)?;
            if !opts.dry_run {
                self.applied.insert((key.clone(), manager), fields);
                // `create` drops managedFields from the body; record ours.
                if let Some(stored) = self.objects.get_mut(key) {
                    stored["metadata"]["managedFields"] = json!([entry]);
                }
            }
            let shown = self
                .objects
                .get(key)
                .map(|o| present(res, o))
                .unwrap_or(created);
            return Ok((shown, true));
        };

        // Conflicts with other Apply managers.
        let mut conflicts = Vec::new();
        for ((k, other), owned) in &self.applied {
            if k != key || *other == manager {
                continue;
            }
            for path in patch::leaf_paths(&fields) {
                if patch::get_path(owned, &path).is_some()
                    && patch::get_path(&current, &path) != patch::get_path(&fields, &path)
                {
                    conflicts.push((other.clone(), path));
                }
            }
        }
        if !conflicts.is_empty() && !opts.force {
            let list: Vec<(String, String)> = conflicts
                .iter()
                .map(|(m, p)| (m.clone(), patch::path_string(p)))
                .collect();
            return Err(ApiError::apply_conflict(
                &res.group,
                &res.plural,
                &key.name,
                &list,
            ));
        }

        let mut new = current.clone();
        // Fields this manager applied before and no longer applies are removed,
        // unless another manager applies them too.
        if let Some(previous) = self.applied.get(&(key.clone(), manager.clone())) {
            for path in patch::leaf_paths(previous) {
                let still_applied = patch::get_path(&fields, &path).is_some();
                let co_owned = self.applied.iter().any(|((k, m), owned)| {
                    k == key && *m != manager && patch::get_path(owned, &path).is_some()
                });
                if !still_applied && !co_owned {
                    patch::remove_path(&mut new, &path, &fields);
                }
            }
        }
        patch::merge_applied(&mut new, &fields);
        if let Some(rv) = config["metadata"]["resourceVersion"].as_str() {
            new["metadata"]["resourceVersion"] = json!(rv);
        } else if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        // managedFields: one Apply entry per manager; the time only moves when the fields do.
        let mut managed: Vec<Value> = current["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let old_entry = managed
            .iter()
            .position(|e| e["manager"] == json!(manager) && e["operation"] == "Apply");
        let entry = managed_entry(
            &manager,
            &res.api_version(),
            &fields,
            old_entry.map(|i| &managed[i]),
        );
        match old_entry {
            Some(i) => managed[i] = entry,
            None => managed.push(entry),
        }
        new["metadata"]["managedFields"] = json!(managed);

        let updated = self.update(res, key, new, status_only, opts)?;
        if !opts.dry_run {
            if opts.force {
                for (other, path) in &conflicts {
                    if let Some(owned) = self.applied.get_mut(&(key.clone(), other.clone())) {
                        patch::remove_path(owned, path, &Value::Null);
                    }
                }
            }
            self.applied.insert((key.clone(), manager), fields);
        }
        Ok((updated, false))
    }

    /// DELETE of one object, with cascades (namespace contents, CRD objects, owner references).
    pub fn delete(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let key = Key::new(res, namespace, name);
        let obj = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))?;
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if let Some(want) = &opts.precondition_uid {
            if *want != uid {
                return Err(ApiError::conflict(
                    &res.group,
                    &res.plural,
                    name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                ));
            }
        }
        if let Some(want) = &opts.precondition_rv {
            let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if want != rv {
                return Err(ApiError::conflict(
                    &res.group,
                    &res.plural,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"),
                ));
            }
        }
        if opts.dry_run {
            return Ok(present(res, &obj));
        }
        let removed = self.remove(res, &key);
        let orphan_by_default = res.is("batch", "jobs");
        let orphan = match opts.propagation.as_deref() {
            Some("Orphan") => true,
            Some(_) => false,
            None => orphan_by_default,
        };
        if !orphan && !uid.is_empty() {
            self.delete_dependents(&uid);
        }
        Ok(present(res, &removed))
    }

    /// Removes one object, recording the DELETED event, and runs the type's delete hook.
    fn remove(&mut self, res: &ResourceInfo, key: &Key) -> Value {
        let Some(mut obj) = self.objects.remove(key) else {
            return Value::Null;
        };
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record("DELETED", key, &obj);
        self.applied.retain(|(k, _), _| k != key);
        objects::after_delete(self, res, &obj);
        obj
    }

    /// Removes every object of `group`/`plural` (a deleted CRD's objects).
    pub fn remove_all_of(&mut self, res: &ResourceInfo) {
        for key in self.keys_of(res, None) {
            self.remove(res, &key);
        }
    }

    /// Removes everything in a namespace.
    pub fn remove_namespace_contents(&mut self, namespace: &str) {
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in keys {
            if let Some(res) = self.find_resource(&key.group, &key.plural) {
                self.remove(&res, &key);
            } else {
                self.objects.remove(&key);
            }
        }
    }

    /// Garbage collection: deletes (in background) every object owned by `owner_uid`.
    fn delete_dependents(&mut self, owner_uid: &str) {
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, obj)| {
                obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == json!(owner_uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in dependents {
            let Some(res) = self.find_resource(&key.group, &key.plural) else {
                continue;
            };
            let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            let opts = DeleteOpts {
                propagation: Some("Background".into()),
                ..DeleteOpts::default()
            };
            let _ = self.delete(&res, ns, &key.name, &opts);
        }
    }

    /// DELETE on a collection: deletes every selected object, returns them as a list.
    pub fn delete_collection(
        &mut self,
        res: &ResourceInfo,
        namespace: Option<&str>,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let selected = self.select(res, namespace, list);
        let mut items = Vec::new();
        for (key, _) in selected {
            let ns = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
            if let Ok(obj) = self.delete(res, ns, &key.name, opts) {
                items.push(obj);
            }
        }
        Ok(json!({
            "kind": res.list_kind,
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()},
            "items": items,
        }))
    }
}

/// An object as served at `res`'s group/version.
pub fn present(res: &ResourceInfo, obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), json!(res.api_version()));
        map.insert("kind".into(), json!(res.kind));
    }
    out
}

/// Fills `apiVersion`/`kind` or refuses ones that contradict the URL.
fn check_type_meta(res: &ResourceInfo, obj: &mut Map<String, Value>) -> ApiResult<()> {
    let want_version = res.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != want_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )))
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != res.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )))
        }
        _ => {}
    }
    obj.insert("apiVersion".into(), json!(want_version));
    obj.insert("kind".into(), json!(res.kind));
    Ok(())
}

/// Everything but metadata and status: what moves `generation`.
fn spec_of(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    out
}

fn managed_entry(
    manager: &str,
    api_version: &str,
    fields: &Value,
    previous: Option<&Value>,
) -> Value {
    let fields_v1 = patch::fields_v1(fields);
    let time = match previous {
        Some(p) if p["fieldsV1"] == fields_v1 => p["time"].clone(),
        _ => json!(now_rfc3339()),
    };
    json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1,
    })
}

pub fn object_matches(obj: &Value, labels: &[Requirement], fields: &[FieldRequirement]) -> bool {
    selectors::labels_match(labels, obj["metadata"].get("labels"))
        && selectors::fields_match(fields, obj)
}

/// A random UUID v4.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Five random lowercase letters, as the API server appends to generateName.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn encode_continue(namespace: &str, name: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{namespace}/{name}"))
}

fn decode_continue(token: &str) -> Option<(String, String)> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (ns, name) = text.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}
