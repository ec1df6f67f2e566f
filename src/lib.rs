//! k10: immutable, ransomware-proof Kubernetes application backups on S3 Object Lock.
//!
//! Modules, one per concern:
//! - [`cli`]: the command line (`kubectl k10 …`) and its output;
//! - [`api`]: the K10-compatible custom resources (Profile, …);
//! - [`k8s`]: access to the Kubernetes API (kubeconfig, contexts, errors);
//! - [`catalog`]: the cluster ID, profiles and their credentials as stored in Kubernetes;
//! - [`objectstore`]: every S3 call, the lock rules, storage implementations, retention maintenance;
//! - [`repo`]: restic-format repositories (rustic_core) on that storage, writable or as of a time.

pub mod api;
pub mod backup;
pub mod catalog;
pub mod controller;
pub mod datamover;
pub mod dr;
pub mod cli;
pub mod k8s;
pub mod objectstore;
pub mod repo;
pub mod restore;
pub mod schedule;
