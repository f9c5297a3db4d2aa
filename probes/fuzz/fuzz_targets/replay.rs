//! `nodeprobe rules test`: any bytes replayed through the shipped rules
//! (`nodeprobe::logs_cmd::replay`), in every format and output.
//!
//! * JSON output is one valid JSON document; its line count is the input's; every match
//!   names a line that exists, in order; the repair counters add up.
//! * text output is UTF-8 and ends with the counts.
//! * output is bounded by the matches it reports.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nodeprobe::logs_cmd::{replay, LogFormat, LossyLines, WatchOutput, MAX_LINE};
use probes::logs::MonitorConfig;

fn rules() -> Vec<MonitorConfig> {
    static RULES: OnceLock<Vec<MonitorConfig>> = OnceLock::new();
    RULES
        .get_or_init(|| MonitorConfig::defaults().expect("shipped rules load"))
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, log)) = data.split_first() else {
        return;
    };
    let format = [LogFormat::Plain, LogFormat::Kmsg, LogFormat::Syslog][usize::from(mode % 3)];
    let output = if mode & 0x80 == 0 {
        WatchOutput::Json
    } else {
        WatchOutput::Text
    };
    let mut out = Vec::new();
    let sum = replay(
        rules(),
        LossyLines::new(log, MAX_LINE),
        format,
        output,
        &mut out,
    )
    .expect("a slice reads without error");
    let lines = log.iter().filter(|&&b| b == b'\n').count()
        + usize::from(!log.is_empty() && !log.ends_with(b"\n"));
    assert_eq!(sum.lines, lines as u64);
    match output {
        WatchOutput::Json => {
            let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(v["lines"], sum.lines);
            let matches = v["matches"].as_array().expect("matches");
            assert_eq!(matches.len() as u64, sum.matches);
            let mut last = 0;
            let mut text = 0;
            for m in matches {
                let line = m["line"].as_u64().expect("line number");
                assert!(line >= 1 && line <= sum.lines && line >= last, "{m}");
                last = line;
                text += m["message"].as_str().expect("message").len();
            }
            let counted: u64 = v["counts"]
                .as_object()
                .expect("counts")
                .values()
                .map(|n| n.as_u64().expect("count"))
                .sum();
            assert_eq!(counted, sum.matches);
            assert_eq!(v["repaired"]["invalid_utf8_lines"], sum.invalid_utf8_lines);
            assert!(v["repaired"]["notes"].as_array().expect("notes").len() <= 20);
            // bounded: fixed overhead per match and per note, plus the matched text
            // (JSON escaping at most 6 bytes per byte)
            assert!(
                out.len() <= 4096 + 1024 * matches.len() + 6 * text,
                "{} bytes of output for {} matches",
                out.len(),
                matches.len()
            );
        }
        WatchOutput::Text => {
            let text = String::from_utf8(out).expect("UTF-8 output");
            let read_line = format!("{} lines read\n", sum.lines);
            assert!(text.contains(&read_line), "{text}");
            let listed = text.lines().filter(|l| l.starts_with("line ")).count() as u64;
            let notes = text
                .lines()
                .filter(|l| {
                    l.starts_with("line ")
                        && l.split_once(": ")
                            .is_some_and(|(_, r)| r.starts_with("note: "))
                })
                .count() as u64;
            assert_eq!(listed - notes, sum.matches);
        }
    }
});
