//! The eventer's chat and webhook payloads (`nodeprobe::eventer::sinks`): an Event whose
//! every string comes from the fuzzer, sent through DingTalk (text and markdown, signed),
//! Feishu (the native card, signed, and the users' `custom-body` card template), and the
//! webhook (its default body and the users' template).
//!
//! * every body is valid JSON, whatever the message holds (quotes, newlines, control
//!   characters, `{{`, invalid surrogates never reach here: Rust strings are UTF-8);
//! * the message arrives unchanged: it is the webhook's `EventMessage`, ends the users'
//!   card text, and is in DingTalk's text and Feishu's card;
//! * a signed Feishu body carries `timestamp` and `sign`, a signed DingTalk URL both too.
#![no_main]

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use nodeprobe::eventer::fold::Message;
use nodeprobe::eventer::sinks::{build_all, Payload, Sink};
use nodeprobe::eventer::template::Template;
use nodeprobe::eventer::uri::{split_sink, SinkSpec};
use nodeprobe::eventer::Item;
use nodeprobe_fuzz::{event, Unstructured};
use serde_json::Value as Json;

/// The users' `custom-body` ConfigMap template (the integration tests' copy of the seed).
fn users_template() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let y: serde_yaml::Value = serde_yaml::from_str(include_str!(
            "../../../integration/tests/fixtures/eventer/custom-body-configmap.yaml"
        ))
        .expect("the fixture is YAML");
        y["data"]["content"].as_str().expect("content").to_string()
    })
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A robot label with a quote, a newline and Chinese text (the users' clusters have such).
const LABEL: &str = "prod \"集群\"\nzone-a";

fn build_sinks(label: &str) -> Vec<Arc<dyn Sink>> {
    let none = |_: &str| None;
    let specs: Vec<SinkSpec> = [
        format!("dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t&sign=s&label={}", percent(label)),
        format!("dingtalk:https://oapi.dingtalk.com/robot/send?access_token=t&msg_type=markdown&label={}", percent(label)),
        format!("feishu:https://open.feishu.cn/open-apis/bot/v2/hook/x?secret=s&label={}", percent(label)),
        "feishu:https://open.feishu.cn/open-apis/bot/v2/hook/x?secret=s&custom_body_configmap=custom-body".to_string(),
        "webhook:http://127.0.0.1:9/hook".to_string(),
        "webhook:http://127.0.0.1:9/hook?custom_body_configmap=custom-body".to_string(),
    ]
    .iter()
    .map(|f| split_sink(f, &none).expect("fixed sink flags parse"))
    .collect();
    let built = build_all(&specs).expect("fixed sinks build");
    let users = Template::parse(users_template(), None).expect("the users' template parses");
    for s in &built {
        // What the runner does once the ConfigMap is read.
        if let Some((_, _, slot)) = s.configmap() {
            *slot.write().expect("slot") = Arc::new(users.clone());
        }
    }
    built
}

fn sinks() -> &'static [Arc<dyn Sink>] {
    static S: OnceLock<Vec<Arc<dyn Sink>>> = OnceLock::new();
    S.get_or_init(|| build_sinks(LABEL))
}

fuzz_target!(|data: &[u8]| {
    let label = LABEL;
    let mut u = Unstructured::new(data);
    let ev = event(&mut u);
    let message = ev.message.clone().unwrap_or_default();
    let now = Timestamp::from_second(1_780_000_000).expect("now");
    let msg = Message::Event(Arc::new(Item::new(ev)));
    for (i, sink) in sinks().iter().enumerate() {
        let payload = match sink.build(&msg, now) {
            Ok(p) => p,
            Err(e) => panic!("sink {i} ({}) could not build: {e}", sink.label()),
        };
        let Payload::Http(req) = payload else {
            panic!("sink {i} is not HTTP");
        };
        let body: Json = serde_json::from_slice(&req.body).unwrap_or_else(|e| {
            panic!(
                "sink {i} ({}): body is not JSON ({e}): {}",
                sink.label(),
                String::from_utf8_lossy(&req.body)
            )
        });
        let text = |v: &Json| v.as_str().unwrap_or_default().to_string();
        match i {
            0 => {
                let content = text(&body["text"]["content"]);
                assert!(content.contains(&message), "dingtalk text: {content:?}");
                assert!(content.starts_with(&format!("{label}\n")), "{content:?}");
                assert!(req.url.contains("&timestamp=") && req.url.contains("&sign="));
            }
            1 => {
                // markdown needs a blank line for a line break
                let md = text(&body["markdown"]["text"]);
                let shown = message.replace('\n', "\n\n");
                assert!(md.ends_with(&format!("Message: {shown}")), "{md:?}");
            }
            2 => {
                let content = text(&body["card"]["elements"][0]["text"]["content"]);
                assert!(
                    content.ends_with(&format!("**Message:** {message}")),
                    "{content:?}"
                );
                assert!(body["timestamp"].is_string() && body["sign"].is_string());
            }
            3 | 5 => {
                let content = text(&body["card"]["elements"][0]["text"]["content"]);
                assert!(
                    content.ends_with(&format!("**EventMessage:**  {message}")),
                    "{content:?}"
                );
                if i == 3 {
                    assert!(body["timestamp"].is_string() && body["sign"].is_string());
                }
            }
            4 => assert_eq!(text(&body["EventMessage"]), message),
            _ => unreachable!(),
        }
    }
});
