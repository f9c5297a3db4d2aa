//! The eventer's Go `text/template` engine (`nodeprobe::eventer::template`): hostile templates
//! (deep nesting, huge ranges, recursion through `template`, big printf widths) over an Event
//! whose strings come from the fuzzer.
//!
//! * parse and render never panic, and a render is bounded: its output is at most the
//!   configured `max_output` bytes, its work by `max_steps` (libFuzzer's `-timeout` catches a
//!   loop the step counter misses);
//! * a template without actions renders to itself (plain text passes through unchanged);
//! * rendering is deterministic (the same text twice).
#![no_main]

use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;
use nodeprobe::eventer::event::to_value;
use nodeprobe::eventer::template::{Escape, Limits, Template};
use nodeprobe_fuzz::{event, string, Unstructured};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let src = string(&mut u, 2048);
    let escape = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => None,
        1 => Some(Escape::Json),
        _ => Some(Escape::None),
    };
    let ev = event(&mut u);
    let Ok(t) = Template::parse(&src, escape) else {
        return;
    };
    let limits = Limits {
        max_output: 64 << 10,
        max_steps: 20_000,
        max_depth: 16,
    };
    let value = to_value(&ev, Timestamp::UNIX_EPOCH);
    let first = t.render_with(&value, limits);
    if let Ok(out) = &first {
        assert!(
            out.len() <= limits.max_output,
            "{} bytes rendered, limit {}",
            out.len(),
            limits.max_output
        );
        if !src.contains("{{") && t.escape() == Escape::None {
            assert_eq!(out, &src, "plain text changed");
        }
    }
    assert_eq!(first, t.render_with(&value, limits), "not deterministic");
});
