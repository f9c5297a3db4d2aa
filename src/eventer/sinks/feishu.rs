//! `feishu` and `lark` (the same custom-robot API on another host): a native interactive
//! card (title from `label`, colour by type, the Event's fields) or a custom body template
//! as for `webhook`. `secret` adds `timestamp` (seconds) and `sign` =
//! Base64(HMAC-SHA256(key = "timestamp\nsecret", message = "")) to the JSON body, as Feishu
//! documents. The answer's `code` is read: 0 delivered, frequency limits retried.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use jiff::Timestamp;
use serde_json::{json, Value as Json};

use super::super::client::{Answer, Request};
use super::super::event::{object_name, to_value};
use super::super::filter::{Filter, Level, FILTER_KEYS};
use super::super::fold::Message;
use super::super::template::gotime::{go_string, GoTime};
use super::super::uri::{Uri, UriError};
use super::{
    body_source, current, escape_option, hmac_sha256_b64, judge_http, load_template, quota_option,
    slot, template_event, warn_unknown, BodySource, BuildError, ChatPolicy, Outcome, Payload, Sink,
    TemplateSlot,
};

/// Feishu's documented custom-robot limit is 100 requests a minute (and 5 a second).
pub const QUOTA: (usize, Duration) = (100, Duration::from_secs(60));

/// `code`s that mean "too many requests": 11232 (frequency limited), 9499 with "too many
/// request", 230020 (chat rate limit).
pub const THROTTLE_CODES: &[i64] = &[11232, 230020];

const OWN: &[&str] = &[
    "secret",
    "label",
    "custom_body_configmap",
    "custom_body_configmap_namespace",
    "custom_body_file",
    "escape",
    "quota",
];

#[derive(Debug)]
pub struct Feishu {
    label: String,
    url: String,
    title: String,
    secret: Option<String>,
    filter: Filter,
    quota: Option<(usize, Duration)>,
    body: BodySource,
    template: Option<TemplateSlot>,
}

impl Feishu {
    pub fn from_uri(label: String, u: &Uri) -> Result<Feishu, UriError> {
        let what = format!("sink {label}");
        let mut known = OWN.to_vec();
        known.extend_from_slice(FILTER_KEYS);
        warn_unknown(u, &what, &known);
        let body = body_source(u, &what)?;
        let template = match body {
            BodySource::Default => None,
            _ => Some(slot(load_template(
                &body,
                "{}",
                escape_option(u, &what)?,
                &what,
            )?)),
        };
        Ok(Feishu {
            filter: Filter::from_uri(u, &what, Some(Level::Warning))?,
            quota: quota_option(u, &what, Some(QUOTA))?,
            url: u.endpoint(&known),
            title: u.get("label").unwrap_or("Kubernetes event").to_string(),
            secret: u.get("secret").filter(|s| !s.is_empty()).map(String::from),
            body,
            template,
            label,
        })
    }

    /// The native card for one message.
    pub fn card(&self, msg: &Message, now: Timestamp) -> Json {
        let e = template_event(msg, now);
        let type_ = e.type_.clone().unwrap_or_default();
        let colour = match type_.as_str() {
            "Warning" => "red",
            "Normal" => "green",
            _ => "blue",
        };
        let when = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or(e.event_time.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let mut lines = vec![
            format!("**Type:** {type_}"),
            format!("**Reason:** {}", e.reason.as_deref().unwrap_or("")),
            format!("**Object:** {}", object_name(&e)),
        ];
        if let Some(h) = e
            .source
            .as_ref()
            .and_then(|s| s.host.as_deref())
            .filter(|h| !h.is_empty())
        {
            lines.push(format!("**Host:** {h}"));
        }
        lines.push(format!("**Time:** {}", go_string(&GoTime::local(when))));
        if let Some(c) = e.count.filter(|c| *c > 1) {
            lines.push(format!("**Count:** {c}"));
        }
        lines.push(format!(
            "**Message:** {}",
            e.message.as_deref().unwrap_or("")
        ));
        json!({
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": true},
                "header": {"title": {"tag": "plain_text", "content": format!("{}: {}", self.title, e.reason.as_deref().unwrap_or(""))},
                           "template": colour},
                "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": lines.join("\n")}}]
            }
        })
    }

    /// Add `timestamp` and `sign` to a JSON object body.
    pub fn sign(&self, body: &mut Json, now_s: i64) -> Result<(), BuildError> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let Some(obj) = body.as_object_mut() else {
            return Err(BuildError(
                "the body is not a JSON object, so it cannot carry a signature".into(),
            ));
        };
        let key = format!("{now_s}\n{secret}");
        obj.insert("timestamp".into(), Json::String(now_s.to_string()));
        obj.insert(
            "sign".into(),
            Json::String(hmac_sha256_b64(key.as_bytes(), b"")),
        );
        Ok(())
    }
}

