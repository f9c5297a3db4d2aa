//! Cloud metadata answers (`probes::spot`): any status and body from each cloud's
//! termination-notice endpoint.
//!
//! * a garbage answer is never a notice: a `Terminating` notice has a termination time in
//!   `YYYY-MM-DDTHH:MM:SSZ` that means the same instant as the answer's time, and GCP says
//!   exactly `TRUE`; AWS names a documented action.
//! * what the probe reports (the condition message or Unknown reason) is one line and
//!   bounded, whatever the body.
//! * round trips: times written in each cloud's format parse back to the same instant.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{assert_one_line, Unstructured};
use probes::clients::metadata::Response;
use probes::spot::{
    azure_notice, format_utc, outcome, parse_aliyun, parse_aws, parse_azure_events, parse_datetime,
    parse_gcp, parse_rfc1123, parse_tencent, Cloud, Notice,
};
use probes::timefmt::Timestamp;
use probes::Outcome;

/// Longest report a metadata answer may produce: two excerpts of the body (60 characters,
/// each at worst a 10-byte escape) and 100 characters of a JSON error, plus the words.
const MAX_REPORT: usize = 2048;

const STATUSES: [u16; 8] = [200, 200, 200, 404, 500, 403, 301, 0];

fn report(cloud: Cloud, n: Result<Notice, String>) {
    let o = outcome(cloud, n);
    let text = match &o {
        Outcome::Ok { detail } => detail.clone().unwrap_or_default(),
        Outcome::Problem { reason, message } => format!("{reason}: {message}"),
        Outcome::Unknown { error } => error.clone(),
        Outcome::NotApplicable { why } => why.clone(),
    };
    assert_one_line("metadata report", &text, MAX_REPORT);
}

fn terminating_time(n: &Result<Notice, String>) -> Option<i64> {
    match n {
        Ok(Notice::Terminating { time: Some(t), .. }) => {
            let unix = parse_datetime(t, 0).unwrap_or_else(|| panic!("bad time {t:?}"));
            assert_eq!(&format_utc(unix), t);
            Some(unix)
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&s, rest)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(s) % STATUSES.len()];
    let r = Response {
        status,
        body: Bytes::copy_from_slice(rest),
    };
    let body = r.text();

    let n = parse_aliyun(&r);
    if let Some(t) = terminating_time(&n) {
        assert_eq!(Some(t), parse_datetime(&body, 0));
    }
    report(Cloud::Aliyun, n);

    let n = parse_tencent(&r);
    if let Some(t) = terminating_time(&n) {
        assert_eq!(Some(t), parse_datetime(&body, 8 * 3600));
    }
    report(Cloud::Tencent, n);

    let n = parse_aws(&r);
    terminating_time(&n);
    if let Ok(Notice::Terminating { .. }) = &n {
        let v: serde_json::Value = serde_json::from_str(&body).expect("AWS notice is JSON");
        assert!(matches!(
            v["action"].as_str(),
            Some("terminate" | "stop" | "hibernate")
        ));
    }
    report(Cloud::Aws, n);

    let n = parse_gcp(&r);
    assert_eq!(
        matches!(n, Ok(Notice::Terminating { .. })),
        status == 200 && body == "TRUE"
    );
    report(Cloud::Gcp, n);

    let vm = String::from_utf8_lossy(&data[..data.len().min(12)]).into_owned();
    match parse_azure_events(&r) {
        Ok(events) => {
            let n = azure_notice(&events, &vm);
            terminating_time(&n);
            report(Cloud::Azure, n);
        }
        Err(e) => report(Cloud::Azure, Err(e)),
    }

    // round trips of the time formats
    // the latest second jiff (and so format_utc) can write: 9999-12-30T22:00:00Z
    let max_unix = Timestamp::MAX.as_second();
    let mut u = Unstructured::new(data);
    let (Ok(unix), Ok(zone)) = (
        u.int_in_range(0..=max_unix),
        u.int_in_range(-(23 * 60 + 59)..=(23 * 60 + 59i64)),
    ) else {
        return;
    };
    let text = format_utc(unix);
    assert_eq!(parse_datetime(&text, 0), Some(unix), "{text}");
    // the same instant in another zone, the way Tencent writes it (no zone, UTC+8); only
    // where the local time is in 1970..=max_unix (the range parse_datetime gives)
    let local_unix = unix + zone * 60;
    if (0..=max_unix).contains(&local_unix) {
        let local = format_utc(local_unix);
        let sign = if zone < 0 { '-' } else { '+' };
        let with_zone = format!(
            "{} {}{sign}{:02}:{:02}",
            &local[..10],
            &local[11..19],
            zone.abs() / 60,
            zone.abs() % 60
        );
        assert_eq!(parse_datetime(&with_zone, 0), Some(unix), "{with_zone}");
        let tencent = format!("{} {}", &local[..10], &local[11..19]);
        assert_eq!(parse_datetime(&tencent, zone * 60), Some(unix), "{tencent}");
    }
    // RFC 1123, Azure's NotBefore
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let month: usize = text[5..7].parse().expect("month");
    // the weekday must match the date (1970-01-01 was a Thursday): it is checked
    let weekday = WEEKDAYS[unix.div_euclid(86_400).rem_euclid(7) as usize];
    let rfc1123 = format!(
        "{weekday}, {} {} {} {} GMT",
        &text[8..10],
        MONTHS[month - 1],
        &text[..4],
        &text[11..19]
    );
    assert_eq!(parse_rfc1123(&rfc1123), Some(unix), "{rfc1123}");
});
