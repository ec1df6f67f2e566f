//! A faulty network in front of the store: an HTTP proxy that answers a share of requests with
//! `503 SlowDown` (without forwarding them) and cuts off another share after forwarding them (the
//! store did the work, the client sees the connection drop halfway through the answer), as a
//! busy S3 or a bad network does. It counts what passes, so tests print requests side by side.
//!
//! The proxy keeps the `Host` header: SigV4 signs it, and the store checks the signature with it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What the proxy saw and did.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub cut: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub requests: u64,
    pub throttled: u64,
    pub cut: u64,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} requests ({} throttled, {} cut off)", self.requests, self.throttled, self.cut)
    }
}

impl std::ops::Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            requests: self.requests - o.requests,
            throttled: self.throttled - o.throttled,
            cut: self.cut - o.cut,
        }
    }
}

struct Inner {
    upstream: String,
    /// Per mille: throttled, and throttled + cut off.
    throttle: AtomicU64,
    cut: AtomicU64,
    counts: Counts,
    client: Client<HttpConnector, Body>,
}

pub struct FaultProxy {
    pub endpoint: String,
    inner: Arc<Inner>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) on its own thread, with no faults yet.
    pub fn start(upstream: &str) -> FaultProxy {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            throttle: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            counts: Counts::default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        let state = inner.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        FaultProxy {
            endpoint: format!("http://{addr}"),
            inner,
        }
    }

    /// From now on, `throttle` of the requests get `503 SlowDown` and `cut` more are cut off.
    pub fn faults(&self, throttle: f64, cut: f64) {
        self.inner.throttle.store((throttle * 1000.0) as u64, Ordering::SeqCst);
        self.inner.cut.store(((throttle + cut) * 1000.0) as u64, Ordering::SeqCst);
    }

    pub fn counts(&self) -> Snapshot {
        let c = &self.inner.counts;
        Snapshot {
            requests: c.requests.load(Ordering::SeqCst),
            throttled: c.throttled.load(Ordering::SeqCst),
            cut: c.cut.load(Ordering::SeqCst),
        }
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";

async fn forward(State(p): State<Arc<Inner>>, request: Request) -> Response {
    p.counts.requests.fetch_add(1, Ordering::SeqCst);
    let roll = getrandom::u64().unwrap() % 1000;
    if roll < p.throttle.load(Ordering::SeqCst) {
        p.counts.throttled.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(503)
            .header("content-type", "application/xml")
            .body(Body::from(SLOW_DOWN))
            .unwrap();
    }
    let is_head = request.method() == http::Method::HEAD;
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    parts.uri = format!("{}{path}", p.upstream).parse().unwrap();
    let answer = match p.client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer,
        Err(e) => return Response::builder().status(502).body(Body::from(e.to_string())).unwrap(),
    };
    if is_head || roll >= p.cut.load(Ordering::SeqCst) {
        return answer.map(Body::new);
    }
    // Forwarded, then cut off: the client gets the headers and half the body, then a dead connection.
    p.counts.cut.fetch_add(1, Ordering::SeqCst);
    let (mut parts, body) = answer.into_parts();
    let data = axum::body::to_bytes(Body::new(body), usize::MAX).await.unwrap_or_default();
    let announced = data.len().max(1);
    parts.headers.insert(http::header::CONTENT_LENGTH, announced.into());
    let half = data.slice(..data.len() / 2);
    let stream = futures::stream::iter([
        Ok::<_, std::io::Error>(half),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault proxy: cut off")),
    ]);
    Response::from_parts(parts, Body::from_stream(stream))
}
