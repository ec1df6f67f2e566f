//! The object store: every S3 call the product makes goes through this module.
//!
//! Built on `aws-sdk-s3` with path-style addressing (S3-compatible stores), custom endpoints,
//! the SDK's standard retries with backoff on transient errors, short connect timeouts, and a
//! checksum on every upload (Object Lock refuses uploads without one).

pub mod lock;
pub mod maintenance;
pub mod memory;
pub mod pit;
pub mod retry;
pub mod s3;
pub mod storage;
mod tls;
pub mod validate;

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials as SdkCredentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// Where a bucket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The S3 endpoint URL; `None` means AWS S3 itself.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub skip_ssl_verify: bool,
}

/// An access key pair. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Why a location cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid endpoint {endpoint:?}: {reason}; give a URL such as https://s3.example.com or http://127.0.0.1:8333")]
    InvalidEndpoint { endpoint: String, reason: String },
}

/// A connected S3 client for one location.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    pub client: aws_sdk_s3::Client,
    pub location: Location,
}

impl ObjectStore {
    /// Builds a client; nothing is sent yet.
    pub fn connect(location: &Location, credentials: &Credentials) -> Result<ObjectStore, StoreError> {
        let creds = SdkCredentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            None,
            None,
            "k10-profile",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(location.region.clone()))
            .credentials_provider(creds)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(endpoint) = &location.endpoint {
            let url = check_endpoint(endpoint)?;
            if location.skip_ssl_verify && url.starts_with("https://") {
                config = config.http_client(tls::insecure_http_client());
            }
            config = config.endpoint_url(url);
        }
        Ok(ObjectStore {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            location: location.clone(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.location.bucket
    }
}

/// Accepts `http(s)://host[:port][/]`; returns it without a trailing slash.
fn check_endpoint(endpoint: &str) -> Result<String, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(|| invalid("it must start with http:// or https://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
        return Err(invalid("it must be a scheme and a host[:port], without a path"));
    }
    endpoint
        .parse::<http::Uri>()
        .map_err(|e| invalid(&e.to_string()))?;
    Ok(endpoint.trim_end_matches('/').to_string())
}

/// What an S3 call's failure means, for messages and decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection: DNS, refused, timeout, TLS.
    Unreachable(String),
    /// The answer was not S3.
    NotS3(String),
    /// An S3 error response: its code (e.g. `NoSuchBucket`), HTTP status and message.
    Service {
        code: String,
        status: u16,
        message: String,
    },
}

impl Failure {
    pub fn of<E, R>(err: &SdkError<E, R>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: HttpStatus + fmt::Debug + 'static,
    {
        match err {
            SdkError::DispatchFailure(e) => Failure::Unreachable(
                untrusted_certificate(err)
                    .or_else(|| root_cause(err))
                    .unwrap_or_else(|| format!("{e:?}")),
            ),
            SdkError::TimeoutError(_) => Failure::Unreachable("the connection timed out".into()),
            SdkError::ResponseError(e) => Failure::NotS3(format!(
                "unexpected answer (HTTP {})",
                e.raw().status_code()
            )),
            SdkError::ServiceError(e) => Failure::Service {
                code: e.err().code().unwrap_or_default().to_string(),
                status: e.raw().status_code(),
                message: e.err().message().unwrap_or_default().to_string(),
            },
            other => Failure::NotS3(root_cause(other).unwrap_or_else(|| other.to_string())),
        }
    }

    /// True when the connection failed because the endpoint's TLS certificate was refused.
    pub fn is_untrusted_certificate(&self) -> bool {
        matches!(self, Failure::Unreachable(why) if why.starts_with(UNTRUSTED_CERTIFICATE))
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            Failure::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "cannot connect: {why}"),
            Failure::NotS3(why) => write!(f, "not an S3 answer: {why}"),
            Failure::Service { code, status, message } if code.is_empty() => {
                write!(f, "HTTP {status} {message}")
            }
            Failure::Service { code, status, message } => write!(f, "{code} (HTTP {status}) {message}"),
        }
    }
}

/// The HTTP status of a raw response, whatever its type.
pub trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

const UNTRUSTED_CERTIFICATE: &str = "the endpoint's TLS certificate is not trusted";

/// Why TLS refused the server's certificate, with the way out, when that is why a call failed.
fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::CertificateError as Cert;
    // `io::Error::source` skips its payload (the rustls error): follow `get_ref` instead.
    let mut chain = std::iter::successors(Some(err), |e| match e.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    });
    let cert = chain.find_map(|e| match e.downcast_ref::<rustls::Error>() {
        Some(rustls::Error::InvalidCertificate(cert)) => Some(cert),
        _ => None,
    })?;
    let why = match cert {
        Cert::UnknownIssuer => "it is self-signed or from an unknown certificate authority".to_string(),
        Cert::NotValidForName => "it is for another host name".to_string(),
        Cert::Other(e) if e.to_string() == "CaUsedAsEndEntity" => {
            "it is a self-signed CA certificate used as the server's".to_string()
        }
        Cert::Other(e) => e.to_string(),
        other => other.to_string(),
    };
    Some(format!(
        "{UNTRUSTED_CERTIFICATE} ({why}); use a certificate the system trusts, or --skip-ssl-verify \
         if you trust this endpoint"
    ))
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = err.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string())
}
