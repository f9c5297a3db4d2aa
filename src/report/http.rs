//! HTTP endpoints (hyper 1): `/healthz`, `/readyz`, `/conditions` on `--address:--port`,
//! `/metrics` (OpenMetrics) on `--prometheus-address:--prometheus-port`.

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

fn reply(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
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
        "/healthz" => {
            let stopped = shared.metrics.stopped_log_monitors();
            if stopped.is_empty() {
                reply(StatusCode::OK, TEXT, "ok")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!("log monitor stopped: {}", stopped.join(", ")),
                )
            }
        }
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

/// Bind `addr` and serve until `shutdown` is set. Returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    which: Server,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let handle = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.changed() => return,
            };
            let Ok((stream, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let r = match which {
                        Server::Status => status_route(&shared, req.method(), req.uri().path()),
                        Server::Metrics => metrics_route(&shared, req.method(), req.uri().path()),
                    };
                    async move { Ok::<_, Infallible>(r) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
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

    #[tokio::test]
    async fn routes() {
        let (s, tx) = shared();
        assert_eq!(status_route(&s, &Method::GET, "/healthz").status(), 200);
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
        let m = metrics_route(&s, &Method::GET, "/metrics");
        assert_eq!(m.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
        assert!(body(m).await.ends_with("# EOF\n"));
    }
}
