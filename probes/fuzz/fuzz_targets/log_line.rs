//! Line forms of the offline replay (`rules test --format kmsg|syslog|plain`) and its
//! reader: `probes::logs::{parse_kernel_log_line, strip_syslog_header}` and
//! `nodeprobe::logs_cmd::LossyLines`.
//!
//! * any text: a kernel-log timestamp, when found, is a finite number of seconds >= 0; a
//!   stripped syslog line is a suffix of the line; messages are bounded by the line.
//! * round trips: `dmesg`, `dmesg -r`, raw-record and classic syslog lines built from
//!   parts give the parts back.
//! * any bytes through the reader: one line per `\n` (plus an unterminated last line), in
//!   order, none longer than the limit, no NUL, no line ending left; clean input is
//!   returned exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe::logs_cmd::LossyLines;
use nodeprobe_fuzz::{string, word, Unstructured};
use probes::logs::{parse_kernel_log_line, strip_syslog_header};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn reader(data: &[u8]) {
    let max = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
    let lines: Vec<_> = LossyLines::new(data, max)
        .map(|l| l.expect("reading a slice cannot fail"))
        .collect();
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let expected = newlines + usize::from(!data.is_empty() && !data.ends_with(b"\n"));
    assert_eq!(lines.len(), expected);
    let mut clean = true;
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.number, i as u64 + 1);
        assert!(!l.text.contains(['\n', '\0']), "{l:?}");
        // at most `max` input bytes, each at worst one U+FFFD
        assert!(l.text.len() <= 3 * max, "{l:?}");
        if let Some((len, kept)) = l.cut {
            assert!(
                kept <= max as u64 && kept < len && len > max as u64,
                "{l:?}"
            );
        }
        clean &= l.cut.is_none() && !l.invalid_utf8 && l.nul_bytes == 0;
    }
    // clean input comes back as it was (CRLF read as LF)
    if clean {
        let text = std::str::from_utf8(data).expect("no invalid UTF-8 was reported");
        let mut joined: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
        if !data.ends_with(b"\n") {
            joined.pop();
        }
        let normalised = text.replace("\r\n", "\n");
        let normalised = normalised.strip_suffix('\r').unwrap_or(&normalised);
        assert_eq!(joined, normalised);
    }
}

fuzz_target!(|data: &[u8]| {
    reader(data);

    let s = String::from_utf8_lossy(data);
    let (msg, secs) = parse_kernel_log_line(&s);
    if let Some(secs) = secs {
        assert!(
            secs.is_finite() && secs >= 0.0,
            "timestamp {secs} from {s:?}"
        );
    }
    assert!(msg.len() <= 3 * s.len());
    let stripped = strip_syslog_header(&s);
    assert!(s.ends_with(stripped));

    let mut u = Unstructured::new(data);
    let Ok(form) = u.int_in_range(0..=3u8) else {
        return;
    };
    let (Ok(secs), Ok(micros)) = (
        u.int_in_range(0..=99_999_999u64),
        u.int_in_range(0..=999_999u32),
    ) else {
        return;
    };
    let text = string(&mut u, 200).replace('\n', " ");
    let want_secs = secs as f64 + f64::from(micros) / 1e6;
    match form {
        0 | 1 => {
            // dmesg -r (`<PRI>[ secs.micros] msg`) and dmesg (`[ secs.micros] msg`)
            let pri = if form == 0 { "<6>" } else { "" };
            let line = format!("{pri}[{secs:5}.{micros:06}] {text}");
            let (m, t) = parse_kernel_log_line(&line);
            assert_eq!(m, text, "{line:?}");
            let t = t.expect("timestamp");
            assert!(
                (t - want_secs).abs() < 1e-6 * want_secs.max(1.0),
                "{t} {line:?}"
            );
        }
        2 => {
            // a raw record with the text as the kernel escapes it
            let mut esc = String::new();
            for b in text.bytes() {
                if b < b' ' || b >= 127 || b == b'\\' {
                    esc.push_str(&format!("\\x{b:02x}"));
                } else {
                    esc.push(char::from(b));
                }
            }
            let usec = secs * 1_000_000 + u64::from(micros);
            let (m, t) = parse_kernel_log_line(&format!("6,{secs},{usec},-;{esc}"));
            assert_eq!(m, text);
            assert_eq!(t, Some(usec as f64 / 1e6));
        }
        _ => {
            // classic syslog: `Mon DD HH:MM:SS host ident[pid]: msg`
            let month = *u.choose(&MONTHS).unwrap_or(&"Jan");
            let day = u.int_in_range(1..=31u8).unwrap_or(1);
            let host = word(&mut u, b"abcxyz019.-_:[]", 20);
            let ident = word(&mut u, b"abcdkernl-_/.[]0123", 20);
            let line = format!("{month} {day:2} 07:15:15 {host} {ident}: {text}");
            assert_eq!(strip_syslog_header(&line), text, "{line:?}");
        }
    }
});
