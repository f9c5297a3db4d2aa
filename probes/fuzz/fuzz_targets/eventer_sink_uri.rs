//! `--sink=<name>:<uri>` and `--source=kubernetes:<url>` (`nodeprobe::eventer::uri`, and the
//! sinks' option parsing in `sinks::build_all`): any text, with `$VAR`s that expand to a
//! secret.
//!
//! * parsing and building never panic; an error never shows a secret given as the value
//!   of a secret query key (`access_token=$TOKEN`, `sign=`, `secret=`, …);
//! * `expand_env` leaves text without `$` unchanged and doubles as `$$` → `$`;
//! * `redact_text` keeps every part of the query, with secret values as `***`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe::eventer::sinks::build_all;
use nodeprobe::eventer::uri::{
    expand_env, parse_source, redact_text, split_sink, Uri, SECRET_KEYS,
};

const SECRET: &str = "S3cr3t-V4lue";

fn lookup(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some(SECRET.to_string()),
        "HOST" => Some("127.0.0.1:9".to_string()),
        _ => None,
    }
}

/// Every `$TOKEN` in `text` is the whole value of a secret key in the query.
fn secret_only_in_secret_keys(text: &str) -> bool {
    let Some((base, q)) = text.split_once('?') else {
        return !text.contains("$TOKEN") && !text.contains("${TOKEN}");
    };
    if base.contains("$TOKEN") || base.contains("${TOKEN}") {
        return false;
    }
    q.split('&').all(|part| {
        if !part.contains("$TOKEN") && !part.contains("${TOKEN}") {
            return true;
        }
        matches!(part.split_once('='), Some((k, v))
            if SECRET_KEYS.contains(&k) && (v == "$TOKEN" || v == "${TOKEN}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Options that read files or name ConfigMaps are not the parser's business here.
    if text.contains("custom_body_file") {
        return;
    }

    if !text.contains('$') {
        assert_eq!(expand_env(text, "fuzz", &lookup).as_deref(), Ok(text));
    }
    if let Ok(e) = expand_env(text, "fuzz", &lookup) {
        assert!(e.len() <= text.len() * (SECRET.len() + 1) + 16);
    }

    let redacted = redact_text(text);
    if let Some((_, q)) = text.split_once('?') {
        let (_, rq) = redacted.split_once('?').expect("the query is kept");
        assert_eq!(q.split('&').count(), rq.split('&').count(), "{redacted}");
        for part in rq.split('&') {
            if let Some((k, v)) = part.split_once('=') {
                if SECRET_KEYS.contains(&k) {
                    assert_eq!(v, "***", "{redacted}");
                }
            }
        }
    }

    let _ = Uri::parse(text, "fuzz");
    let check = secret_only_in_secret_keys(text) && !text.contains(SECRET);
    let no_secret = |msg: String| assert!(!check || !msg.contains(SECRET), "secret in {msg}");
    if let Err(e) = parse_source(text, &lookup) {
        no_secret(e.to_string());
    }
    match split_sink(text, &lookup) {
        Ok(spec) => {
            if let Err(e) = build_all(&[spec]) {
                no_secret(e.to_string());
            }
        }
        Err(e) => no_secret(e.to_string()),
    }
});
