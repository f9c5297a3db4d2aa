//! `dingtalk`: a DingTalk custom robot. kube-eventer's options and text layout; signing as
//! DingTalk documents (`timestamp` in ms and `sign` = Base64(HMAC-SHA256(secret,
//! "timestamp\nsecret")) as query parameters); the `errcode` of the answer is read (0 =
//! delivered, throttling retried after the quota window); the robot's quota (20 messages a
//! minute) is kept by folding the overflow into one summary message.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use jiff::Timestamp;
use serde_json::json;

use super::super::client::{Answer, Request};
use super::super::event::object_name;
use super::super::filter::{Filter, Level, FILTER_KEYS};
use super::super::fold::Message;
use super::super::template::gotime::{format, local_zone, GoTime};
use super::super::uri::{Uri, UriError};
use super::{
    hmac_sha256_b64, judge_http, quota_option, template_event, warn_unknown, BuildError,
    ChatPolicy, Outcome, Payload, Sink,
};

/// DingTalk's documented custom-robot quota.
pub const QUOTA: (usize, Duration) = (20, Duration::from_secs(60));

/// `errcode`s that mean "too many messages": 130101 (send too fast, 20 per minute),
/// 410100 (throttled), 90018 and 90030 (call limits).
pub const THROTTLE_CODES: &[i64] = &[130101, 410100, 90018, 90030];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MsgType {
    Text,
    Markdown,
}

#[derive(Debug)]
pub struct DingTalk {
    label: String,
    url: String,
    labels: Vec<String>,
    msg_type: MsgType,
    secret: Option<String>,
    filter: Filter,
    quota: Option<(usize, Duration)>,
}

const OWN: &[&str] = &["label", "msg_type", "sign", "cluster_id", "region", "quota"];

impl DingTalk {
    pub fn from_uri(label: String, u: &Uri) -> Result<DingTalk, UriError> {
        let what = format!("sink {label}");
        if u.get("access_token").is_none_or(str::is_empty) {
            return Err(UriError::Bad {
                what,
                msg: "access_token is required".into(),
            });
        }
        let msg_type = match u.get("msg_type") {
            None | Some("") | Some("text") => MsgType::Text,
            Some("markdown") => MsgType::Markdown,
            Some(o) => {
                return Err(UriError::Bad {
                    what,
                    msg: format!("msg_type={o:?}: use text or markdown"),
                })
            }
        };
        let mut known = OWN.to_vec();
        known.extend_from_slice(FILTER_KEYS);
        known.push("access_token");
        warn_unknown(u, &what, &known);
        let mut own = OWN.to_vec();
        own.extend_from_slice(FILTER_KEYS);
        Ok(DingTalk {
            filter: Filter::from_uri(u, &what, Some(Level::Warning))?,
            quota: quota_option(u, &what, Some(QUOTA))?,
            url: u.endpoint(&own),
            labels: u.all("label").into_iter().map(String::from).collect(),
            secret: u.get("sign").filter(|s| !s.is_empty()).map(String::from),
            msg_type,
            label,
        })
    }

    /// The URL with `timestamp` and `sign` for `now_ms`, when signing.
    pub fn signed_url(&self, now_ms: i64) -> String {
        match &self.secret {
            None => self.url.clone(),
            Some(secret) => {
                let sign =
                    hmac_sha256_b64(secret.as_bytes(), format!("{now_ms}\n{secret}").as_bytes());
                let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}timestamp={now_ms}&sign={sign}", self.url)
            }
        }
    }

    /// kube-eventer's text layout: each label on its own line, then Level, Kind, Namespace
    /// and Name (the Event object's), Reason, Timestamp (`2006-01-02 15:04:05`, local) and
    /// Message.
    pub fn text(&self, msg: &Message, now: Timestamp) -> String {
        let e = template_event(msg, now);
        let ts = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let mut out = String::new();
        for l in &self.labels {
            out.push_str(l);
            out.push('\n');
        }
        let kind = match msg {
            Message::Summary(_) => "Cluster".to_string(),
            _ => e.involved_object.kind.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "Level:{} \nKind:{} \nNamespace:{} \nName:{} \nReason:{} \nTimestamp:{} \nMessage:{}",
            e.type_.as_deref().unwrap_or(""),
            kind,
            e.metadata.namespace.as_deref().unwrap_or(""),
            e.metadata.name.as_deref().unwrap_or(""),
            e.reason.as_deref().unwrap_or(""),
            format(&GoTime::local(ts), "2006-01-02 15:04:05", local_zone()),
            e.message.as_deref().unwrap_or(""),
        ));
        out
    }

    fn markdown(&self, msg: &Message, now: Timestamp) -> (String, String) {
        let e = template_event(msg, now);
        let reason = e.reason.clone().unwrap_or_default();
        let mut text = String::new();
        for (i, l) in self.labels.iter().enumerate() {
            text.push_str(&format!("label[{i}]: **{l}**\n\n"));
        }
        text.push_str(&format!(
            "Level: **{}**\n\nObject: {}\n\nReason: **{reason}**\n\nTimestamp: {}\n\nMessage: {}",
            e.type_.as_deref().unwrap_or(""),
            object_name(&e),
            format(
                &GoTime::local(e.last_timestamp.as_ref().map(|t| t.0).unwrap_or(now)),
                "2006-01-02 15:04:05",
                local_zone()
            ),
            e.message.as_deref().unwrap_or("").replace('\n', "\n\n"),
        ));
        (reason, text)
    }
}

