//! A Kubernetes API server stand-in for tests: plain HTTP on 127.0.0.1, objects in memory.
//!
//! No real kube-apiserver can be installed here, so this module keeps the part of the API
//! contract that `kubectl-k10` (through the `kube` crate) and `kubectl` rely on. This comment
//! is that contract; anything it does not name is not modelled.
//!
//! # Connection
//! * Plain HTTP on `127.0.0.1:<port>` (a free port unless one is asked for). A kubeconfig is
//!   written with cluster `standin`, user `standin` (bearer token `standin-token`, which is never
//!   checked), and context `standin` (namespace `default`) as the current context.
//! * Authentication and RBAC as in `rbac.rs`: the kubeconfig's token is the cluster admin; a pod
//!   the stand-in kubelet runs gets its ServiceAccount's token and is authorized by RBAC. No
//!   admission webhooks.
//! * Request bodies: JSON or YAML. Protobuf only for v1 Namespace, ConfigMap, Secret and
//!   ServiceAccount, which is what `kubectl create namespace|configmap|secret|serviceaccount`
//!   send; other protobuf bodies get 415 (e.g. `kubectl create deployment`: use
//!   `--dry-run=client -o yaml | kubectl apply -f -`). Responses are always JSON.
//!
//! # Discovery
//! * `/version` (reports v1.34), `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`
//!   in the legacy (non-aggregated) format, always `application/json`: clients that ask for
//!   aggregated discovery fall back, as they do with an old server.
//! * Built-in resources: core v1 namespaces, secrets, configmaps, serviceaccounts, services,
//!   persistentvolumeclaims, persistentvolumes, pods (+`pods/log`), events, endpoints; apps/v1
//!   deployments, statefulsets, daemonsets, replicasets; batch/v1 jobs, cronjobs;
//!   rbac.authorization.k8s.io/v1 roles, rolebindings, clusterroles, clusterrolebindings;
//!   apiextensions.k8s.io/v1 customresourcedefinitions; storage.k8s.io/v1 storageclasses;
//!   discovery.k8s.io/v1 endpointslices; networking.k8s.io/v1 ingresses, networkpolicies;
//!   policy/v1 poddisruptionbudgets; coordination.k8s.io/v1 leases. Each with kind, scope, verbs,
//!   kubectl's short names and a `/status` subresource where the real one has it.
//! * `/openapi/v3` is a minimal document without schemas: each PATCH operation declares the
//!   `fieldValidation` parameter (so kubectl validates on the server, sending
//!   `fieldValidation=Strict`) and no strategic merge patch (so `kubectl apply` builds its patches
//!   from its compiled-in types). `/openapi/v2` answers 404; `kubectl explain` does not work.
//!   `/healthz`, `/livez`, `/readyz` answer `ok`.
//!
//! # CustomResourceDefinitions
//! * Creating a CRD (name must be `<plural>.<group>`, exactly one storage version) adds one
//!   resource per served version to discovery at once; the group's preferred version is the
//!   storage version (the highest-priority one if several CRDs share a group). Its status gets
//!   `acceptedNames`, `storedVersions` and conditions `NamesAccepted=True`, `Established=True`.
//!   Updating it re-derives the resources; deleting it removes them and every object of it.
//! * Custom objects are stored once, whatever version they are written through, and served under
//!   the version asked for with no conversion (the `None` conversion strategy).
//! * Unknown fields are pruned against the version's `openAPIV3Schema` (`properties`,
//!   `items`, `additionalProperties`, `x-kubernetes-preserve-unknown-fields`); with
//!   `fieldValidation=Strict` (kubectl's default) a pruned field is a 400 instead.
//!   No other schema validation, no defaulting, no CEL rules, no conversion webhooks.
//! * `status` subresource when the CRD version declares it; no `scale` subresource.
//!
//! # Objects
//! * Verbs: create (POST), get, list (cluster-wide too), watch, replace (PUT), patch, delete,
//!   deletecollection. `dryRun=All` on writes returns the result without storing it.
//! * The server sets `metadata.uid` (UUID v4), `resourceVersion` (one global counter),
//!   `creationTimestamp` (RFC 3339), `generation` (custom resources, CRDs and the apps, batch,
//!   networking.k8s.io and policy groups; bumped when anything but metadata and status changes),
//!   and fills `generateName`. A write that changes nothing keeps the old resourceVersion.
//! * Lists: kind `<Kind>List`, `metadata.resourceVersion`, `limit`/`continue` paging. As on a
//!   real server, items of built-in lists carry no `apiVersion`/`kind`; custom resource items do.
//! * `labelSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-joined.
//!   `fieldSelector`: `=`, `==`, `!=` on any dotted path (`metadata.name`, `metadata.namespace`,
//!   `status.phase`, ...); a real server accepts only a few fields per kind.
//! * Create refuses: an existing name (409 AlreadyExists), a missing namespace (404), a missing
//!   or malformed name (422 Invalid), a set `resourceVersion` (500, like the real storage layer),
//!   an `apiVersion`/`kind`/namespace that contradicts the URL (400).
//! * Every write decodes built-in kinds as their k8s-openapi type and every object's metadata as
//!   `ObjectMeta`: a field of the wrong JSON type is a 400, as on a real server (so is a missing
//!   field those types require, where a real server would say 422). Unknown fields of built-in
//!   kinds are kept, not reported.
//! * A path with an empty segment (an empty name, `…/storageclasses/`) is 404 like any unknown
//!   route, never the collection. (kube-rs refuses an empty name itself, before sending.)
//! * Replace: 409 Conflict when `metadata.resourceVersion` is given and stale; without it the
//!   update is unconditional. The same precondition applies to patches that carry one.
//! * Patch: `application/json-patch+json` (RFC 6902), `application/merge-patch+json` (RFC 7386),
//!   `application/strategic-merge-patch+json` = merge patch plus the directives kubectl emits:
//!   `$setElementOrder/<list>` (the list is merged by the key those entries name, in that order),
//!   `$patch: delete|replace|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`. Without
//!   `$setElementOrder`, the well-known merging lists are merged item by item by their patch
//!   merge key, known by field name (`containers`, `initContainers`, `env`, `volumes`,
//!   `imagePullSecrets` by `name`; `volumeMounts` by `mountPath`; `ports` by `containerPort` or
//!   `port`; `conditions` by `type`; `ownerReferences` by `uid`; ...) and `finalizers` is a
//!   union; any other list is replaced whole. A real server takes all this from its schemas.
//! * Server-side apply (`application/apply-patch+yaml`, `fieldManager` required): create if
//!   absent, else merge the applied configuration into the object (maps merge, lists replace).
//!   The stand-in remembers each Apply manager's last configuration: fields a manager applied
//!   before and leaves out now are removed, and changing a field last applied by another manager
//!   is a 409 Conflict unless `force=true` (which takes the field over). Updates by non-apply
//!   requests are not tracked as owners. `managedFields` holds one `Apply` entry per manager.
//! * Status subresource: the main resource ignores status changes, `/status` changes only status.
//!   Create clears `status` of resources that have the subresource.
//! * Delete returns the deleted object. Finalizers and grace periods are ignored: objects go at
//!   once. Deleting a namespace deletes everything in it. Owner references are garbage-collected
//!   at once: dependents are deleted unless the policy is `Orphan` (the default for batch/v1 Jobs,
//!   as on a real server; kubectl sends `Background`). Preconditions (uid, resourceVersion) hold.
//! * Watch (`?watch=true` and the legacy `/watch/` prefix): newline-delimited events from a
//!   given `resourceVersion` (410 Gone when it is older than the kept history), or the current
//!   objects as `ADDED` first; `sendInitialEvents` ends with the initial-events-end bookmark;
//!   `timeoutSeconds` ends the stream.
//! * Errors are always `Status` objects (`NotFound` 404, `AlreadyExists` 409, `Conflict` 409,
//!   `BadRequest` 400, `MethodNotAllowed` 405, `Invalid` 422, `Gone` 410,
//!   `UnsupportedMediaType` 415, `InternalError` 500) with `details {name, group, kind}`.
//!
//! # Built-in behaviour kept
//! * Seed: namespaces `default`, `kube-system`, `kube-public` with stable UIDs (the `default`
//!   UID is an option, since the product uses it as the cluster ID), a default StorageClass
//!   `standard` (annotation `storageclass.kubernetes.io/is-default-class: "true"`, provisioner
//!   `standin.csi.k10.dev` = [`STANDARD_PROVISIONER`], the CSI driver name of the stand-in's
//!   volumes; reclaimPolicy Delete, volumeBindingMode Immediate). Every namespace gets, like a
//!   real cluster's controllers would, a `default` ServiceAccount and a `kube-root-ca.crt`
//!   ConfigMap, and the label `kubernetes.io/metadata.name`.
//! * Secrets: `stringData` is folded into base64 `data`; `type` defaults to `Opaque`.
//! * Services get a cluster IP from 10.96.0.0/16 (a taken IP is 422 Invalid; an update that
//!   omits it keeps the old one).
//! * PersistentVolumeClaims are provisioned at once: `storageClassName` defaults to the default
//!   StorageClass, `status.phase: Bound`, a PersistentVolume `pvc-<uid>` (reclaim policy Delete,
//!   annotation `pv.kubernetes.io/provisioned-by` = the class's provisioner), and an empty local
//!   directory `<volumes_root>/<namespace>/<claim>` (an existing directory is kept as it is),
//!   except for claims restored from a VolumeSnapshot (see CSI snapshots). The StorageClass
//!   need not exist. A claim of class `""` is bound statically, as the real PV controller does: to
//!   the PersistentVolume its `volumeName` names, or to the first PersistentVolume without a class
//!   that no claim holds; without one it stays Pending (and is not bound later when one appears).
//!   Pods that mount a claim that is not Bound stay Pending, with a `FailedScheduling` event.
//! * Pod Security admission: a namespace labelled `pod-security.kubernetes.io/enforce=baseline` or
//!   `restricted` refuses the pods of Jobs that violate the level (the checks of the standard for
//!   host namespaces, privileged, capabilities, hostPath and volume types, seccomp, runAsNonRoot,
//!   runAsUser 0, allowPrivilegeEscalation): the Job gets a `FailedCreate` event and no pod, as from
//!   the real Job controller. Pods created directly through the API are not checked. Deleting the
//!   claim deletes that directory and the PV, so a deleted namespace really loses its volume data.
//! * ServiceAccount admission: the pod of a Job whose ServiceAccount does not exist in its
//!   namespace is refused the same way (`error looking up service account …`).
//! * Jobs are defaulted like the real API (selector on `batch.kubernetes.io/controller-uid`,
//!   the matching template labels, completions/parallelism/backoffLimit) and refused (422)
//!   without containers, without an image, or with a restartPolicy other than Never/OnFailure.
//!
//! # Stand-in kubelet (Jobs only)
//! When a batch/v1 Job is created (not suspended), the first container's `command + args` is
//! run as a local process, in a background task:
//! * `argv[0]`'s basename must be `kubectl-k10`; it runs as the configured binary
//!   (`ApiServerOptions::k10_binary`) with `argv[1..]`. Any other program, a second container or
//!   an init container makes the Job fail with a clear reason: only the product's binary runs.
//! * Environment: cleared, then `PATH`, `HOME`, `RUST_LOG`, `RUST_BACKTRACE` from the server's
//!   own environment, `HOSTNAME` = the pod name, the container's `env` (literal values with
//!   `$(VAR)` expansion, `secretKeyRef`, `configMapKeyRef`, `fieldRef` for metadata.name,
//!   metadata.namespace, metadata.uid, metadata.labels/annotations['k'], spec.nodeName,
//!   spec.serviceAccountName, status.podIP, status.hostIP) and `envFrom` (Secrets and ConfigMaps,
//!   with `prefix`), then `KUBECONFIG` = this server's kubeconfig (standing in for in-cluster
//!   service-account access) and `K10_STANDIN=1`. A missing Secret, ConfigMap or key that is not
//!   `optional` fails the Job (CreateContainerConfigError).
//! * `kubectl delete pod --force --grace-period=0` of a Job's running pod (gracePeriodSeconds 0)
//!   removes the pod at once, lets its process run on to its end (a node stops a container only
//!   when it notices; its end changes nothing any more), and starts a replacement pod at once, as
//!   a Job controller that does not count deleted pods as failed does (before pod-failure
//!   tracking, v1.24 and older). A graceful deletion stops the process and fails the Job
//!   (`PodDeleted`).
//! * User: the process runs as the container's (else the pod's) `runAsUser`/`runAsGroup` (group
//!   0 when only a user is set), as a kubelet starts a container, where the stand-in itself runs
//!   as root (CI); otherwise as the stand-in's own user. For another user, the directories above
//!   the pod's volumes and the kubeconfig are opened to pass through (not list), the pod's scratch
//!   directory is readable, and the binary is copied where that user can run it. `fsGroup`,
//!   supplementary groups and capabilities are not applied: the process has what its user has.
//! * Memory: a container with `resources.limits.memory` is killed (SIGKILL) once its peak
//!   resident set (`VmHWM`, read every 10 ms) goes over it, as the kernel does a cgroup over its
//!   limit: its state is `terminated` with `exitCode: 137`, `reason: OOMKilled`, and the Job
//!   fails with `BackoffLimitExceeded`. File pages count (a cgroup would reclaim them first: the
//!   stand-in is stricter); a process that goes over in its last 10 ms is missed. CPU limits and
//!   requests are not enforced.
//! * Volumes: `persistentVolumeClaim` → `<volumes_root>/<namespace>/<claimName>` (the claim must
//!   exist, else the Job fails); `secret`, `configMap` → files written to a scratch directory;
//!   `emptyDir` → an empty scratch directory. Other volume types fail the Job. `readOnly` is not
//!   enforced. `subPath` is honoured.
//! * Path translation (the process is local, so container paths do not exist): every argument,
//!   env value and `workingDir` that equals a volumeMount's `mountPath`, or starts with it followed
//!   by `/`, has that prefix replaced by the mount's local directory (longest mountPath first).
//!   Without `workingDir` the process runs in the pod's scratch directory.
//! * When the Job cannot run, its `Failed` condition says why (reason `StandinUnsupportedCommand`,
//!   `StandinUnsupportedPod`, `StandinUnsupportedVolume`, `StandinNoBinary`,
//!   `CreateContainerConfigError`, `FailedMount` or `StartError`) and the pod's log repeats it.
//! * A Pod `<job>-<5 random lowercase letters>` is created (the Job's template labels, `job-name`,
//!   `controller-uid`, an owner reference to the Job, `nodeName: standin-node`); its phase goes
//!   Running, then Succeeded or Failed. The process's stdout and stderr, interleaved, are the pod's
//!   log at `/api/v1/namespaces/<ns>/pods/<pod>/log` (`follow`, `tailLines`, `limitBytes`).
//! * The Job's status follows the real Job controller: `startTime`, `active`, then
//!   `completionTime`, `succeeded: 1` and conditions `SuccessCriteriaMet`, `Complete`; or
//!   `failed: 1` and conditions `FailureTarget`, `Failed` with reason `BackoffLimitExceeded` and the
//!   exit code in the message. There are no retries (backoffLimit is not honoured): one pod, one
//!   run. `activeDeadlineSeconds` kills the process (reason `DeadlineExceeded`). Deleting the pod
//!   (or the Job with a non-Orphan policy) kills the process (the Job, if left, fails with reason
//!   `PodDeleted`). A Job created suspended runs when a patch resumes it (`spec.suspend` true → false); a
//!   replace (PUT) that resumes one is not modelled.
//!
//! # CSI snapshots
//! What the external-snapshotter, the CSI external-provisioner and a CSI driver do, for every
//! driver (the seeded class's is `standin.csi.k10.dev`, [`STANDARD_PROVISIONER`]):
//! * The `snapshot.storage.k8s.io` API is not built in: as on a real cluster, it is served once
//!   its CRDs are applied. [`VOLUME_SNAPSHOT_CRDS`] holds minimal v1 ones for
//!   `kubectl apply -f -`: VolumeSnapshotClass and VolumeSnapshotContent (cluster-scoped),
//!   VolumeSnapshot (namespaced), `status` subresources on the last two, schemas that keep every
//!   field. The behaviour below hangs on the group and plurals, whatever CRDs define them.
//! * Creating a VolumeSnapshot takes it at once, within the create request: the create response
//!   has no status yet (as on a real cluster), a GET right after it has the final one. It is
//!   taken when `spec.source.persistentVolumeClaimName` names a Bound claim of its namespace and
//!   the VolumeSnapshotClass `spec.volumeSnapshotClassName` exists and its `driver` equals the
//!   `provisioner` of the claim's StorageClass (`spec.storageClassName`, else the default
//!   StorageClass). Without `spec.volumeSnapshotClassName`, the one VolumeSnapshotClass of that
//!   driver annotated `snapshot.storage.kubernetes.io/is-default-class: "true"` is used (the
//!   spec is not rewritten to name it).
//! * Taking it copies the claim's directory `<volumes_root>/<namespace>/<claim>` to
//!   `<volumes_root>/.snapshots/<snapshot uid>` ([`SNAPSHOTS_DIR`]): regular files with their
//!   contents, modes and mtimes, directories with their modes and mtimes, symlinks with their
//!   targets (other file types are skipped, hard links become copies). The status becomes
//!   `readyToUse: true`, `creationTime` (RFC 3339), `restoreSize` (the claim's
//!   `spec.resources.requests.storage`) and `boundVolumeSnapshotContentName:
//!   snapcontent-<snapshot uid>`. If the VolumeSnapshotContent resource is served, that object
//!   is created too: spec `driver`, `deletionPolicy` (the class's, default Delete),
//!   `volumeSnapshotClassName`, `source.volumeHandle` (the PV's name), `volumeSnapshotRef`;
//!   status `readyToUse: true`, `creationTime` (Unix nanoseconds), `restoreSize` (bytes),
//!   `snapshotHandle` (the snapshot's uid).
//! * A VolumeSnapshot whose `spec.source.volumeSnapshotContentName` names a VolumeSnapshotContent
//!   (pre-provisioned, or another snapshot's content re-bound, as data movers expose a snapshot
//!   in their own namespace) binds to it when the content's `spec.volumeSnapshotRef` names that
//!   snapshot (namespace and name) and the driver has the content's handle
//!   (`spec.source.snapshotHandle`, else `status.snapshotHandle`): the snapshot's status gets
//!   `boundVolumeSnapshotContentName`, `readyToUse: true`, `creationTime` (no `restoreSize`: the
//!   stand-in's driver reports none for an imported handle), the content's status
//!   `snapshotHandle` and `readyToUse: true`. A content created with a handle gets its status at
//!   once (`readyToUse` says whether the driver has it). Nothing checks that two contents do not
//!   share one handle (the real controllers do not either).
//! * Otherwise (no source claim or a missing one, a claim not Bound, a missing class or no
//!   single default one, a driver that is not the provisioner, a content that names another
//!   snapshot or a handle the driver lacks, or a failed copy) nothing is copied and
//!   the status is `readyToUse: false` with `error: {message, time}` saying why. The outcome is
//!   decided once, at create: nothing is retried (fixing the cause does not make the snapshot
//!   ready; create another), and later changes to a VolumeSnapshot are not acted on.
//! * A PersistentVolumeClaim created with `spec.dataSource` or `spec.dataSourceRef`
//!   `{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name}` (each of the two defaults
//!   to the other, as the API server does): if that VolumeSnapshot exists in the claim's
//!   namespace and is ready, the claim is provisioned as usual (Bound, its PV) and its directory
//!   starts as a copy of the snapshot's directory (replacing whatever was there). If the
//!   snapshot is missing, not ready, or in another namespace, the claim stays `Pending` for good
//!   (`status.phase: Pending`, no `volumeName`, no PV), its directory is created empty (a Job
//!   can still mount it), and a Warning Event `ProvisioningFailed` on the claim says why. The
//!   restored claim's StorageClass, size and access modes are not checked against the snapshot.
//!   Other data sources (claims, populators) are ignored: such a volume starts empty.
//! * Deleting a VolumeSnapshot (directly, with its namespace, or with its CRD) deletes its bound
//!   VolumeSnapshotContent when the content's `deletionPolicy` is `Delete`; with `Retain` the
//!   content stays. Deleting a content with `deletionPolicy: Delete` removes the data of its
//!   handle (the directory under [`SNAPSHOTS_DIR`]); with `Retain` the data outlives it (as a
//!   real snapshot on the storage system does). The policy may be changed on a live content.
//!   Without the content resource served, deleting a snapshot removes its data. Claims restored
//!   from a snapshot keep their data. There are no finalizers: a content in use by a snapshot
//!   can be deleted under it.
//!
//! # Test hooks
//! [`ApiServer::hold`] stops the next request of a method whose path starts with a prefix (and, for
//! `prefix?fragment`, whose query contains the fragment, such as a watch's field selector), before
//! it is authorized or stored, until the test releases it; it is then answered with a 500 and
//! never stored, as a request is lost when its client dies. Tests kill a client (a control pod)
//! at an exact step with it.
//!
//! [`ApiServer::requests`] counts the requests received (for the scale test's requests per
//! namespace).
//!
//! [`ApiServer::unavailable_for`] answers every request with a 503 (restarting) or a 500 (its
//! storage failing) for a while; what runs on the nodes (the kubelet's pods) goes on.
//!
//! # Not modelled
//! Scheduling and nodes, every controller except the Job kubelet and the snapshot controller above
//! (Deployments, StatefulSets, DaemonSets, ReplicaSets and CronJobs never create pods; bare Pods
//! stay `Pending`), finalizers and graceful deletion (no `deletionTimestamp`, no Terminating
//! namespaces), admission (quotas, limit ranges; Pod Security only for the Job pods above, and the
//! ServiceAccount check), RBAC beyond `rbac.rs` (escalation checks, token
//! expiry), field validation and defaulting of built-in types beyond what is listed above,
//! immutable-field checks, CRD schema validation other than pruning, conversion, scale
//! subresources, protobuf beyond the four kinds above, Table output (`kubectl get` prints its
//! default NAME/AGE columns, CRD printer columns are not shown), aggregated discovery, OpenAPI
//! schemas, `exec`/`attach`/`port-forward`, events from the system (but the `ProvisioningFailed`
//! one above), volume expansion, volume cloning from a claim, group snapshots, and persistence
//! (everything is lost when the server stops).
#![allow(dead_code)]

