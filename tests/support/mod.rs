//! Shared test environment: the local object store (SeaweedFS) and the Kubernetes API stand-in.
#![allow(dead_code)]

pub mod cli;
pub mod s3;