impl Sink for DingTalk {
    fn label(&self) -> &str {
        &self.label
    }
    fn filter(&self) -> &Filter {
        &self.filter
    }
    fn chat(&self) -> Option<ChatPolicy> {
        Some(ChatPolicy { quota: self.quota })
    }
    fn build(&self, msg: &Message, now: Timestamp) -> Result<Payload, BuildError> {
        let body = match self.msg_type {
            MsgType::Text => json!({"msgtype": "text", "text": {"content": self.text(msg, now)}}),
            MsgType::Markdown => {
                let (title, text) = self.markdown(msg, now);
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
        };
        Ok(Payload::Http(Request {
            method: Method::POST,
            url: self.signed_url(now.as_millisecond()),
            headers: vec![(
                "Content-Type".into(),
                "application/json;charset=utf-8".into(),
            )],
            body: Bytes::from(body.to_string()),
        }))
    }
    fn judge(&self, a: &Answer) -> Outcome {
        judge_answer(a, self.quota.map(|q| q.1).unwrap_or(QUOTA.1))
    }
}

/// DingTalk answers HTTP 200 with `{"errcode": N, "errmsg": "…"}`.
pub fn judge_answer(a: &Answer, window: Duration) -> Outcome {
    match judge_http(a) {
        Outcome::Delivered => {}
        other => return other,
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let code = v["errcode"].as_i64().unwrap_or(0);
    let detail = format!("errcode {code}: {}", v["errmsg"].as_str().unwrap_or(""));
    match code {
        0 => Outcome::Delivered,
        c if THROTTLE_CODES.contains(&c) => Outcome::Retry {
            cause: "rate_limited",
            after: Some(window),
            throttled: true,
            detail,
        },
        -1 => Outcome::Retry {
            cause: "vendor_busy",
            after: None,
            throttled: false,
            detail,
        },
        _ => Outcome::Reject {
            cause: "vendor_error",
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::Item;
    use super::*;
    use std::sync::Arc;

    fn ding(q: &str) -> DingTalk {
        DingTalk::from_uri(
            "dingtalk".into(),
            &Uri::parse(
                &format!("http://127.0.0.1:9/robot/send?access_token=tok&{q}"),
                "s",
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn text_layout_and_signing() {
        let d = ding("label=cluster-a&label=prod&sign=SEC123&level=Normal");
        assert_eq!(d.filter.level, Some(Level::Normal));
        let ev = super::super::webhook::tests::event("Memory cgroup out of memory");
        let m = Message::Event(Arc::new(Item::new(ev)));
        let t = d.text(&m, Timestamp::UNIX_EPOCH);
        assert!(t.starts_with("cluster-a\nprod\nLevel:Warning \nKind:Node \nNamespace:default \nName:n1.1 \nReason:PodOOMKilling \nTimestamp:"), "{t}");
        assert!(t.ends_with(" \nMessage:Memory cgroup out of memory"), "{t}");
        let url = d.signed_url(1_700_000_000_000);
        assert!(
            url.starts_with(
                "http://127.0.0.1:9/robot/send?access_token=tok&timestamp=1700000000000&sign="
            ),
            "{url}"
        );
        // the sign is the documented HMAC, URL-encoded
        let expect = hmac_sha256_b64(b"SEC123", b"1700000000000\nSEC123");
        let enc: String = form_urlencoded::byte_serialize(expect.as_bytes()).collect();
        assert!(url.ends_with(&enc));
        assert_eq!(ding("").filter.level, Some(Level::Warning));
        assert!(ding("msg_type=markdown").msg_type == MsgType::Markdown);
    }

    #[test]
    fn reads_errcode() {
        let a = |body: &str| Answer {
            status: http::StatusCode::OK,
            headers: Default::default(),
            body: Bytes::from(body.to_string()),
        };
        assert_eq!(
            judge_answer(&a(r#"{"errcode":0,"errmsg":"ok"}"#), QUOTA.1),
            Outcome::Delivered
        );
        assert!(matches!(
            judge_answer(
                &a(r#"{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}"#),
                QUOTA.1
            ),
            Outcome::Retry {
                throttled: true,
                cause: "rate_limited",
                ..
            }
        ));
        assert!(matches!(
            judge_answer(
                &a(r#"{"errcode":310000,"errmsg":"sign not match"}"#),
                QUOTA.1
            ),
            Outcome::Reject {
                cause: "vendor_error",
                ..
            }
        ));
    }
}