mod crd;
mod discovery;
mod errors;
mod handlers;
mod kubelet;
mod objects;
mod openapi;
mod patch;
mod podsecurity;
mod protobuf;
mod rbac;
mod selectors;
mod snapshots;
mod store;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use store::Shared;

/// UID of the `default` namespace unless [`ApiServerOptions::default_namespace_uid`] says otherwise.
pub const DEFAULT_NAMESPACE_UID: &str = "5f3a0c1e-7b2d-4c8e-9a10-0d1e2f3a4b5c";
/// UID of the seeded `kube-system` namespace.
pub const KUBE_SYSTEM_UID: &str = "6a4b1d2f-8c3e-4d9f-8b21-1e2f3a4b5c6d";
/// UID of the seeded `kube-public` namespace.
pub const KUBE_PUBLIC_UID: &str = "7b5c2e3a-9d4f-4ea0-9c32-2f3a4b5c6d7e";
/// Provisioner of the seeded default StorageClass `standard`: the CSI driver name a matching
/// VolumeSnapshotClass gives as its `driver`.
pub const STANDARD_PROVISIONER: &str = "standin.csi.k10.dev";
/// Minimal v1 CRDs of the snapshot API (VolumeSnapshotClass, VolumeSnapshot,
/// VolumeSnapshotContent) as multi-document YAML, for `kubectl apply -f -`.
pub const VOLUME_SNAPSHOT_CRDS: &str = snapshots::VOLUME_SNAPSHOT_CRDS;
/// The directory under the volumes root that holds snapshot data (`<root>/.snapshots/<uid>`).
pub const SNAPSHOTS_DIR: &str = snapshots::SNAPSHOTS_DIR;

