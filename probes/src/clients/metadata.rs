//! A tiny HTTP/1.1 client for cloud instance-metadata services (plain HTTP on a link-local
//! or private address, no TLS, no proxy, no redirects).
//!
//! One connection per request (hyper 1 `client::conn::http1` over a tokio `TcpStream`):
//! probes ask once a minute, so pooling would only keep sockets open. Every request is
//! bounded by one timeout covering connect, send and the whole body, and the body is
//! capped so a misbehaving endpoint cannot make the agent buffer without limit.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Default cap of a response body (metadata answers are a few hundred bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Errors of one metadata request. `Display` is what the probe puts in its Unknown reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("invalid metadata URL {url:?}: {why}")]
    InvalidUrl { url: String, why: &'static str },
    #[error("cannot resolve {host}: {error}")]
    Resolve { host: String, error: String },
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: String },
    /// Nothing listens there: every address refused the connection.
    #[error("cannot connect to {addr}: connection refused")]
    Refused { addr: String },
    #[error("HTTP error talking to {addr}: {error}")]
    Http { addr: String, error: String },
    #[error("no complete answer from {addr} within {timeout}")]
    Timeout { addr: String, timeout: String },
    #[error("answer from {addr} is larger than {limit} bytes")]
    TooLarge { addr: String, limit: usize },
}

/// A parsed `http://host[:port][/base/path]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Host as written (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (`""` for the root).
    pub prefix: String,
}

impl BaseUrl {
    /// Parse a base URL. Only `http` is supported: metadata services are plain HTTP.
    pub fn parse(url: &str) -> Result<Self, MetadataError> {
        let bad = |why| MetadataError::InvalidUrl {
            url: url.to_string(),
            why,
        };
        if !url.is_ascii() {
            return Err(bad("non-ASCII characters (percent-encode them)"));
        }
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("a base URL takes no query or fragment"));
        }
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed [ in host"))?;
            let host = &v6[..end];
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("[...] must hold an IPv6 address"));
            }
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("garbage after ]")),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !authority.starts_with('[') && host.contains(':') {
            return Err(bad("an IPv6 address goes in brackets"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
            None => 80,
        };
        if port == 0 {
            return Err(bad("invalid port"));
        }
        let b = BaseUrl {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        };
        // Refuse now what no request could carry (spaces, control characters...).
        if b.host_header()
            .parse::<hyper::http::uri::Authority>()
            .is_err()
        {
            return Err(bad("invalid host"));
        }
        if !b.prefix.is_empty() && b.prefix.parse::<hyper::http::uri::PathAndQuery>().is_err() {
            return Err(bad("invalid path"));
        }
        Ok(b)
    }

    /// `Host` header value.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Request target for `path_and_query` (which starts with `/`) under the prefix.
    pub fn target(&self, path_and_query: &str) -> String {
        format!("{}{}", self.prefix, path_and_query)
    }

    /// `host:port` for messages.
    pub fn display_addr(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{host}:{}", self.port)
    }
}

/// A response: status and (capped) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    /// The body as text, lossily decoded, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// Metadata client bound to one base URL.
#[derive(Debug, Clone)]
pub struct MetadataClient {
    base: BaseUrl,
    timeout: Duration,
    body_limit: usize,
}

