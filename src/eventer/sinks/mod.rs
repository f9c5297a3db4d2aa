//! Sinks: one file each. A sink is its URI options (validated at startup), a payload
//! builder (pure: message → request) and a judge of the answer (vendor error codes).
//! Queues, workers, retries and metrics are the delivery layer's (`super::delivery`).

pub mod dingtalk;
pub mod feishu;
pub mod log;
pub mod mysql;
pub mod webhook;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;

use super::client::{Answer, Request};
use super::filter::Filter;
use super::fold::{short_duration, Message};
use super::template::Template;
use super::uri::{SinkSpec, Uri, UriError};

/// What a sink sends for one message.
#[derive(Debug, Clone)]
pub enum Payload {
    Http(Request),
    /// A line for stdout.
    Line(String),
}

/// Why a message could not be turned into a request (dropped, counted as `render`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Worth another try (after `after` if the receiver said so).
    Retry {
        cause: &'static str,
        after: Option<Duration>,
        /// The vendor throttled this robot (the quota window is full).
        throttled: bool,
        detail: String,
    },
    /// Will not succeed by trying again.
    Reject {
        cause: &'static str,
        detail: String,
    },
}

/// How a chat sink paces itself.
#[derive(Debug, Clone, Copy)]
pub struct ChatPolicy {
    /// At most this many messages per window (overflow is folded into one summary).
    pub quota: Option<(usize, Duration)>,
}

pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Metric label: the sink type, numbered when the type is given twice (`webhook-2`).
    fn label(&self) -> &str;
    fn filter(&self) -> &Filter;
    /// Chat sinks get dedup/folding and one worker (in order); others `workers()` workers.
    fn chat(&self) -> Option<ChatPolicy> {
        None
    }
    fn workers(&self) -> usize {
        1
    }
    /// A template that comes from a ConfigMap, to load at startup and follow.
    fn configmap(&self) -> Option<(&str, &str, &TemplateSlot)> {
        None
    }
    /// A sink that writes batches with its own worker (databases) instead of one request
    /// per message.
    fn is_batch(&self) -> bool {
        false
    }
    /// The worker of a batch sink, reading the sink's queue.
    fn batch_worker(&self, _q: BatchQueue) -> Option<BatchWorker> {
        None
    }
    fn build(&self, msg: &Message, now: Timestamp) -> Result<Payload, BuildError>;
    fn judge(&self, a: &Answer) -> Outcome {
        judge_http(a)
    }
}

/// What the delivery layer hands a batch sink's worker: the queue, its length (decremented
/// by the worker for each message taken) and the metrics.
pub struct BatchQueue {
    pub rx: tokio::sync::mpsc::Receiver<super::delivery::Queued>,
    pub len: Arc<AtomicUsize>,
    pub metrics: Arc<super::metrics::EventerMetrics>,
}

pub type BatchWorker = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// HTTP-level verdict: any 2xx is delivered; 408, 429 and 5xx are retried (429 honours
/// `Retry-After` in seconds); other statuses are rejected.
pub fn judge_http(a: &Answer) -> Outcome {
    let code = a.status.as_u16();
    let detail = || {
        let body = String::from_utf8_lossy(&a.body);
        format!(
            "HTTP {code}: {}",
            body.chars().take(200).collect::<String>()
        )
    };
    match code {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry {
            cause: "rate_limited",
            after: a
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(600))),
            throttled: false,
            detail: detail(),
        },
        408 | 500..=599 => Outcome::Retry {
            cause: if code == 408 { "timeout" } else { "http_5xx" },
            after: None,
            throttled: false,
            detail: detail(),
        },
        _ => Outcome::Reject {
            cause: "http_4xx",
            detail: detail(),
        },
    }
}

/// A template that can be replaced while running (ConfigMap updates).
pub type TemplateSlot = Arc<RwLock<Arc<Template>>>;

pub fn slot(t: Template) -> TemplateSlot {
    Arc::new(RwLock::new(Arc::new(t)))
}

