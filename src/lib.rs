//! k10: immutable, ransomware-proof Kubernetes application backups on S3 Object Lock.
//!
//! Modules, one per concern:
//! - [`cli`]: the command line (`kubectl k10 …`) and its output;
//! - [`api`]: the K10-compatible custom resources (Profile, …);
//! - [`k8s`]: access to the Kubernetes API (kubeconfig, contexts, errors).

pub mod api;
pub mod cli;
pub mod k8s;
pub mod objectstore;
pub mod repo;