impl Sink for Feishu {
    fn label(&self) -> &str {
        &self.label
    }
    fn filter(&self) -> &Filter {
        &self.filter
    }
    fn chat(&self) -> Option<ChatPolicy> {
        Some(ChatPolicy { quota: self.quota })
    }
    fn configmap(&self) -> Option<(&str, &str, &TemplateSlot)> {
        match (&self.body, &self.template) {
            (BodySource::ConfigMap { namespace, name }, Some(t)) => Some((namespace, name, t)),
            _ => None,
        }
    }
    fn build(&self, msg: &Message, now: Timestamp) -> Result<Payload, BuildError> {
        let body = match &self.template {
            None => {
                let mut card = self.card(msg, now);
                self.sign(&mut card, now.as_second())?;
                card.to_string()
            }
            Some(t) => {
                let ev = template_event(msg, now);
                let text = current(t)
                    .render(&to_value(&ev, now))
                    .map_err(|e| BuildError(e.to_string()))?;
                if self.secret.is_some() {
                    let mut v: Json = serde_json::from_str(&text).map_err(|e| {
                        BuildError(format!(
                            "the rendered body is not JSON ({e}), so it cannot be signed"
                        ))
                    })?;
                    self.sign(&mut v, now.as_second())?;
                    v.to_string()
                } else {
                    text
                }
            }
        };
        Ok(Payload::Http(Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: Bytes::from(body),
        }))
    }
    fn judge(&self, a: &Answer) -> Outcome {
        judge_answer(a)
    }
}

/// Feishu answers `{"code": N, "msg": "…"}` (older robots `{"StatusCode": N, …}`), HTTP 200
/// or, for bad requests and limits, 400/429.
pub fn judge_answer(a: &Answer) -> Outcome {
    let v: Json = serde_json::from_slice(&a.body).unwrap_or_default();
    let code = v["code"].as_i64().or_else(|| v["StatusCode"].as_i64());
    let msg = v["msg"]
        .as_str()
        .or(v["StatusMessage"].as_str())
        .unwrap_or("")
        .to_string();
    let throttled = code.is_some_and(|c| THROTTLE_CODES.contains(&c))
        || (code == Some(9499) && msg.to_ascii_lowercase().contains("too many"));
    if throttled || a.status.as_u16() == 429 {
        return Outcome::Retry {
            cause: "rate_limited",
            after: Some(Duration::from_secs(1)),
            throttled: false,
            detail: format!("code {}: {msg}", code.unwrap_or(0)),
        };
    }
    match (judge_http(a), code) {
        (Outcome::Delivered, None | Some(0)) => Outcome::Delivered,
        (Outcome::Delivered, Some(c)) | (Outcome::Reject { .. }, Some(c)) => Outcome::Reject {
            cause: "vendor_error",
            detail: format!("code {c}: {msg}"),
        },
        (other, _) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::Item;
    use super::*;
    use std::sync::Arc;

    fn feishu(q: &str) -> Feishu {
        Feishu::from_uri(
            "feishu".into(),
            &Uri::parse(
                &format!("http://127.0.0.1:9/open-apis/bot/v2/hook/abc?{q}"),
                "s",
            )
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn native_card_signed() {
        let f = feishu("secret=S3C&label=prod");
        assert_eq!(f.url, "http://127.0.0.1:9/open-apis/bot/v2/hook/abc");
        let ev = super::super::webhook::tests::event("a \"b\"\nc");
        let m = Message::Event(Arc::new(Item::new(ev)));
        let Payload::Http(r) = f
            .build(&m, Timestamp::from_second(1_700_000_000).unwrap())
            .unwrap()
        else {
            panic!()
        };
        let v: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["msg_type"], "interactive");
        assert_eq!(v["card"]["header"]["template"], "red");
        assert_eq!(
            v["card"]["header"]["title"]["content"],
            "prod: PodOOMKilling"
        );
        assert!(v["card"]["elements"][0]["text"]["content"]
            .as_str()
            .unwrap()
            .ends_with("**Message:** a \"b\"\nc"));
        assert_eq!(v["timestamp"], "1700000000");
        assert_eq!(v["sign"], hmac_sha256_b64(b"1700000000\nS3C", b""));
    }

    #[test]
    fn reads_code() {
        let a = |status: u16, body: &str| Answer {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: Bytes::from(body.to_string()),
        };
        assert_eq!(
            judge_answer(&a(200, r#"{"code":0,"msg":"success","data":{}}"#)),
            Outcome::Delivered
        );
        assert_eq!(
            judge_answer(&a(200, r#"{"StatusCode":0,"StatusMessage":"success"}"#)),
            Outcome::Delivered
        );
        assert!(matches!(
            judge_answer(&a(200, r#"{"code":11232,"msg":"frequency limited"}"#)),
            Outcome::Retry {
                cause: "rate_limited",
                ..
            }
        ));
        assert!(matches!(
            judge_answer(&a(200, r#"{"code":19021,"msg":"sign match fail"}"#)),
            Outcome::Reject { .. }
        ));
        assert!(matches!(
            judge_answer(&a(400, r#"{"code":9499,"msg":"Bad Request"}"#)),
            Outcome::Reject { .. }
        ));
        assert!(matches!(
            judge_answer(&a(503, "")),
            Outcome::Retry {
                cause: "http_5xx",
                ..
            }
        ));
    }
}
