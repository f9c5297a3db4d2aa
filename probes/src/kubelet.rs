//! `kubelet`: `GET http://127.0.0.1:10248/healthz` (the kubelet's local health endpoint)
//! under a deadline, as NPD's `health-checker --component=kubelet` does, with its condition
//! (`KubeletUnhealthy`, reasons `KubeletIsHealthy` / `KubeletUnhealthy`, source
//! `health-checker`) but without `systemctl`, `curl` or a repair. Connection refused
//! means no kubelet listens (a machine that is not a node): Unknown, not a problem.

use std::time::Duration;

use crate::clients::metadata::{BaseUrl, MetadataClient, MetadataError, Response};
use crate::{single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new(
    "KubeletUnhealthy",
    "KubeletIsHealthy",
    "kubelet on the node is functioning properly",
    "KubeletUnhealthy",
);

/// Validate `--kubelet-healthz-url` at startup (exit 64 on a bad one).
pub fn parse_url(s: &str) -> Result<String, String> {
    BaseUrl::parse(s).map_err(|e| e.to_string())?;
    Ok(s.trim().to_string())
}

crate::probe_settings! {
    /// Settings of the kubelet probe.
    pub struct KubeletConfig for "kubelet" ("KUBELET") {
        /// The kubelet's health endpoint (plain HTTP; needs hostNetwork for 127.0.0.1).
        #[arg(id = "kubelet-healthz-url", long = "kubelet-healthz-url", env = "NODEPROBE_KUBELET_HEALTHZ_URL", default_value = "http://127.0.0.1:10248/healthz", value_parser = parse_url)]
        pub url: String,
        /// Port replacing the URL's (the kubelet's --healthz-port).
        #[arg(id = "kubelet-port", long = "kubelet-port", env = "NODEPROBE_KUBELET_PORT", value_parser = clap::value_parser!(u16).range(1..))]
        pub port: Option<u16>,
    }
    schedule:
        /// Deadline of one check; the request itself gets 80 % of it, and a kubelet that
        /// has not answered by then is unhealthy.
        timeout "10s", interval "30s";
}

/// The request's own deadline: most of the check's, so a hung kubelet is reported as such
/// (True) before the framework's deadline turns the check Unknown.
pub fn request_deadline(timeout: Duration) -> Duration {
    timeout.mul_f64(0.8).max(Duration::from_millis(1))
}

/// Judge one request's result (pure).
pub fn evaluate(what: &str, result: Result<Response, MetadataError>) -> Outcome {
    match result {
        Ok(r) if r.status == 200 => Outcome::ok_with(format!("{what}: 200 {}", snippet(&r))),
        Ok(r) => Outcome::problem(
            CONDITION.problem_reason,
            format!("{what} answered {}: {}", r.status, snippet(&r)),
        ),
        Err(MetadataError::Refused { addr }) => Outcome::unknown(format!(
            "no kubelet listening on {addr} (connection refused)"
        )),
        Err(e @ (MetadataError::Resolve { .. } | MetadataError::InvalidUrl { .. })) => {
            Outcome::unknown(format!("{what}: {e}"))
        }
        Err(e) => Outcome::problem(CONDITION.problem_reason, format!("{what}: {e}")),
    }
}

fn snippet(r: &Response) -> String {
    let t = r.text();
    let t: String = t.chars().take(200).collect();
    if t.is_empty() {
        "(empty body)".into()
    } else {
        t.replace(['\n', '\r'], " ")
    }
}

pub struct KubeletProbe {
    config: KubeletConfig,
}

impl KubeletProbe {
    pub fn new(_host: HostPaths, config: KubeletConfig) -> Self {
        KubeletProbe { config }
    }
}

crate::probe_impl!(KubeletConfig => KubeletProbe, "health-checker", [CONDITION]);

impl KubeletProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let url = self.config.url.clone();
        let port = self.config.port;
        let deadline = request_deadline(self.config.timeout);
        Box::pin(async move {
            let outcome = match BaseUrl::parse(&url) {
                Err(e) => Outcome::unknown(e.to_string()),
                Ok(mut base) => {
                    if let Some(p) = port {
                        base.port = p;
                    }
                    let what = format!("kubelet {}{}", base.display_addr(), base.prefix);
                    let path = if base.prefix.is_empty() { "/" } else { "" };
                    let client = MetadataClient::new(base, deadline).with_body_limit(4096);
                    evaluate(&what, client.get(path, &[]).await)
                }
            };
            single(CONDITION, outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn resp(status: u16, body: &str) -> Result<Response, MetadataError> {
        Ok(Response {
            status,
            body: bytes::Bytes::from(body.to_string()),
        })
    }

    #[test]
    fn statuses() {
        let w = "kubelet 127.0.0.1:10248/healthz";
        assert_eq!(
            evaluate(w, resp(200, "ok")),
            Outcome::ok_with("kubelet 127.0.0.1:10248/healthz: 200 ok")
        );
        assert_eq!(
            evaluate(w, resp(500, "[-]syncloop failed\nhealthz check failed")),
            Outcome::problem(
                "KubeletUnhealthy",
                "kubelet 127.0.0.1:10248/healthz answered 500: [-]syncloop failed healthz check failed"
            )
        );
        assert_eq!(
            evaluate(
                w,
                Err(MetadataError::Refused {
                    addr: "127.0.0.1:10248".into()
                })
            ),
            Outcome::unknown("no kubelet listening on 127.0.0.1:10248 (connection refused)")
        );
        assert!(matches!(
            evaluate(
                w,
                Err(MetadataError::Timeout {
                    addr: "a".into(),
                    timeout: "8s".into()
                })
            ),
            Outcome::Problem { .. }
        ));
        assert_eq!(request_deadline(Duration::from_secs(10)), Duration::from_secs(8));
        assert!(parse_url("https://x/healthz").is_err());
        assert!(parse_url("http://127.0.0.1:10248/healthz").is_ok());
    }

    /// A one-shot HTTP server on a loopback port answering `answer` (None: never answers).
    async fn server(answer: Option<&'static str>) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    match answer {
                        Some(a) => {
                            let _ = s.write_all(a.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(30)).await,
                    }
                });
            }
        });
        port
    }

    fn probe(port: u16, timeout: Duration) -> KubeletProbe {
        KubeletProbe::new(
            HostPaths::default(),
            KubeletConfig {
                port: Some(port),
                timeout,
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn against_a_local_server() {
        let ok = server(Some(
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        ))
        .await;
        let f = probe(ok, Duration::from_secs(5)).check().await;
        assert_eq!(
            f[0].outcome,
            Outcome::ok_with(format!("kubelet 127.0.0.1:{ok}/healthz: 200 ok"))
        );
        let hung = server(None).await;
        match &probe(hung, Duration::from_millis(500)).check().await[0].outcome {
            Outcome::Problem { message, .. } => {
                assert!(message.contains("no complete answer"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
