//! The test store is faithful: SeaweedFS enforces COMPLIANCE object locks as S3 does.

mod support;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode};
use support::s3::{self, Retention};

fn in_days(days: i64) -> DateTime {
    DateTime::from_secs(chrono::Utc::now().timestamp() + days * 86_400)
}

#[tokio::test]
async fn compliance_locks_are_enforced() {
    let env = s3::env();
    let client = env.client();
    let bucket = s3::unique_bucket("lock");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(21))))
        .await;

    let put = client
        .put_object()
        .bucket(&bucket)
        .key("data/blob")
        .body(ByteStream::from_static(b"precious"))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_days(30))
        .send()
        .await
        .expect("put a locked object");
    let version = put.version_id().expect("a versioned bucket returns a version id").to_string();

    let retention = client
        .get_object_retention()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .send()
        .await
        .expect("read the object's retention")
        .retention
        .expect("the object has a retention");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));

    // Deleting the locked version is refused, even with the governance bypass.
    let deleted = client
        .delete_object()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert!(deleted.is_err(), "the store deleted a COMPLIANCE-locked version");

    // Shortening the lock is refused.
    let shortened = client
        .put_object_retention()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .bypass_governance_retention(true)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_days(1))
                .build(),
        )
        .send()
        .await;
    assert!(shortened.is_err(), "the store shortened a COMPLIANCE lock");

    // Switching it to GOVERNANCE (which can be bypassed) is refused too.
    let downgraded = client
        .put_object_retention()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(in_days(30))
                .build(),
        )
        .send()
        .await;
    assert!(downgraded.is_err(), "the store downgraded a COMPLIANCE lock to GOVERNANCE");

    // Extending it is allowed.
    client
        .put_object_retention()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_days(40))
                .build(),
        )
        .send()
        .await
        .expect("extending a lock is allowed");

    // A plain delete only adds a delete marker: the locked version stays readable.
    let marker = client.delete_object().bucket(&bucket).key("data/blob").send().await.expect("delete marker");
    assert_eq!(marker.delete_marker(), Some(true));
    assert!(client.get_object().bucket(&bucket).key("data/blob").send().await.is_err());
    let body = client
        .get_object()
        .bucket(&bucket)
        .key("data/blob")
        .version_id(&version)
        .send()
        .await
        .expect("the locked version is still there")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"precious");

    // The bucket cannot be deleted while it holds objects.
    assert!(client.delete_bucket().bucket(&bucket).send().await.is_err());
}

#[tokio::test]
async fn default_retention_applies_to_objects_written_without_a_lock() {
    let env = s3::env();
    let client = env.client();
    let bucket = s3::unique_bucket("default");
    env.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(21))))
        .await;
    let put = client
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let version = put.version_id().unwrap().to_string();
    let deleted = client.delete_object().bucket(&bucket).key("k").version_id(&version).send().await;
    assert!(deleted.is_err(), "the bucket's default retention did not protect the object");
}

#[tokio::test]
async fn wrong_credentials_are_refused() {
    let env = s3::env();
    let bucket = s3::unique_bucket("auth");
    env.create_plain_bucket(&bucket).await;
    let wrong_key = env.client_with("NOSUCHKEY", &env.secret_key);
    let err = wrong_key.list_objects_v2().bucket(&bucket).send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("InvalidAccessKeyId"));
    let wrong_secret = env.client_with(&env.access_key, "not-the-secret");
    let err = wrong_secret.list_objects_v2().bucket(&bucket).send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("SignatureDoesNotMatch"));
}
