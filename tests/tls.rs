//! `--skip-ssl-verify` on https endpoints: SeaweedFS behind a TLS-terminating proxy with a
//! self-signed certificate, which normal verification must refuse and the flag must accept.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockRetentionMode;
use k10::objectstore::{Credentials, Location, ObjectStore};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::cli::{Run, K10};
use support::s3::{self, Retention, S3Env};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate for a name that is not 127.0.0.1, and its key, made by openssl: as
/// `openssl req -x509` makes it by default (a CA certificate), or a leaf (`CA:FALSE`).
fn self_signed(dir: &Path, leaf: bool) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut openssl = Command::new("openssl");
    openssl
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=untrusted.k10.test"]);
    if leaf {
        openssl.args(["-addext", "basicConstraints=critical,CA:FALSE"]);
        openssl.args(["-addext", "subjectAltName=DNS:untrusted.k10.test"]);
    }
    let status = openssl
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(status.status.success(), "openssl: {}", String::from_utf8_lossy(&status.stderr));
    let certs = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (certs, PrivateKeyDer::from_pem_file(&key).unwrap())
}

/// Serves TLS with a self-signed certificate on 127.0.0.1 and forwards the plain bytes to the
/// store's S3 port; returns the proxy's https endpoint.
async fn tls_proxy(s3: &S3Env, leaf: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (certs, key) = self_signed(dir.path(), leaf);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let upstream = s3
        .endpoint
        .strip_prefix("http://")
        .expect("the test store serves plain http")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward.
                let Ok(mut client) = acceptor.accept(client).await else { return };
                let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

async fn locked_bucket(s3: &S3Env) -> String {
    let bucket = s3::unique_bucket("tls");
    s3.create_locked_bucket(&bucket, Some((ObjectLockRetentionMode::Compliance, Retention::Days(30))))
        .await;
    bucket
}

/// `kubectl-k10 profile validate` against the endpoint, run off the runtime (the proxy lives on it).
async fn validate(s3: &S3Env, bucket: &str, endpoint: &str, skip: bool) -> Run {
    let k10 = K10::default()
        .with_env("AWS_ACCESS_KEY_ID", &s3.access_key)
        .with_env("AWS_SECRET_ACCESS_KEY", &s3.secret_key);
    let mut args = vec!["profile", "validate", "--bucket", bucket, "--endpoint", endpoint];
    if skip {
        args.push("--skip-ssl-verify");
    }
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    tokio::task::spawn_blocking(move || k10.run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .unwrap()
}

fn store(s3: &S3Env, endpoint: &str, bucket: &str) -> ObjectStore {
    let location = Location {
        endpoint: Some(endpoint.to_string()),
        region: s3.region.clone(),
        bucket: bucket.to_string(),
        skip_ssl_verify: true,
    };
    let credentials = Credentials {
        access_key_id: s3.access_key.clone(),
        secret_access_key: s3.secret_key.clone(),
    };
    ObjectStore::connect(&location, &credentials).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_fails_validation_unless_skip_ssl_verify() {
    let s3 = s3::env();
    let bucket = locked_bucket(s3).await;
    for leaf in [false, true] {
        let endpoint = tls_proxy(s3, leaf).await;
        let refused = validate(s3, &bucket, &endpoint, false).await;
        let line = refused
            .stdout
            .lines()
            .find(|l| l.contains("S3-compatible endpoint"))
            .unwrap_or_else(|| panic!("no endpoint check in:\n{}", refused.all()))
            .to_string();
        let refused = refused.fails_with(&[]);
        assert!(line.contains('✗'), "the endpoint check passed: {line}\n{}", refused.all());
        assert!(line.contains("TLS certificate is not trusted"), "the failure does not name the certificate: {line}");
        assert!(line.contains("--skip-ssl-verify"), "the failure does not name the flag: {line}");

        let accepted = validate(s3, &bucket, &endpoint, true).await.ok();
        assert!(accepted.stdout.contains("✓ Object lock enabled"), "{}", accepted.all());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_ssl_verify_carries_uploads_and_downloads_over_https() {
    let s3 = s3::env();
    let endpoint = tls_proxy(s3, true).await;
    let bucket = locked_bucket(s3).await;
    let store = store(s3, &endpoint, &bucket);
    let body = vec![7u8; 256 * 1024];
    store
        .client
        .put_object()
        .bucket(&bucket)
        .key("blob")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("upload through the TLS proxy");
    let got = store.client.get_object().bucket(&bucket).key("blob").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), body.as_slice());
}

#[tokio::test]
async fn skip_ssl_verify_on_a_plain_http_endpoint_changes_nothing() {
    let s3 = s3::env();
    let bucket = locked_bucket(s3).await;
    let store = store(s3, &s3.endpoint, &bucket);
    let listed = store.client.list_objects_v2().bucket(&bucket).send().await.expect("list over http");
    assert_eq!(listed.key_count(), Some(0));
}

#[tokio::test]
async fn skip_ssl_verify_gives_up_on_a_stalled_tls_handshake_after_the_connect_timeout() {
    use aws_sdk_s3::config::retry::RetryConfig;
    use aws_sdk_s3::config::timeout::TimeoutConfig;
    use std::time::{Duration, Instant};

    // Accepts TCP connections and never answers the TLS handshake.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let store = store(s3::env(), &endpoint, "stalled");
    let started = Instant::now();
    let err = store
        .client
        .list_objects_v2()
        .bucket("stalled")
        .customize()
        .config_override(
            aws_sdk_s3::Config::builder()
                .retry_config(RetryConfig::disabled())
                .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(1)).build()),
        )
        .send()
        .await
        .expect_err("nothing answers");
    let elapsed = started.elapsed();
    let failure = k10::objectstore::Failure::of(&err);
    assert!(matches!(failure, k10::objectstore::Failure::Unreachable(_)), "{failure}");
    assert!(elapsed < Duration::from_secs(10), "gave up after {elapsed:?}: {failure}");
}
