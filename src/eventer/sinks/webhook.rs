//! `webhook`: one HTTP request per Event, body from a Go template (kube-eventer's default
//! body, `custom_body_configmap` or `custom_body_file`). Differences from kube-eventer:
//! `method` defaults to POST, any 2xx is success, `header=K=V` splits at the first `=`,
//! our own options are not forwarded to the receiver, and a JSON body gets
//! `Content-Type: application/json` unless a `header=Content-Type=…` says otherwise.

use bytes::Bytes;
use http::Method;
use jiff::Timestamp;

use super::super::client::Request;
use super::super::event::to_value;
use super::super::filter::{Filter, FILTER_KEYS};
use super::super::fold::Message;
use super::super::template::Escape;
use super::super::uri::{Uri, UriError};
use super::{
    body_source, current, escape_option, load_template, slot, template_event, BodySource,
    BuildError, Payload, Sink, TemplateSlot,
};

/// kube-eventer's default webhook body.
pub const DEFAULT_BODY: &str = "{\n\t\"EventType\": \"{{ .Type }}\",\n\t\"EventKind\": \"{{ .InvolvedObject.Kind }}\",\n\t\"EventReason\": \"{{ .Reason }}\",\n\t\"EventTime\": \"{{ .LastTimestamp }}\",\n\t\"EventMessage\": \"{{ .Message }}\"\n}";

const OWN: &[&str] = &[
    "method",
    "header",
    "custom_body_configmap",
    "custom_body_configmap_namespace",
    "custom_body_file",
    "escape",
    "workers",
];

#[derive(Debug)]
pub struct Webhook {
    label: String,
    url: String,
    method: Method,
    headers: Vec<(String, String)>,
    filter: Filter,
    template: TemplateSlot,
    body: BodySource,
    workers: usize,
}

impl Webhook {
    pub fn from_uri(label: String, u: &Uri) -> Result<Webhook, UriError> {
        let what = format!("sink {label}");
        let bad = |msg: String| UriError::Bad {
            what: what.clone(),
            msg,
        };
        let method = match u.get("method") {
            None | Some("") => Method::POST,
            Some(m) => {
                let m = m.to_ascii_uppercase();
                if !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(bad(format!("method={m:?} is not an HTTP method")));
                }
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| bad(format!("method={m:?} is not an HTTP method")))?
            }
        };
        let mut headers = Vec::new();
        for h in u.all("header") {
            let (k, v) = h
                .split_once('=')
                .ok_or_else(|| bad(format!("header={h:?} is not Key=Value")))?;
            http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| bad(format!("header name {k:?} is invalid")))?;
            http::HeaderValue::from_str(v)
                .map_err(|_| bad(format!("header {k}: value is invalid")))?;
            headers.push((k.to_string(), v.to_string()));
        }
        let escape = escape_option(u, &what)?;
        let body = body_source(u, &what)?;
        let template = load_template(&body, DEFAULT_BODY, escape, &what)?;
        let has_ct = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if !has_ct && template.escape() == Escape::Json {
            headers.push(("Content-Type".into(), "application/json".into()));
        }
        let workers = match u.get("workers") {
            None => 4,
            Some(w) => w
                .parse::<usize>()
                .ok()
                .filter(|w| (1..=64).contains(w))
                .ok_or_else(|| bad(format!("workers={w:?}: use 1 to 64")))?,
        };
        let mut own = OWN.to_vec();
        own.extend_from_slice(FILTER_KEYS);
        Ok(Webhook {
            filter: Filter::from_uri(u, &what, None)?,
            url: u.endpoint(&own),
            label,
            method,
            headers,
            template: slot(template),
            body,
            workers,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Sink for Webhook {
    fn label(&self) -> &str {
        &self.label
    }
    fn filter(&self) -> &Filter {
        &self.filter
    }
    fn workers(&self) -> usize {
        self.workers
    }
    fn configmap(&self) -> Option<(&str, &str, &TemplateSlot)> {
        match &self.body {
            BodySource::ConfigMap { namespace, name } => Some((namespace, name, &self.template)),
            _ => None,
        }
    }
    fn build(&self, msg: &Message, now: Timestamp) -> Result<Payload, BuildError> {
        let ev = template_event(msg, now);
        let body = current(&self.template)
            .render(&to_value(&ev, now))
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Payload::Http(Request {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: Bytes::from(body),
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::super::Item;
    use super::*;
    use std::sync::Arc;

    pub(crate) fn event(message: &str) -> k8s_openapi::api::core::v1::Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1.1", "namespace": "default", "uid": "u-1"},
            "involvedObject": {"kind": "Node", "name": "n1"},
            "reason": "PodOOMKilling", "message": message, "type": "Warning", "count": 1,
            "lastTimestamp": "2026-11-30T08:00:05Z"
        }))
        .unwrap()
    }

    fn body(p: Payload) -> (Request, String) {
        match p {
            Payload::Http(r) => {
                let s = String::from_utf8(r.body.to_vec()).unwrap();
                (r, s)
            }
            Payload::Line(_) => panic!(),
        }
    }

    #[test]
    fn default_body_is_valid_json_for_any_message() {
        let u = Uri::parse(
            "http://127.0.0.1:1/h?level=Warning&header=X-Key=a=b&token=1",
            "s",
        )
        .unwrap();
        let w = Webhook::from_uri("webhook".into(), &u).unwrap();
        assert_eq!(w.url(), "http://127.0.0.1:1/h?token=1");
        let msg = "line1\n\"quoted\" \\ back\ttab 100% 中文\u{1}";
        let m = Message::Event(Arc::new(Item::new(event(msg))));
        let (r, s) = body(w.build(&m, Timestamp::UNIX_EPOCH).unwrap());
        assert_eq!(r.method, Method::POST);
        assert!(r.headers.contains(&("X-Key".into(), "a=b".into())));
        assert!(r
            .headers
            .contains(&("Content-Type".into(), "application/json".into())));
        let v: serde_json::Value = serde_json::from_str(&s).expect(&s);
        assert_eq!(v["EventMessage"], msg);
        assert_eq!(v["EventKind"], "Node");
    }

    #[test]
    fn options() {
        let u = Uri::parse(
            "http://h/?method=put&header=Content-Type=text/plain&custom_body_file=/nonexistent/x",
            "s",
        )
        .unwrap();
        assert!(Webhook::from_uri("webhook".into(), &u)
            .unwrap_err()
            .to_string()
            .contains("custom_body_file"));
        let u = Uri::parse("http://h/?method=put&header=Content-Type=text/plain", "s").unwrap();
        let w = Webhook::from_uri("webhook".into(), &u).unwrap();
        assert_eq!(w.method, Method::PUT);
        assert_eq!(
            w.headers,
            vec![("Content-Type".to_string(), "text/plain".to_string())]
        );
        let u = Uri::parse("http://h/?header=NoValue", "s").unwrap();
        assert!(Webhook::from_uri("webhook".into(), &u).is_err());
        let u = Uri::parse("http://h/?workers=0", "s").unwrap();
        assert!(Webhook::from_uri("webhook".into(), &u).is_err());
    }
}