/// How to start an [`ApiServer`].
#[derive(Clone, Debug, Default)]
pub struct ApiServerOptions {
    /// The `kubectl-k10` binary the stand-in kubelet runs for Jobs. `None`: Jobs fail.
    pub k10_binary: Option<PathBuf>,
    /// Root of the local directories that stand in for PVCs (`<root>/<namespace>/<claim>`).
    /// Empty: a directory inside the server's own temporary directory.
    pub volumes_root: PathBuf,
    /// UID of the `default` namespace (the product's cluster ID). `None`: [`DEFAULT_NAMESPACE_UID`].
    pub default_namespace_uid: Option<String>,
    /// Where to write the kubeconfig. `None`: `kubeconfig` in the server's temporary directory.
    pub kubeconfig_path: Option<PathBuf>,
    /// Port to bind on 127.0.0.1. `None` or `Some(0)`: any free port.
    pub port: Option<u16>,
}

/// A running stand-in API server. Dropping it stops the server and kills the Job processes.
pub struct ApiServer {
    addr: SocketAddr,
    kubeconfig_path: PathBuf,
    volumes_root: PathBuf,
    shared: Arc<Shared>,
    server_task: Option<tokio::task::AbortHandle>,
    background: Option<Background>,
    _tempdir: Option<tempfile::TempDir>,
}

