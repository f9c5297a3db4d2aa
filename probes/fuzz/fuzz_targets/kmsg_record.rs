//! `/dev/kmsg` records (`probes::logs::kmsg`): any bytes of one `read()`.
//!
//! * raw bytes: parsed or rejected, never a panic; a record's text is bounded by its bytes;
//!   every read is a record or a counted parse error.
//! * round trip: a record written the way the kernel writes it (`\xNN` escapes of control,
//!   non-ASCII and `\` bytes, dictionary lines) parses back to the same fields.
#![no_main]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{bytes, lossy, Unstructured};
use probes::logs::kmsg::{parse_record, unescape, KmsgDecoder, KmsgRecord, ReadEvent};
use probes::logs::MonitorStats;

/// The kernel's escaping of record text (`printk.c`, `msg_add_ext_text`).
fn escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in b {
        if c < b' ' || c >= 127 || c == b'\\' {
            out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // raw bytes
    if let Ok(r) = parse_record(data) {
        assert!(r.level <= 7);
        assert!(
            r.message.len() <= 3 * data.len(),
            "text larger than its bytes"
        );
        assert!(r.metadata.iter().all(|(k, _)| !k.contains('=')));
    }
    assert!(unescape(data).len() <= 3 * data.len());
    let stats = Arc::new(MonitorStats::new("fuzz"));
    let mut d = KmsgDecoder::new(stats.clone());
    d.resume_after(u64::from(data.first().copied().unwrap_or(0)));
    // Every read is a record or a counted parse error (the log driver counts records read).
    let ev = d.on_bytes(data);
    let bad = stats.parse_errors.load(Ordering::Relaxed);
    assert_eq!(matches!(ev, ReadEvent::Record(_)), bad == 0);
    assert_eq!(matches!(ev, ReadEvent::Skipped), bad == 1);

    // round trip
    let mut u = Unstructured::new(data);
    let (Ok(pri), Ok(seq), Ok(usec)) = (
        u.arbitrary::<u32>(),
        u.arbitrary::<u64>(),
        u.arbitrary::<u64>(),
    ) else {
        return;
    };
    let flags = *u.choose(&["-", "c", "+"]).unwrap_or(&"-");
    let caller = u.arbitrary::<bool>().unwrap_or(false);
    let message = bytes(&mut u, 512);
    let mut dict = Vec::new();
    for _ in 0..u.int_in_range(0..=3u8).unwrap_or(0) {
        let mut key = bytes(&mut u, 16);
        key.retain(|&b| b != b'=');
        let value = bytes(&mut u, 32);
        dict.push((key, value));
    }
    let mut raw = format!("{pri},{seq},{usec},{flags}").into_bytes();
    if caller {
        raw.extend_from_slice(b",caller=T1");
    }
    raw.push(b';');
    raw.extend(escape(&message));
    raw.push(b'\n');
    for (k, v) in &dict {
        raw.push(b' ');
        let mut kv = k.clone();
        kv.push(b'=');
        kv.extend_from_slice(v);
        raw.extend(escape(&kv));
        raw.push(b'\n');
    }
    let got = parse_record(&raw).unwrap_or_else(|e| panic!("{e}: {:?}", lossy(&raw)));
    let want = KmsgRecord {
        facility: pri >> 3,
        level: (pri & 7) as u8,
        seq,
        usec,
        flags: flags.to_string(),
        message: lossy(&message),
        metadata: dict.iter().map(|(k, v)| (lossy(k), lossy(v))).collect(),
    };
    assert_eq!(got, want);
});