pub fn current(slot: &TemplateSlot) -> Arc<Template> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where a sink's custom body template comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySource {
    Default,
    File(String),
    ConfigMap { namespace: String, name: String },
}

/// `custom_body_configmap[_namespace]` / `custom_body_file`.
pub fn body_source(u: &Uri, what: &str) -> Result<BodySource, UriError> {
    match (u.get("custom_body_configmap"), u.get("custom_body_file")) {
        (Some(_), Some(_)) => Err(UriError::Bad {
            what: what.into(),
            msg: "custom_body_configmap and custom_body_file exclude each other".into(),
        }),
        (Some(name), None) if !name.is_empty() => Ok(BodySource::ConfigMap {
            name: name.to_string(),
            namespace: u
                .get("custom_body_configmap_namespace")
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string(),
        }),
        (None, Some(path)) if !path.is_empty() => Ok(BodySource::File(path.to_string())),
        (None, None) => Ok(BodySource::Default),
        _ => Err(UriError::Bad {
            what: what.into(),
            msg: "empty custom body option".into(),
        }),
    }
}

/// Parse a body template (from a file now; ConfigMaps are loaded by the runner).
pub fn load_template(
    src: &BodySource,
    default: &str,
    escape: Option<super::template::Escape>,
    what: &str,
) -> Result<Template, UriError> {
    let text = match src {
        BodySource::File(p) => std::fs::read_to_string(p).map_err(|e| UriError::Bad {
            what: what.into(),
            msg: format!("custom_body_file {p}: {e}"),
        })?,
        // A placeholder until the ConfigMap is read (before any event is delivered).
        BodySource::Default | BodySource::ConfigMap { .. } => default.to_string(),
    };
    Template::parse(&text, escape).map_err(|e| UriError::Bad {
        what: what.into(),
        msg: format!("body template: {e}"),
    })
}

/// `escape=json|none` (default: JSON when the template text starts with `{` or `[`).
pub fn escape_option(u: &Uri, what: &str) -> Result<Option<super::template::Escape>, UriError> {
    use super::template::Escape;
    match u.get("escape") {
        None | Some("auto") | Some("") => Ok(None),
        Some("json") => Ok(Some(Escape::Json)),
        Some("none") => Ok(Some(Escape::None)),
        Some(o) => Err(UriError::Bad {
            what: what.into(),
            msg: format!("escape={o:?}: use json, none or auto"),
        }),
    }
}

/// `quota=N/DURATION` (e.g. `20/1m`), or `quota=0` for none.
pub fn quota_option(
    u: &Uri,
    what: &str,
    default: Option<(usize, Duration)>,
) -> Result<Option<(usize, Duration)>, UriError> {
    let Some(q) = u.get("quota") else {
        return Ok(default);
    };
    if q == "0" || q == "none" {
        return Ok(None);
    }
    let bad = || UriError::Bad {
        what: what.into(),
        msg: format!("quota={q:?}: use N/DURATION, e.g. 20/1m"),
    };
    let (n, d) = q.split_once('/').ok_or_else(bad)?;
    let n: usize = n.parse().map_err(|_| bad())?;
    let d = probes::parse_duration(d).map_err(|_| bad())?;
    if n == 0 || d.is_zero() {
        return Err(bad());
    }
    Ok(Some((n, d)))
}

/// The data a template renders for a message: the Event (Go field names); a follow-up
/// carries "(×N in 10m)" after the message; a quota summary is a synthetic Warning Event
/// with reason `EventsFolded` and the summary as its message.
pub fn template_event(msg: &Message, now: Timestamp) -> Event {
    match msg {
        Message::Event(i) => i.event.clone(),
        Message::Repeat {
            item,
            times,
            window,
        } => {
            let mut e = item.event.clone();
            let m = e.message.take().unwrap_or_default();
            e.message = Some(format!("{m}\n(×{times} in {})", short_duration(*window)));
            e
        }
        Message::Summary(s) => Event {
            type_: Some(if s.warnings > 0 { "Warning" } else { "Normal" }.into()),
            reason: Some("EventsFolded".into()),
            message: Some(s.text(std::time::Instant::now())),
            involved_object: k8s_openapi::api::core::v1::ObjectReference {
                kind: Some("Cluster".into()),
                ..Default::default()
            },
            last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
            count: Some(i32::try_from(s.total).unwrap_or(i32::MAX)),
            ..Default::default()
        },
    }
}

