//! Shared test environment: the local object store (SeaweedFS) and the Kubernetes API stand-in.
#![allow(dead_code)]

pub mod apiserver;
pub mod app;
pub mod cli;
pub mod drill;
pub mod faults;
pub mod helm;
pub mod restic;
pub mod s3;
pub mod tree;