/// The thread and runtime of a server started with [`ApiServer::start_in_background`].
struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ApiServer {
    /// Starts the server on the current tokio runtime and writes the kubeconfig.
    pub async fn start(opts: ApiServerOptions) -> io::Result<ApiServer> {
        let tempdir = tempfile::Builder::new().prefix("k8s-standin-").tempdir()?;
        // Absolute paths: Job processes run in other working directories.
        let kubeconfig_path = std::path::absolute(
            opts.kubeconfig_path
                .clone()
                .unwrap_or_else(|| tempdir.path().join("kubeconfig")),
        )?;
        let volumes_root = if opts.volumes_root.as_os_str().is_empty() {
            tempdir.path().join("volumes")
        } else {
            std::path::absolute(&opts.volumes_root)?
        };
        std::fs::create_dir_all(&volumes_root)?;
        let k10_binary = opts
            .k10_binary
            .as_deref()
            .map(std::path::absolute)
            .transpose()?;

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port.unwrap_or(0))).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        write_kubeconfig(&kubeconfig_path, &url)?;

        let shared = Arc::new(Shared::new(store::Config {
            url,
            kubeconfig_path: kubeconfig_path.clone(),
            volumes_root: volumes_root.clone(),
            k10_binary,
            default_namespace_uid: opts
                .default_namespace_uid
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE_UID.to_string()),
        }));
        let app = handlers::router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("k8s stand-in: server stopped: {err}");
            }
        });
        Ok(ApiServer {
            addr,
            kubeconfig_path,
            volumes_root,
            shared,
            server_task: Some(task.abort_handle()),
            background: None,
            _tempdir: Some(tempdir),
        })
    }

    /// Starts the server on its own multi-thread runtime in a background thread, for plain
    /// (non-async) tests that drive the built binary with `std::process::Command`.
    /// Panics if the server cannot start (a broken test environment).
    pub fn start_in_background(opts: ApiServerOptions) -> ApiServer {
        ApiServer::try_start_in_background(opts).expect("the Kubernetes API stand-in starts")
    }

    /// [`ApiServer::start_in_background`], returning the error instead of panicking.
    pub fn try_start_in_background(opts: ApiServerOptions) -> io::Result<ApiServer> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("k8s-standin".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match ApiServer::start(opts).await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok(server));
                            let _ = stop_rx.await;
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                        }
                    }
                });
                // Dropping the runtime cancels every task: the server and the Job processes.
            })?;
        let mut server = ready_rx
            .recv()
            .map_err(|_| io::Error::other("stand-in server thread died while starting"))??;
        // The runtime ends with the thread; the tasks die with it.
        server.server_task = None;
        server.background = Some(Background {
            stop: Some(stop_tx),
            thread: Some(thread),
        });
        Ok(server)
    }

    /// The server's base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The generated kubeconfig.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// A kubeconfig acting as the ServiceAccount `namespace/name` (a token minted as for a pod,
    /// as `kubectl create token` would), written next to the admin's.
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> io::Result<PathBuf> {
        let token = format!("sa-{}{}{}", store::random_suffix(), store::random_suffix(), store::random_suffix());
        let path = self.kubeconfig_path.with_file_name(format!("kubeconfig-{namespace}-{name}"));
        write_kubeconfig_for(&path, &self.shared.config.url, &token, namespace)?;
        lock(&self.shared.state).tokens.insert(token, rbac::Caller::ServiceAccount { namespace: namespace.into(), name: name.into() });
        Ok(path)
    }

    /// Answers every request with `status` (503: restarting; 500: its storage failing) for
    /// `duration`, before authorization or storage; the kubelet and the snapshot controller go on,
    /// as a cluster's nodes do while its API server restarts.
    pub fn unavailable_for(&self, duration: std::time::Duration, status: u16) {
        *lock(&self.shared.outage) = Some((std::time::Instant::now() + duration, status));
    }

    /// How many requests the server received (all of them: the test's kubectl, the product, its
    /// Jobs' pods).
    pub fn requests(&self) -> u64 {
        *lock(&self.shared.requests)
    }

    /// Holds the next `method` request whose path starts with `path` (see [`store::Hold`]).
    pub fn hold(&self, method: &str, path: &str) -> Arc<store::Hold> {
        let hold = Arc::new(store::Hold {
            method: method.into(),
            path: path.into(),
            reached: tokio::sync::watch::channel(false).0,
            released: tokio::sync::watch::channel(false).0,
        });
        lock(&self.shared.holds).push(hold.clone());
        hold
    }

    /// How many force-deleted pods' processes still run (see `kubelet::force_delete_pod`).
    pub fn orphans_running(&self) -> usize {
        lock(&self.shared.state).orphans.len()
    }

    /// Root of the local directories that stand in for PVCs.
    pub fn volumes_root(&self) -> &Path {
        &self.volumes_root
    }

    /// UID of the `default` namespace (the cluster ID).
    pub fn default_namespace_uid(&self) -> String {
        self.shared.config.default_namespace_uid.clone()
    }

    /// A `kube` client configured from the generated kubeconfig, like the product builds one.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig_path)
            .expect("stand-in kubeconfig is readable");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("stand-in kubeconfig is valid");
        kube::Client::try_from(config).expect("kube client from stand-in kubeconfig")
    }

    /// Shared state, for tests that look behind the API (e.g. the log of a pod).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(task) = self.server_task.take() {
            task.abort();
            self.shared.abort_background_tasks();
        }
        if let Some(mut bg) = self.background.take() {
            if let Some(stop) = bg.stop.take() {
                let _ = stop.send(());
            }
            if let Some(thread) = bg.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Writes a kubeconfig for `url` with cluster, user and context all named `standin`: the admin's
/// (`standin-token`, namespace `default`), or a pod's ServiceAccount's.
fn write_kubeconfig(path: &Path, url: &str) -> io::Result<()> {
    write_kubeconfig_for(path, url, rbac::ADMIN_TOKEN, "default")
}

pub(crate) fn write_kubeconfig_for(path: &Path, url: &str, token: &str, namespace: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: standin
  cluster:
    server: {url}
users:
- name: standin
  user:
    token: {token}
contexts:
- name: standin
  context:
    cluster: standin
    user: standin
    namespace: {namespace}
current-context: standin
preferences: {{}}
"
    );
    std::fs::write(path, text)
}

/// Shared between modules: the current time as the API formats it.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