impl MetadataClient {
    pub fn new(base: BaseUrl, timeout: Duration) -> Self {
        MetadataClient {
            base,
            timeout,
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }

    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    pub fn base(&self) -> &BaseUrl {
        &self.base
    }

    /// `GET path` with extra headers.
    pub async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, MetadataError> {
        self.request(Method::GET, path, headers).await
    }

    /// `PUT path` with an empty body and extra headers (AWS IMDSv2 token).
    pub async fn put(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, MetadataError> {
        self.request(Method::PUT, path, headers).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, MetadataError> {
        let addr = self.base.display_addr();
        match tokio::time::timeout(self.timeout, self.request_inner(method, path, headers)).await {
            Ok(r) => r,
            Err(_) => Err(MetadataError::Timeout {
                addr,
                timeout: crate::humanize(self.timeout),
            }),
        }
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, MetadataError> {
        let addr_text = self.base.display_addr();
        let http_err = |e: &dyn std::fmt::Display| MetadataError::Http {
            addr: addr_text.clone(),
            error: e.to_string(),
        };
        let addrs = resolve(&self.base).await?;
        let mut last = None;
        let mut stream = None;
        let mut all_refused = true;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => {
                    all_refused &= e.kind() == std::io::ErrorKind::ConnectionRefused;
                    last = Some(e.to_string());
                }
            }
        }
        let stream = match stream {
            Some(s) => s,
            None if all_refused && last.is_some() => {
                return Err(MetadataError::Refused {
                    addr: addr_text.clone(),
                })
            }
            None => {
                return Err(MetadataError::Connect {
                    addr: addr_text.clone(),
                    error: last.unwrap_or_else(|| "no address".into()),
                })
            }
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| http_err(&e))?;
        // The connection task ends with the request; abort it on every exit path.
        let conn = AbortOnDrop(tokio::spawn(conn));
        let mut builder = Request::builder()
            .method(method)
            .uri(self.base.target(path))
            .header(hyper::header::HOST, self.base.host_header())
            .header(hyper::header::USER_AGENT, "nodeprobe")
            .header(hyper::header::CONNECTION, "close");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(Empty::new()).map_err(|e| http_err(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| http_err(&e))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), self.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    MetadataError::TooLarge {
                        addr: addr_text.clone(),
                        limit: self.body_limit,
                    }
                } else {
                    MetadataError::Http {
                        addr: addr_text.clone(),
                        error: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        drop(conn);
        Ok(Response {
            status: status_u16(status),
            body,
        })
    }
}

fn status_u16(s: StatusCode) -> u16 {
    s.as_u16()
}

async fn resolve(base: &BaseUrl) -> Result<Vec<SocketAddr>, MetadataError> {
    if let Ok(ip) = base.host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, base.port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((base.host.as_str(), base.port))
        .await
        .map_err(|e| MetadataError::Resolve {
            host: base.host.clone(),
            error: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(MetadataError::Resolve {
            host: base.host.clone(),
            error: "no addresses".into(),
        });
    }
    Ok(addrs)
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://100.100.100.200").unwrap();
        assert_eq!(
            b,
            BaseUrl {
                host: "100.100.100.200".into(),
                port: 80,
                prefix: "".into()
            }
        );
        assert_eq!(b.host_header(), "100.100.100.200");
        assert_eq!(b.target("/latest/x"), "/latest/x");
        let b = BaseUrl::parse("http://127.0.0.1:8080/base/").unwrap();
        assert_eq!(b.port, 8080);
        assert_eq!(b.host_header(), "127.0.0.1:8080");
        assert_eq!(b.target("/a?b=c"), "/base/a?b=c");
        let b = BaseUrl::parse("http://[fd00:ec2::254]").unwrap();
        assert_eq!(b.host, "fd00:ec2::254");
        assert_eq!(b.host_header(), "[fd00:ec2::254]");
        assert_eq!(b.display_addr(), "[fd00:ec2::254]:80");
        let b = BaseUrl::parse("http://[::1]:99/p").unwrap();
        assert_eq!((b.port, b.prefix.as_str()), (99, "/p"));
        let b = BaseUrl::parse("http://metadata.tencentyun.com").unwrap();
        assert_eq!(b.host, "metadata.tencentyun.com");
    }

    #[test]
    fn bad_base_urls() {
        for u in [
            "https://169.254.169.254",
            "169.254.169.254",
            "http://",
            "http://:80",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://[::1",
            "http://[::1]x",
            "http://u:p@h",
            "http://h/p?q=1",
            // found by fuzzing (metadata_url): accepted, then every request failed
            "http://a]:b:1",
            "http://h:1:2",
            "http://a b/",
            "http://h/x y",
            "http://h/\u{1}",
            "http://[zz]",
            "http://h/p\u{a0}/",
        ] {
            assert!(BaseUrl::parse(u).is_err(), "{u} should be rejected");
        }
    }

    /// A one-shot server on 127.0.0.1 answering `reply` after reading the request head.
    async fn serve_once(
        reply: &'static [u8],
        delay: Duration,
    ) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            tokio::time::sleep(delay).await;
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
            String::from_utf8_lossy(&got).into_owned()
        });
        (addr, h)
    }

    fn client(addr: SocketAddr, timeout: Duration) -> MetadataClient {
        MetadataClient::new(BaseUrl::parse(&format!("http://{addr}")).unwrap(), timeout)
    }

    #[tokio::test]
    async fn get_sends_headers_and_reads_body() {
        let (addr, h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            Duration::ZERO,
        )
        .await;
        let r = client(addr, Duration::from_secs(5))
            .get("/computeMetadata/v1/x", &[("Metadata-Flavor", "Google")])
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello");
        let head = h.await.unwrap();
        assert!(
            head.starts_with("GET /computeMetadata/v1/x HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("metadata-flavor: google"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase().contains(&format!("host: {addr}")),
            "{head}"
        );
    }

    #[tokio::test]
    async fn put_and_404() {
        let (addr, h) = serve_once(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            Duration::ZERO,
        )
        .await;
        let r = client(addr, Duration::from_secs(5))
            .put(
                "/latest/api/token",
                &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 404);
        let head = h.await.unwrap();
        assert!(
            head.starts_with("PUT /latest/api/token HTTP/1.1\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let (addr, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            Duration::from_secs(10),
        )
        .await;
        let e = client(addr, Duration::from_millis(200))
            .get("/", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, MetadataError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("within 200ms"), "{e}");
    }

    #[tokio::test]
    async fn body_is_capped() {
        let (addr, _h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789",
            Duration::ZERO,
        )
        .await;
        let e = client(addr, Duration::from_secs(5))
            .with_body_limit(8)
            .get("/", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, MetadataError::TooLarge { limit: 8, .. }), "{e}");
    }

    #[tokio::test]
    async fn garbage_is_an_http_error_and_refused_is_told_apart() {
        let (addr, _h) = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n", Duration::ZERO).await;
        let e = client(addr, Duration::from_secs(5))
            .get("/", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, MetadataError::Http { .. }), "{e}");
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap();
        drop(l);
        let e = client(closed, Duration::from_secs(5))
            .get("/", &[])
            .await
            .unwrap_err();
        assert!(matches!(e, MetadataError::Refused { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("cannot connect to {closed}: connection refused")
        );
    }
}
