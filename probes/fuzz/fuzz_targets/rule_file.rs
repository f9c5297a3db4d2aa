//! NPD rule files (`probes::logs::MonitorConfig::parse`), regex compilation included.
//!
//! * any bytes: loaded or refused with an error naming the file; a loaded file routes every
//!   rule to the single-line or the multi-line path, its buffer is 1..=1000 lines, and
//!   lines pushed through it give matches that name a rule and cover the newest line.
//! * rule files built from fuzzed patterns: a pattern the regex engine itself accepts loads
//!   (or is refused only for size); a refused rule is named by its index.
//!
//! Time and memory per file are bounded by the regex crate's size limits (libFuzzer's
//! `-timeout` and `-rss_limit_mb` catch a pattern that escapes them).
#![no_main]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, Unstructured};
use probes::logs::{Matcher, MonitorConfig, MonitorStats, RulesError};
use serde_json::json;

fn exercise(c: MonitorConfig, lines: &[&str]) {
    assert_eq!(
        c.ruleset.fast_rule_count() + c.ruleset.multiline_rule_count(),
        c.rules.len()
    );
    assert!((1..=1000).contains(&c.buffer_size));
    let n = c.rules.len();
    let buffer = c.buffer_size;
    let mut m = Matcher::new(
        c,
        Arc::new(MonitorStats::new("fuzz")),
        SystemTime::UNIX_EPOCH,
    );
    for (i, line) in lines.iter().take(32).enumerate() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64);
        let (_, matches) = m.push(line, at);
        for rm in matches {
            assert!(rm.rule < n);
            assert!(rm.lines >= 1 && rm.lines <= buffer, "{rm:?}");
            assert!(rm.message.contains(line.trim()), "{rm:?} {line:?}");
            assert!(rm.timestamp <= at);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // the bytes as a rule file
    match MonitorConfig::parse("fuzz.json", data) {
        Err(RulesError::Rule { index, cause, .. }) if cause.starts_with("regex parse error") => {
            // a pattern the regex crate accepts must not be refused (bar the size limit)
            // (the loader reads bytes that are not UTF-8 as replaced, as NPD's Go decoder)
            let text = String::from_utf8_lossy(data);
            let v: serde_json::Value = serde_json::from_str(&text).expect("JSON was read");
            if let Some(p) = v["rules"][index]["pattern"].as_str() {
                assert!(
                    regex::Regex::new(p).is_err() || cause.contains("size limit"),
                    "pattern {p:?} compiles alone but its rule is refused: {cause}"
                );
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.json: "), "{e}"),
        Ok(c) => {
            let text = String::from_utf8_lossy(data);
            let lines: Vec<&str> = text.lines().collect();
            exercise(c, &lines);
        }
    }

    // a well-formed file around fuzzed patterns
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(1..=4u8).unwrap_or(1);
    let buffer = u.int_in_range(1..=12u8).unwrap_or(10);
    let patterns: Vec<String> = (0..n).map(|_| string(&mut u, 120)).collect();
    let rules: Vec<_> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"type": if i % 2 == 0 { "temporary" } else { "permanent" },
                   "condition": "C", "reason": format!("R{i}"), "pattern": p})
        })
        .collect();
    let file = json!({"plugin": "kmsg", "source": "fuzz", "bufferSize": buffer,
        "conditions": [{"type": "C", "reason": "Ok", "message": "ok"}], "rules": rules});
    let bytes = serde_json::to_vec(&file).expect("JSON");
    match MonitorConfig::parse("fuzz.json", &bytes) {
        Ok(c) => {
            let lines: Vec<&str> = patterns.iter().map(String::as_str).collect();
            exercise(c, &lines);
        }
        Err(RulesError::Rule { index, cause, .. }) if cause.starts_with("regex parse error") => {
            assert!(index < patterns.len());
            let alone = regex::Regex::new(&patterns[index]);
            assert!(
                alone.is_err() || cause.contains("size limit"),
                "pattern {:?} compiles alone but the rule file is refused: {cause}",
                patterns[index]
            );
        }
        Err(e) => panic!("only a rule can be wrong here: {e}"),
    }
});
