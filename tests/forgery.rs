//! Point-in-time reads never use a version they cannot trust, on both stores: a version of a
//! content-addressed file whose content does not hash to its name (forged or damaged), and a
//! version written by a multipart upload (k10 never writes one; on AWS its `LastModified` is when
//! the upload started, so it can claim a time before it existed). The view falls back to the
//! older genuine version, the restore succeeds byte for byte, and the view names what it skipped.

mod support;

use std::sync::Arc;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockRetentionMode};
use bytes::Bytes;
use k10::objectstore::memory::MemoryStorage;
use k10::objectstore::storage::{Time, VersionedStorage};
use k10::repo::{ReadOnly, Repo};
use support::s3::{self, Retention};
use support::tree;

const PREFIX: &str = "k10/cluster/repos/ns-uid/";
const GARBAGE: &[u8] = b"encrypted by ransomware";

/// Backs up a tree and a document; returns their snapshot ids and the tree.
async fn protect(store: Arc<dyn VersionedStorage>) -> (String, String, tempfile::TempDir) {
    let repo = Repo::init(store.clone(), PREFIX, "pw").await.unwrap();
    let src = tempfile::tempdir().unwrap();
    tree::mixed(src.path(), 20);
    let volume = repo.backup_dir(src.path(), &[]).await.unwrap();
    let docs = repo.backup_documents(vec![("index.json".into(), Bytes::from_static(b"{\"genuine\":true}"))], &[]).await.unwrap();
    (volume.id, docs.id, src)
}

/// Overwrites every content-addressed file with garbage that does not hash to its name.
async fn forge_every_file(store: &dyn VersionedStorage) -> usize {
    let files: Vec<String> = store.list(PREFIX).await.unwrap().into_iter().map(|o| o.key).filter(|k| !k.ends_with("/config")).collect();
    for key in &files {
        store.put(key, Bytes::from_static(GARBAGE)).await.unwrap();
    }
    files.len()
}

/// Opens the repository as of now and checks it reads the genuine data, naming what it skipped.
async fn restore_as_of_now(store: Arc<dyn VersionedStorage>, ids: &(String, String, tempfile::TempDir), forged: usize) {
    let at: Time = chrono::Utc::now();
    let view = Repo::<ReadOnly>::open_at(store, PREFIX, at, "pw").await.unwrap();
    let out = tempfile::tempdir().unwrap();
    view.restore(&ids.0, &out.path().join("r")).await.unwrap();
    tree::assert_same(ids.2.path(), &out.path().join("r"));
    assert_eq!(view.read_document(&ids.1, "index.json").await.unwrap(), Bytes::from_static(b"{\"genuine\":true}"));
    let skipped = view.skipped();
    println!("{}", skipped.join("\n"));
    let mismatched = skipped.iter().filter(|s| s.contains("does not match its name")).count();
    assert_eq!(mismatched, forged, "every forged file passed over once: {skipped:?}");
    assert!(skipped.iter().any(|s| s.contains("config") && s.contains("multipart")), "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_store() {
    let store = Arc::new(MemoryStorage::locked(chrono::Duration::days(50)));
    let ids = protect(store.clone()).await;
    let forged = forge_every_file(store.as_ref()).await;
    // A config completed now from a multipart upload said to have started a minute ago: its
    // time falls before the point in time, and it would make the repository unopenable.
    store.put_multipart_started_at(&format!("{PREFIX}config"), Bytes::from_static(GARBAGE), chrono::Utc::now() - chrono::Duration::minutes(1));
    restore_as_of_now(store, &ids, forged).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seaweedfs() {
    let env = s3::env();
    let bucket = s3::unique_bucket("forgery");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(60)))).await;
    let store = env.storage(&bucket, Some(30));
    let ids = protect(store.clone()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let forged = forge_every_file(store.as_ref()).await;
    // A garbage config written by a real multipart upload.
    let client = env.client();
    let key = format!("{PREFIX}config");
    let upload = client.create_multipart_upload().bucket(&bucket).key(&key).send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = client
        .upload_part()
        .bucket(&bucket)
        .key(&key)
        .upload_id(upload_id)
        .part_number(1)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(GARBAGE))
        .send()
        .await
        .unwrap();
    client
        .complete_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).set_e_tag(part.e_tag().map(str::to_string)).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let versions = store.list_versions(&key).await.unwrap();
    assert!(versions[0].multipart, "the store reports the multipart version as such: {versions:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    restore_as_of_now(store, &ids, forged).await;
}
