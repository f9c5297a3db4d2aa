//! HTTP endpoints (hyper 1): `/livez`, `/healthz`, `/readyz`, `/conditions` on
//! `--address:--port`, `/metrics` (OpenMetrics) on `--prometheus-address:--prometheus-port`.
//!
//! * `/livez`: 503 only when a loop or log monitor thread died or hung (a restart helps).
//! * `/healthz`: 503 with one line per degraded component (what `/livez` lists, and log
//!   sources never readable or unreadable for a while), else `ok`.
//! * `/readyz`: 200 once the node conditions were synced (at once without an API server).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::report::metrics::{Metrics, CONTENT_TYPE};
use crate::state::Condition;

/// Errors of the HTTP servers.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the endpoints read.
#[derive(Debug, Clone)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    /// Set after the first successful condition sync (or at once without an API server).
    pub ready: Arc<AtomicBool>,
    pub conditions: watch::Receiver<Vec<Condition>>,
}

pub fn reply(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// Route one request of the status server.
pub fn status_route(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "method not allowed\n");
    }
    match path {
        "/livez" => health_reply(shared.metrics.dead()),
        "/healthz" => health_reply(shared.metrics.degraded()),
        "/readyz" => {
            if shared.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, TEXT, "ok")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    "node conditions not synced yet\n",
                )
            }
        }
        "/conditions" => {
            let c = shared.conditions.borrow().clone();
            let body = serde_json::to_string(&c).unwrap_or_else(|_| "[]".into());
            reply(StatusCode::OK, "application/json", body)
        }
        _ => reply(StatusCode::NOT_FOUND, TEXT, "not found\n"),
    }
}

/// `200 ok`, or 503 with one line per problem.
fn health_reply(problems: Vec<String>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if problems.is_empty() {
        reply(StatusCode::OK, TEXT, "ok")
    } else {
        let mut body = problems.join("\n");
        body.push('\n');
        reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, body)
    }
}

/// Route one request of the metrics server.
pub fn metrics_route(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, shared.metrics.render()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}

/// Which routes a server answers.
#[derive(Debug, Clone, Copy)]
pub enum Server {
    Status,
    Metrics,
}

/// Connections served at once; more wait in the listen backlog until one closes (the
/// metrics port listens on every address of a hostNetwork pod).
pub const MAX_CONNECTIONS: usize = 64;
/// Longest life of one connection, however busy (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Answers one request (method, path): the routes of one server.
pub type Route = Arc<dyn Fn(&Method, &str) -> Response<Full<Bytes>> + Send + Sync>;

/// Bind `addr` and serve until `shutdown` is set. Returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    which: Server,
    shared: Shared,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    serve_routes(addr, agent_routes(which, shared), shutdown).await
}

fn agent_routes(which: Server, shared: Shared) -> Route {
    Arc::new(move |method: &Method, path: &str| match which {
        Server::Status => status_route(&shared, method, path),
        Server::Metrics => metrics_route(&shared, method, path),
    })
}

/// Serve `route` on `addr` (used by the agent's servers and the eventer's).
pub async fn serve_routes(
    addr: SocketAddr,
    route: Route,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    serve_limited(addr, route, shutdown, MAX_CONNECTIONS, CONNECTION_LIFETIME).await
}

