//! A minimal Docker Engine API client: HTTP/1.1 over the daemon's unix socket, one
//! connection, `GET /_ping` (liveness) and `GET /version` (what is running).
//!
//! hyper 1's client handshake on a tokio `UnixStream` is all it takes; no pool, no
//! hyperlocal. Every request takes a deadline and every body is read with a size cap.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

/// Largest body we read (`/version` is about 1 KiB).
const MAX_BODY: usize = 64 * 1024;

/// What went wrong talking to dockerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be connected to (missing, refused, permission...).
    #[error("cannot connect to {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The deadline passed during `step`.
    #[error("no answer to {step} before the deadline")]
    Timeout { step: &'static str },
    /// HTTP-level failure (handshake, connection closed, malformed answer).
    #[error("{step}: {message}")]
    Http { step: &'static str, message: String },
    /// The daemon answered with an error status.
    #[error("{step} answered HTTP {status}: {body}")]
    Status {
        step: &'static str,
        status: StatusCode,
        body: String,
    },
    /// The answer was not what the API documents.
    #[error("{step} answered something unexpected: {message}")]
    Unexpected { step: &'static str, message: String },
}

/// `GET /_ping`: `OK` plus the API version header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub api_version: Option<String>,
}

/// The part of `GET /version` we report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Version {
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "ApiVersion", default)]
    pub api_version: String,
}

/// Parse a `/version` body (pure).
pub fn parse_version(body: &[u8]) -> Result<Version, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid /version JSON: {e}"))
}

/// A connected docker client (one keep-alive HTTP/1.1 connection).
pub struct DockerClient {
    sender: http1::SendRequest<Empty<Bytes>>,
    conn: JoinHandle<()>,
}

impl Drop for DockerClient {
    fn drop(&mut self) {
        self.conn.abort();
    }
}

impl DockerClient {
    /// Connect and do the HTTP/1 handshake before `deadline`.
    pub async fn connect(path: &Path, deadline: Instant) -> Result<Self, Error> {
        let stream = match timeout_at(deadline, UnixStream::connect(path)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    path: path.to_path_buf(),
                    source,
                })
            }
            Err(_) => return Err(Error::Timeout { step: "connect" }),
        };
        let (sender, connection) = match timeout_at(
            deadline,
            http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)),
        )
        .await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                return Err(Error::Http {
                    step: "handshake",
                    message: e.to_string(),
                })
            }
            Err(_) => return Err(Error::Timeout { step: "handshake" }),
        };
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "docker connection ended");
            }
        });
        Ok(DockerClient { sender, conn })
    }

    /// One GET; returns status, headers and the capped body.
    async fn get(
        &mut self,
        uri: &'static str,
        step: &'static str,
        deadline: Instant,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), Error> {
        let http = |e: &dyn std::fmt::Display| Error::Http {
            step,
            message: e.to_string(),
        };
        let fut = async {
            self.sender.ready().await.map_err(|e| http(&e))?;
            let req = Request::get(uri)
                .header(hyper::header::HOST, "docker")
                .body(Empty::<Bytes>::new())
                .map_err(|e| http(&e))?;
            let resp = self.sender.send_request(req).await.map_err(|e| http(&e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| http(&*e))?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        match timeout_at(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { step }),
        }
    }

    /// `GET /_ping`: the daemon is up when it answers 200 `OK`.
    pub async fn ping(&mut self, deadline: Instant) -> Result<Ping, Error> {
        const STEP: &str = "GET /_ping";
        let (status, headers, body) = self.get("/_ping", STEP, deadline).await?;
        if !status.is_success() {
            return Err(Error::Status {
                step: STEP,
                status,
                body: snippet(&body),
            });
        }
        if body.as_ref() != b"OK" {
            return Err(Error::Unexpected {
                step: STEP,
                message: format!("body {:?}, expected \"OK\"", snippet(&body)),
            });
        }
        Ok(Ping {
            api_version: headers
                .get("api-version")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }

    /// `GET /version`.
    pub async fn version(&mut self, deadline: Instant) -> Result<Version, Error> {
        const STEP: &str = "GET /version";
        let (status, _, body) = self.get("/version", STEP, deadline).await?;
        if !status.is_success() {
            return Err(Error::Status {
                step: STEP,
                status,
                body: snippet(&body),
            });
        }
        parse_version(&body).map_err(|message| Error::Unexpected {
            step: STEP,
            message,
        })
    }
}

/// The first 200 characters of a body, for messages (pure; public for the fuzz targets).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn version_body_is_parsed() {
        let v = parse_version(
            br#"{"Platform":{"Name":""},"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#,
        )
        .unwrap();
        assert_eq!(v.version, "20.10.24+dfsg1");
        assert_eq!(v.api_version, "1.41");
        assert!(parse_version(b"<html>").is_err());
    }

    #[test]
    fn snippets_are_capped() {
        assert_eq!(snippet(b" OK \n"), "OK");
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).len(), 203);
    }

    /// A one-connection HTTP server on a unix socket that answers each request with the
    /// next canned response.
    fn serve(path: &Path, answers: Vec<&'static str>) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for a in answers {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(a.as_bytes()).unwrap();
            }
        })
    }

    #[tokio::test]
    async fn ping_and_version_over_one_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let server = serve(
            &path,
            vec![
                "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK",
                "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\"}",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut c = DockerClient::connect(&path, deadline).await.unwrap();
        let p = c.ping(deadline).await.unwrap();
        assert_eq!(p.api_version.as_deref(), Some("1.41"));
        let v = c.version(deadline).await.unwrap();
        assert_eq!(v.version, "20.10.24");
        drop(c);
        server.join().unwrap();
    }

    #[tokio::test]
    async fn an_unhealthy_ping_is_an_error_with_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let server = serve(
            &path,
            vec!["HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nsick"],
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut c = DockerClient::connect(&path, deadline).await.unwrap();
        let e = c.ping(deadline).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "GET /_ping answered HTTP 500 Internal Server Error: sick"
        );
        drop(c);
        server.join().unwrap();
    }

    #[tokio::test]
    async fn a_silent_daemon_hits_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut c = DockerClient::connect(&path, deadline).await.unwrap();
        match c.ping(deadline).await {
            Err(Error::Timeout { step }) => assert_eq!(step, "GET /_ping"),
            other => panic!("{other:?}"),
        }
    }
}
