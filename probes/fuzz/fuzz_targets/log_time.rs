//! Timestamps in logs and rule files: the filelog plugin's Go layouts and its translator
//! (`probes::logs::filelog`), RFC 3339 (`probes::timefmt`) and Go durations
//! (`probes::logs::rules::parse_go_duration`).
//!
//! * any layout, value, `pluginConfig` and line: no panic.
//! * round trips: a time written with a Go layout made of fuzzed elements and separators
//!   parses back to that time; RFC 3339 written by `timefmt` parses back; a duration
//!   written in Go's units parses back.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, Unstructured};
use probes::logs::filelog::{GoLayout, Translator};
use probes::logs::rules::parse_go_duration;
use probes::timefmt::{parse_rfc3339, rfc3339, rfc3339_millis};

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm): an
/// oracle of its own, independent of the calendar library the parser uses.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let (m, d) = (i64::from(m), i64::from(d));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
/// Separators that are no layout element and no digit or letter.
const SEPARATORS: [&str; 5] = [" ", "-", "/", ":", "|"];

/// A layout and a value written with it, and the time it stands for.
fn go_round_trip(u: &mut Unstructured<'_>) -> Option<()> {
    let year = u.int_in_range(1970..=9999i64).ok()?;
    let month = u.int_in_range(1..=12u32).ok()?;
    let day = u.int_in_range(1..=28u32).ok()?;
    let hour = u.int_in_range(0..=23i64).ok()?;
    let min = u.int_in_range(0..=59i64).ok()?;
    let sec = u.int_in_range(0..=59i64).ok()?;
    let frac_digits = u.int_in_range(0..=9usize).ok()?;
    let frac: u32 = u.int_in_range(0..=999_999_999).ok()?;
    let offset_min = u.int_in_range(-(23 * 60 + 59)..=(23 * 60 + 59i64)).ok()?;
    // (layout, value) pairs, in a fuzzed order
    let mut parts: Vec<(String, String)> = Vec::new();
    let mut year_used = year;
    match u.int_in_range(0..=2u8).ok()? {
        0 => parts.push(("2006".into(), format!("{year:04}"))),
        1 => {
            let yy = year % 100;
            year_used = if yy >= 69 { 1900 + yy } else { 2000 + yy };
            parts.push(("06".into(), format!("{yy:02}")));
        }
        _ => year_used = 2026, // no year: the current one
    }
    match u.int_in_range(0..=3u8).ok()? {
        0 => parts.push(("01".into(), format!("{month:02}"))),
        1 => parts.push(("1".into(), format!("{month}"))),
        2 => parts.push(("Jan".into(), MONTHS[month as usize - 1][..3].into())),
        _ => parts.push(("January".into(), MONTHS[month as usize - 1].into())),
    }
    match u.int_in_range(0..=2u8).ok()? {
        0 => parts.push(("02".into(), format!("{day:02}"))),
        1 => parts.push(("_2".into(), format!("{day:2}"))),
        _ => parts.push(("2".into(), format!("{day}"))),
    }
    if u.arbitrary::<bool>().ok()? {
        parts.push(("15".into(), format!("{hour:02}")));
    } else {
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        let pm = if hour >= 12 { "PM" } else { "AM" };
        if u.arbitrary::<bool>().ok()? {
            parts.push(("03".into(), format!("{h12:02}")));
        } else {
            parts.push(("3".into(), format!("{h12}")));
        }
        parts.push(("PM".into(), pm.into()));
    }
    if u.arbitrary::<bool>().ok()? {
        parts.push(("04".into(), format!("{min:02}")));
    } else {
        parts.push(("4".into(), format!("{min}")));
    }
    // seconds, with the fraction right after them
    let frac_text = format!("{frac:09}");
    let (sec_layout, sec_value) = if u.arbitrary::<bool>().ok()? {
        ("05".to_string(), format!("{sec:02}"))
    } else {
        ("5".to_string(), format!("{sec}"))
    };
    let mut nanos = 0;
    if frac_digits > 0 {
        let digits = &frac_text[..frac_digits];
        nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - frac_digits as u32);
        parts.push((
            format!("{sec_layout}.{}", "0".repeat(frac_digits)),
            format!("{sec_value}.{digits}"),
        ));
    } else {
        parts.push((sec_layout, sec_value));
    }
    if u.arbitrary::<bool>().ok()? {
        let wd = *u.choose(&DAYS).ok()?;
        if u.arbitrary::<bool>().ok()? {
            parts.push(("Mon".into(), wd[..3].into()));
        } else {
            parts.push(("Monday".into(), wd.into()));
        }
    }
    let mut offset_secs = 0;
    match u.int_in_range(0..=3u8).ok()? {
        0 => {}
        1 => parts.push(("MST".into(), "UTC".into())),
        form => {
            offset_secs = offset_min * 60;
            let sign = if offset_min < 0 { '-' } else { '+' };
            let (h, m) = (offset_min.abs() / 60, offset_min.abs() % 60);
            let (layout, value) = if form == 2 {
                ("-07:00", format!("{sign}{h:02}:{m:02}"))
            } else {
                ("Z0700", format!("{sign}{h:02}{m:02}"))
            };
            let value = if offset_min == 0 && layout.starts_with('Z') {
                "Z".to_string()
            } else {
                value
            };
            parts.push((layout.into(), value));
        }
    }
    // shuffle, then join with separators
    for i in (1..parts.len()).rev() {
        let j = u.int_in_range(0..=i).ok()?;
        parts.swap(i, j);
    }
    let mut layout = String::new();
    let mut value = String::new();
    for (i, (l, v)) in parts.iter().enumerate() {
        if i > 0 {
            let sep = *u.choose(&SEPARATORS).ok()?;
            layout.push_str(sep);
            value.push_str(sep);
        }
        layout.push_str(l);
        value.push_str(v);
    }
    let parsed = GoLayout::parse(&layout).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
    let secs = days_from_civil(year_used, month, day) * 86_400 + hour * 3600 + min * 60 + sec
        - offset_secs;
    let want = u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, nanos));
    assert_eq!(
        parsed.parse_time(&value, 2026),
        want,
        "layout {layout:?} value {value:?}"
    );
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    // anything
    let layout = string(&mut u, 64);
    let value = string(&mut u, 64);
    if let Ok(l) = GoLayout::parse(&layout) {
        let _ = l.parse_time(&value, 2026);
    }
    let _ = parse_rfc3339(&value);
    if let Ok(d) = parse_go_duration(&value) {
        assert!(
            d <= Duration::from_secs(1_000_000_000_000),
            "{value:?}: {d:?}"
        );
    }
    let cfg: BTreeMap<String, String> = [
        ("timestamp", string(&mut u, 40)),
        ("message", string(&mut u, 40)),
        ("timestampFormat", layout),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Ok(t) = Translator::from_plugin_config(&cfg) {
        let line = string(&mut u, 200);
        if let Some((_, msg)) = t.translate(&line, SystemTime::UNIX_EPOCH) {
            assert!(line.contains(&msg), "{msg:?} is not from {line:?}");
        }
    }

    // round trips
    go_round_trip(&mut u);
    // up to the latest instant jiff writes (9999-12-30T22:00:00Z; timefmt clamps beyond)
    let max_ms = u64::try_from(probes::timefmt::Timestamp::MAX.as_millisecond()).unwrap_or(0);
    if let Ok(ms) = u.int_in_range(0..=max_ms) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(ms / 1000);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(whole));
        assert_eq!(parse_rfc3339(&rfc3339_millis(t)), Some(whole));
    }
    if let (Ok(h), Ok(m), Ok(s), Ok(ms)) = (
        u.int_in_range(0..=10_000u64),
        u.int_in_range(0..=59u64),
        u.int_in_range(0..=59u64),
        u.int_in_range(0..=999u64),
    ) {
        let want = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
        let got = parse_go_duration(&format!("{h}h{m}m{s}s{ms}ms")).expect("valid duration");
        let diff = if got > want { got - want } else { want - got };
        assert!(diff < Duration::from_micros(1), "{got:?} != {want:?}");
    }
});