async fn serve_limited(
    addr: SocketAddr,
    route: Route,
    mut shutdown: watch::Receiver<bool>,
    max_connections: usize,
    lifetime: Duration,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let handle = tokio::spawn(async move {
        loop {
            // Accept only with a free slot: at the cap, clients wait in the backlog.
            let slot = tokio::select! {
                s = Arc::clone(&slots).acquire_owned() => s,
                _ = shutdown.changed() => return,
            };
            let Ok(slot) = slot else {
                return; // semaphore closed: never happens, it is not closed
            };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let route = route.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let svc = service_fn(move |req: Request<Incoming>| {
                    let r = route(req.method(), req.uri().path());
                    async move { Ok::<_, Infallible>(r) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(lifetime, conn).await;
            });
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn shared() -> (Shared, watch::Sender<Vec<Condition>>) {
        let (tx, rx) = watch::channel(Vec::new());
        (
            Shared {
                metrics: Arc::new(Metrics::new()),
                ready: Arc::new(AtomicBool::new(false)),
                conditions: rx,
            },
            tx,
        )
    }

    async fn body(r: Response<Full<Bytes>>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    }

    #[tokio::test]
    async fn serves_over_tcp_until_shutdown() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (s, _tx) = shared();
        let (stop_tx, stop) = watch::channel(false);
        let (addr, handle) = serve("127.0.0.1:0".parse().unwrap(), Server::Status, s, stop)
            .await
            .unwrap();
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("ok"),
            "{out}"
        );
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }

    /// Read whatever arrives within `d` (empty on timeout or EOF).
    async fn read_for(c: &mut tokio::net::TcpStream, d: Duration) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(d, c.read(&mut buf)).await {
            Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(Err(_)) => Some(String::new()),
            Err(_) => None,
        }
    }

    #[tokio::test]
    async fn connections_are_capped_and_their_lifetime_bounded() {
        use tokio::io::AsyncWriteExt;
        let (s, _tx) = shared();
        let (_stop_tx, stop) = watch::channel(false);
        let (addr, _handle) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Server::Status,
            s.clone(),
            stop.clone(),
        )
        .await
        .unwrap();
        const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        // 64 idle connections hold every slot.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Make sure the server has accepted them all: the last one gets an answer (and is
        // replaced by a new idle one).
        let mut last = idle.pop().unwrap();
        last.write_all(GET).await.unwrap();
        let r = read_for(&mut last, Duration::from_secs(5)).await;
        assert!(r.is_some_and(|r| r.starts_with("HTTP/1.1 200")));
        drop(last);
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The 65th waits: connected in the backlog, but not answered.
        let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
        extra.write_all(GET).await.unwrap();
        assert_eq!(
            read_for(&mut extra, Duration::from_millis(700)).await,
            None,
            "answered beyond the cap"
        );
        // One idle client leaves: the waiting one is served.
        drop(idle.pop());
        let r = read_for(&mut extra, Duration::from_secs(5)).await;
        assert!(
            r.as_deref().is_some_and(|r| r.starts_with("HTTP/1.1 200")),
            "{r:?}"
        );

        // A connection's whole life is bounded (a short lifetime here).
        let (addr, _h) = serve_limited(
            "127.0.0.1:0".parse().unwrap(),
            agent_routes(Server::Status, s),
            stop,
            2,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        assert_eq!(
            read_for(&mut slow, Duration::from_secs(5)).await,
            Some(String::new()),
            "closed without an answer"
        );
    }

    #[tokio::test]
    async fn routes() {
        let (s, tx) = shared();
        assert_eq!(status_route(&s, &Method::GET, "/healthz").status(), 200);
        assert_eq!(status_route(&s, &Method::GET, "/livez").status(), 200);
        assert_eq!(status_route(&s, &Method::GET, "/readyz").status(), 503);
        s.ready.store(true, Ordering::Relaxed);
        assert_eq!(status_route(&s, &Method::GET, "/readyz").status(), 200);
        assert_eq!(status_route(&s, &Method::GET, "/nope").status(), 404);
        assert_eq!(status_route(&s, &Method::POST, "/healthz").status(), 405);
        tx.send(vec![Condition {
            type_: "InodesPressure".into(),
            status: probes::ConditionStatus::False,
            reason: "R".into(),
            message: "m".into(),
            transition: std::time::SystemTime::UNIX_EPOCH,
        }])
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&body(status_route(&s, &Method::GET, "/conditions")).await)
                .unwrap();
        assert_eq!(
            v,
            serde_json::json!([{"type": "InodesPressure", "status": "False", "reason": "R",
                "message": "m", "transition": "1970-01-01T00:00:00Z"}])
        );
        // An unreadable log source: not healthy (listed), still alive.
        let st = Arc::new(probes::logs::MonitorStats::new("kernel-monitor"));
        st.running.store(true, Ordering::Relaxed);
        st.mark_down("cannot read the kernel log: EPERM");
        let st2 = Arc::new(probes::logs::MonitorStats::new("docker-monitor"));
        st2.running.store(true, Ordering::Relaxed);
        st2.mark_down("no journal");
        s.metrics.watch_log_monitors(vec![st, st2]);
        let h = status_route(&s, &Method::GET, "/healthz");
        assert_eq!(h.status(), 503);
        assert_eq!(
            body(h).await,
            "log source kernel-monitor never readable: cannot read the kernel log: EPERM\n\
             log source docker-monitor never readable: no journal\n"
        );
        assert_eq!(status_route(&s, &Method::GET, "/livez").status(), 200);
        let m = metrics_route(&s, &Method::GET, "/metrics");
        assert_eq!(m.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
        assert!(body(m).await.ends_with("# EOF\n"));
    }
}