/// Sink types `--sink` accepts.
pub const SINK_TYPES: &[&str] = &["webhook", "dingtalk", "feishu", "lark", "log", "mysql"];

/// Build every `--sink` (a startup error names the sink and the cause).
pub fn build_all(specs: &[SinkSpec]) -> Result<Vec<Arc<dyn Sink>>, UriError> {
    let mut out: Vec<Arc<dyn Sink>> = Vec::new();
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for s in specs {
        let n = seen.entry(s.name.clone()).or_default();
        *n += 1;
        let label = if *n == 1 {
            s.name.clone()
        } else {
            format!("{}-{n}", s.name)
        };
        let what = format!("sink {label}");
        let sink: Arc<dyn Sink> = match s.name.as_str() {
            "webhook" => Arc::new(webhook::Webhook::from_uri(
                label,
                &Uri::parse(&s.raw, &what)?,
            )?),
            "dingtalk" => Arc::new(dingtalk::DingTalk::from_uri(
                label,
                &Uri::parse(&s.raw, &what)?,
            )?),
            "feishu" | "lark" => Arc::new(feishu::Feishu::from_uri(
                label,
                &Uri::parse(&s.raw, &what)?,
            )?),
            "log" => Arc::new(log::Log::from_uri(label, &s.raw)?),
            "mysql" => Arc::new(mysql::Mysql::from_uri(label, &s.raw)?),
            other => {
                return Err(UriError::UnknownSink {
                    sink: other.to_string(),
                    supported: SINK_TYPES.join(", "),
                })
            }
        };
        out.push(sink);
    }
    Ok(out)
}

/// Base64 of HMAC-SHA256(`key`, `msg`) (both vendors' signing primitive).
pub fn hmac_sha256_b64(key: &[u8], msg: &[u8]) -> String {
    use base64::Engine;
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&k, msg).as_ref())
}

/// Warn about options a chat sink ignores.
pub fn warn_unknown(u: &Uri, what: &str, known: &[&str]) {
    for k in u.unknown_keys(known) {
        tracing::warn!("{what}: ignoring unknown option {k:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_bad_sinks_are_startup_errors() {
        let env = |_: &str| None;
        let spec = |s: &str| super::super::uri::split_sink(s, &env).unwrap();
        let e = build_all(&[spec("kafka:?brokers=x")]).unwrap_err();
        assert!(
            e.to_string().starts_with("sink kafka: unknown sink type"),
            "{e}"
        );
        let e = build_all(&[spec(
            "dingtalk:https://oapi.dingtalk.com/robot/send?label=x",
        )])
        .unwrap_err();
        assert_eq!(e.to_string(), "sink dingtalk: access_token is required");
        let e = build_all(&[spec("webhook:nohost")]).unwrap_err();
        assert!(e.to_string().starts_with("sink webhook: URI"), "{e}");
        let e = build_all(&[spec("webhook:http://h/p?method=FETCH+IT")]).unwrap_err();
        assert!(e.to_string().contains("method"), "{e}");
        let ok = build_all(&[
            spec("webhook:http://h/a"),
            spec("webhook:http://h/b"),
            spec("log:"),
        ])
        .unwrap();
        let labels: Vec<&str> = ok.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["webhook", "webhook-2", "log"]);
    }

    #[test]
    fn signing_primitive() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_b64(b"Jefe", b"what do ya want for nothing?"),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=" // 5bdcc146…3843
        );
    }
}
