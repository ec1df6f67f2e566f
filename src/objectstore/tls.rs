//! The HTTP client behind `--skip-ssl-verify` (a profile's `skipSSLVerify`) on https endpoints.
//!
//! It accepts whatever certificate the endpoint presents: self-signed, issued by an unknown CA,
//! expired, or for another host name. What is skipped is the certificate's chain of trust, its
//! validity period and its name; the handshake signatures are still checked (the server must hold
//! the key of the certificate it shows) and the traffic is still encrypted. This keeps out
//! eavesdroppers, but not someone in the middle who presents their own certificate: use it only
//! for endpoints the user chose to trust, such as an in-cluster store with a self-signed
//! certificate. Every other endpoint keeps the SDK's default client and its normal verification.
//!
//! The client is hyper (HTTP/1.1) over rustls with the aws-lc-rs provider, like the SDK's own, and
//! applies the SDK's connect timeout to connecting: TCP and the TLS handshake. (It ignores the
//! SDK's read timeout, which `ObjectStore::connect` does not set; the attempt timeout bounds reads.)

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::http::{HttpRequest, HttpResponse};
use aws_sdk_s3::config::{HttpClient, RuntimeComponents, SharedHttpClient};
use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tower_service::Service;

/// An HTTP client for the S3 SDK that accepts any server certificate.
pub fn insecure_http_client() -> SharedHttpClient {
    SharedHttpClient::new(InsecureClient::default())
}

/// Hands the SDK one connector (and so one connection pool) per connect timeout it asks for.
#[derive(Debug, Default)]
struct InsecureClient {
    connectors: Mutex<Vec<(Option<Duration>, SharedHttpConnector)>>,
}

impl HttpClient for InsecureClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
        let timeout = settings.connect_timeout();
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeout) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector::new(timeout));
        connectors.push((timeout, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct Connector(Client<Timed, SdkBody>);

impl Connector {
    fn new(connect_timeout: Option<Duration>) -> Connector {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Connector(
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .build(Timed(https, connect_timeout)),
        )
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = self.0.request(request);
        HttpConnectorFuture::new(async move {
            let response = response.await.map_err(|e| {
                // Connection failures and broken connections are worth the SDK's retries.
                let io = e.is_connect() || source_is::<std::io::Error>(&e);
                if io {
                    ConnectorError::io(e.into())
                } else {
                    ConnectorError::other(e.into(), None)
                }
            })?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Connects (TCP and TLS) within the timeout, if any.
#[derive(Clone, Debug)]
struct Timed(HttpsConnector<TcpConnector>, Option<Duration>);

impl Service<Uri> for Timed {
    type Response = <HttpsConnector<TcpConnector> as Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        let Some(timeout) = self.1 else { return connecting };
        Box::pin(async move {
            tokio::time::timeout(timeout, connecting).await.unwrap_or_else(|_| {
                let why = format!("no connection within {}s", timeout.as_secs_f32());
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why).into())
            })
        })
    }
}

fn source_is<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source()).any(|e| e.is::<E>())
}

/// Accepts every certificate, but still checks the handshake signatures made with its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
