//! The one HTTP client every sink shares: hyper-util's pooled client over rustls (ring),
//! trusting the bundled Mozilla roots (the image is `FROM scratch`, no system store) plus
//! an optional `--ca-file`, plain `http` allowed (local receivers), a per-request timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Errors of building the client or of one request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading CA file {path}: {msg}")]
    CaFile { path: String, msg: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("bad request: {0}")]
    Request(String),
    #[error("connection: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("reading the answer: {0}")]
    Body(String),
}

impl ClientError {
    /// Metric label of the failure.
    pub fn cause(&self) -> &'static str {
        match self {
            ClientError::Timeout(_) => "timeout",
            ClientError::Connect(_) | ClientError::Body(_) => "connection",
            _ => "request",
        }
    }
}

/// One request a sink wants sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What came back (body capped at [`MAX_ANSWER`]).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Longest answer body read (vendor answers are small JSON documents).
pub const MAX_ANSWER: usize = 64 * 1024;

/// The shared client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpClient {
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<HttpClient, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            let err = |msg: String| ClientError::CaFile {
                path: path.display().to_string(),
                msg,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate in it".into()));
            }
            let (_, bad) = roots.add_parsable_certificates(certs);
            if bad > 0 {
                return Err(err(format!("{bad} certificate(s) could not be parsed")));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout.min(Duration::from_secs(10))));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(16)
            .build(connector);
        Ok(HttpClient { inner, timeout })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Send one request; the whole exchange (connect, send, read the answer) is bounded by
    /// the client's timeout.
    pub async fn send(&self, r: &Request) -> Result<Answer, ClientError> {
        let mut b = http::Request::builder()
            .method(r.method.clone())
            .uri(&r.url);
        for (k, v) in &r.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let req = b
            .body(Full::new(r.body.clone()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let exchange = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| ClientError::Connect(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
