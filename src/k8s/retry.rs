//! Kubernetes API requests ride out an API server that restarts or is briefly unavailable: the
//! client's stack retries them with exponential backoff and jitter for as long as the store's
//! patience (`K10_STORE_PATIENCE`, 10 minutes by default), so that a wait on a data mover of hours
//! is not lost to a control-plane upgrade.
//!
//! What is retried:
//! - reads, updates, patches and deletes: on a dropped connection and on `429`, `500`, `502`,
//!   `503`, `504`;
//! - creates (POST): only where the request cannot have been carried out: no connection was made,
//!   or the server answered `429` or `503` (it did not take the request);
//! - nothing before the API server has answered once in this process: a cluster that never
//!   answered is a wrong address, said at once, not an outage to wait out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::sync::Mutex;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The layer k10's clients are built with.
#[derive(Clone, Default)]
pub struct RetryLayer {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// The API server answered once (after that, failures are outages).
    reached: AtomicBool,
    retries: AtomicU64,
}

impl RetryLayer {
    /// How many requests were tried again so far.
    pub fn retries(&self) -> u64 {
        self.state.retries.load(Ordering::Relaxed)
    }
}

impl<S> tower_layer::Layer<S> for RetryLayer {
    type Service = Retrying<S>;
    fn layer(&self, inner: S) -> Retrying<S> {
        Retrying {
            inner: Arc::new(Mutex::new(inner)),
            state: self.state.clone(),
            patience: crate::objectstore::retry::patience_from_env(),
        }
    }
}

pub struct Retrying<S> {
    inner: Arc<Mutex<S>>,
    state: Arc<State>,
    patience: Duration,
}

const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Whether a request may be sent again after `outcome`.
fn retryable(method: &Method, outcome: Result<StatusCode, &BoxError>) -> bool {
    let creates = *method == Method::POST;
    match outcome {
        Ok(status) => match status.as_u16() {
            429 | 503 => true,
            500 | 502 | 504 => !creates,
            _ => false,
        },
        Err(e) => !creates || never_connected(e.as_ref()),
    }
}

/// The error says no connection was made (the request never left).
fn never_connected(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if h.is_connect() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

impl<S, B> tower_service::Service<Request<Body>> for Retrying<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited per attempt, in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let (inner, state, patience) = (self.inner.clone(), self.state.clone(), self.patience);
        Box::pin(async move {
            let start = Instant::now();
            let mut delay = FIRST_DELAY;
            let (parts, body) = request.into_parts();
            // A streamed body cannot be sent twice: such a request gets one attempt.
            let mut spare = body.try_clone();
            let mut body = Some(body);
            loop {
                let this = body.take().expect("a body for every attempt");
                let attempt = Request::from_parts(parts.clone(), this);
                let future = {
                    let mut service = inner.lock().await;
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await.map_err(Into::into)?;
                    service.call(attempt)
                };
                let result = future.await.map_err(Into::into);
                let outcome = result.as_ref().map(|r| r.status());
                if result.is_ok() {
                    state.reached.store(true, Ordering::Relaxed);
                }
                let again = state.reached.load(Ordering::Relaxed)
                    && retryable(&parts.method, outcome)
                    && start.elapsed() + delay <= patience;
                let next = spare.as_ref().and_then(Body::try_clone);
                if !again || spare.is_none() {
                    return result;
                }
                body = spare.take();
                spare = next;
                state.retries.fetch_add(1, Ordering::Relaxed);
                let why = match &result {
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => e.to_string(),
                };
                tracing::warn!("the Kubernetes API failed ({why}) on {} {}: trying again in {delay:?}", parts.method, parts.uri.path());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> BoxError {
        text.into()
    }

    #[test]
    fn reads_are_retried_on_server_errors_and_dropped_connections() {
        for status in [429, 500, 502, 503, 504] {
            assert!(retryable(&Method::GET, Ok(StatusCode::from_u16(status).unwrap())), "{status}");
        }
        for status in [200, 400, 403, 404, 409, 422] {
            assert!(!retryable(&Method::GET, Ok(StatusCode::from_u16(status).unwrap())), "{status}");
        }
        assert!(retryable(&Method::GET, Err(&error("connection reset"))));
        assert!(retryable(&Method::PATCH, Err(&error("connection reset"))));
    }

    #[test]
    fn creates_are_retried_only_where_they_cannot_have_happened() {
        assert!(retryable(&Method::POST, Ok(StatusCode::SERVICE_UNAVAILABLE)));
        assert!(retryable(&Method::POST, Ok(StatusCode::TOO_MANY_REQUESTS)));
        assert!(!retryable(&Method::POST, Ok(StatusCode::INTERNAL_SERVER_ERROR)));
        assert!(!retryable(&Method::POST, Ok(StatusCode::GATEWAY_TIMEOUT)));
        assert!(!retryable(&Method::POST, Err(&error("connection reset"))));
        let refused: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(retryable(&Method::POST, Err(&refused)));
    }
}
