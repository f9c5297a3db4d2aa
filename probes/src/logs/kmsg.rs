//! `/dev/kmsg` records: parsing and overrun (`EPIPE`) accounting.
//!
//! One `read()` returns one record: `PRI,SEQ,USEC,FLAGS[,...];message\n` followed by zero
//! or more dictionary lines ` KEY=VALUE\n`. The message keeps the kernel's `\xNN` escapes
//! (newline, tab, backslash, non-ASCII bytes); we decode them. Dictionary lines are
//! metadata, never part of the message (NPD keeps them in the text, which defeats any
//! pattern ending at the text). `PRI = facility << 3 | level`; lines written from user space
//! come back with facility `user` (1), so no facility is dropped.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::MonitorStats;

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsgParseError {
    #[error("kmsg record has no ';' separating the prefix from the message")]
    NoSeparator,
    #[error("kmsg record prefix {0:?} is not PRI,SEQ,USEC,FLAGS")]
    BadPrefix(String),
}

/// One parsed kmsg record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub facility: u32,
    /// Syslog level, `PRI & 7`.
    pub level: u8,
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    /// `-` normal, `c` continuation start, `+` fragment.
    pub flags: String,
    /// The message with `\xNN` escapes decoded (not trimmed).
    pub message: String,
    /// Dictionary lines (`SUBSYSTEM=acpi`, `DEVICE=+acpi:...`).
    pub metadata: Vec<(String, String)>,
}

/// Decode the kernel's `\xNN` escapes (invalid escapes are kept verbatim; the bytes are
/// then read as UTF-8, invalid sequences replaced).
pub fn unescape(s: &[u8]) -> String {
    if !s.contains(&b'\\') {
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1] == b'x' {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(s[i + 2]), hex(s[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse one record as returned by one `read()` of `/dev/kmsg`.
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord, KmsgParseError> {
    let semi = raw
        .iter()
        .position(|&b| b == b';')
        .ok_or(KmsgParseError::NoSeparator)?;
    let prefix = &raw[..semi];
    let bad = || KmsgParseError::BadPrefix(String::from_utf8_lossy(prefix).into_owned());
    let mut fields = prefix.split(|&b| b == b',');
    let num = |f: Option<&[u8]>| -> Result<u64, KmsgParseError> {
        std::str::from_utf8(f.ok_or_else(bad)?)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    let pri = num(fields.next())?;
    let seq = num(fields.next())?;
    let usec = num(fields.next())?;
    let flags = fields
        .next()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_default();
    let pri = u32::try_from(pri).map_err(|_| bad())?;
    let body = &raw[semi + 1..];
    let mut lines = body.split(|&b| b == b'\n');
    let message = unescape(lines.next().unwrap_or_default());
    let mut metadata = Vec::new();
    for line in lines {
        let Some(kv) = line.strip_prefix(b" ") else {
            continue;
        };
        let kv = unescape(kv);
        if let Some((k, v)) = kv.split_once('=') {
            metadata.push((k.to_string(), v.to_string()));
        }
    }
    Ok(KmsgRecord {
        facility: pri >> 3,
        level: (pri & 7) as u8,
        seq,
        usec,
        flags,
        message,
        metadata,
    })
}

/// Turns raw `read()` results into records, counting records lost to ring overruns.
#[derive(Debug)]
pub struct KmsgDecoder {
    stats: Arc<MonitorStats>,
    last_seq: Option<u64>,
    overrun_logged: bool,
}

/// What one `read()` gave.
#[derive(Debug)]
pub enum ReadEvent {
    Record(KmsgRecord),
    /// The reader fell behind and the kernel overwrote records (`EPIPE`); the next read
    /// returns the oldest surviving record.
    Overrun,
    /// A record that could not be parsed (counted, skipped).
    Skipped,
}

impl KmsgDecoder {
    pub fn new(stats: Arc<MonitorStats>) -> Self {
        KmsgDecoder {
            stats,
            last_seq: None,
            overrun_logged: false,
        }
    }

    /// Sequence number of the last record returned.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Pretend the last record seen was `seq` (resuming from a cursor), so a gap to the
    /// first record read counts as lost.
    pub fn resume_after(&mut self, seq: u64) {
        self.last_seq = Some(seq);
    }

    /// Note an `EPIPE`: log once per process lifetime of this decoder, count it.
    pub fn on_overrun(&mut self) -> ReadEvent {
        self.stats.overruns.fetch_add(1, Ordering::Relaxed);
        if !self.overrun_logged {
            self.overrun_logged = true;
            tracing::warn!(
                source = %self.stats.source,
                "kernel log ring overrun (EPIPE): records were overwritten before they were read; \
                 counting them as lost and reading on (logged once)"
            );
        }
        ReadEvent::Overrun
    }

    /// Decode one record's bytes.
    pub fn on_bytes(&mut self, raw: &[u8]) -> ReadEvent {
        match parse_record(raw) {
            Ok(rec) => {
                if let Some(last) = self.last_seq {
                    if rec.seq > last.saturating_add(1) {
                        self.stats
                            .records_lost
                            .fetch_add(rec.seq - last - 1, Ordering::Relaxed);
                    }
                }
                self.last_seq = Some(rec.seq);
                self.stats.records_read.fetch_add(1, Ordering::Relaxed);
                ReadEvent::Record(rec)
            }
            Err(e) => {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "skipping unparsable kmsg record");
                ReadEvent::Skipped
            }
        }
    }

    /// One `read()` from a kmsg-like reader. `Ok(None)` means no record available now
    /// (`EAGAIN`) or end of input.
    pub fn read_from<R: Read>(
        &mut self,
        reader: &mut R,
        buf: &mut [u8],
    ) -> io::Result<Option<ReadEvent>> {
        loop {
            match reader.read(buf) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(self.on_bytes(&buf[..n]))),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    return Ok(Some(self.on_overrun()))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Size of one read: the kernel's record limit is 8 KiB including dictionary lines.
pub const READ_BUF: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn parses_records_from_the_real_ring() {
        let r =
            parse_record(b"12,431,910784586,-;nodeprobe-it-28971: plain warning line\n").unwrap();
        assert_eq!((r.facility, r.level, r.seq, r.usec), (1, 4, 431, 910784586));
        assert_eq!(r.flags, "-");
        assert_eq!(r.message, "nodeprobe-it-28971: plain warning line");
        assert!(r.metadata.is_empty());

        let r = parse_record(
            b"11,432,910784596,-;nodeprobe-it-28971: line with\\x5cx0a escaped newline and tab\\x09here\n",
        )
        .unwrap();
        assert_eq!(r.level, 3);
        assert_eq!(
            r.message,
            "nodeprobe-it-28971: line with\\x0a escaped newline and tab\there"
        );

        let r =
            parse_record(b"14,433,910785484,-;nodeprobe-it-28971: multi\\x0aline write\n").unwrap();
        assert_eq!(r.message, "nodeprobe-it-28971: multi\nline write");

        let r = parse_record(
            b"6,193,272342,-;acpi PNP0A08:00: _OSC: OS supports [...]\n SUBSYSTEM=acpi\n DEVICE=+acpi:PNP0A08:00\n",
        )
        .unwrap();
        assert_eq!((r.facility, r.level), (0, 6));
        assert_eq!(r.message, "acpi PNP0A08:00: _OSC: OS supports [...]");
        assert_eq!(
            r.metadata,
            vec![
                ("SUBSYSTEM".to_string(), "acpi".to_string()),
                ("DEVICE".to_string(), "+acpi:PNP0A08:00".to_string())
            ]
        );
        // call-trace records keep their leading space (trimming is the monitor's job)
        let r = parse_record(b"4,441,925896295,-; <TASK>\n").unwrap();
        assert_eq!(r.message, " <TASK>");
        // newer kernels add fields after FLAGS (caller id)
        let r = parse_record(b"6,1,2,-,caller=T1;x\n").unwrap();
        assert_eq!((r.seq, r.message.as_str()), (1, "x"));
        // UTF-8 escaped byte by byte
        let r = parse_record(b"6,1,2,-;caf\\xc3\\xa9\n").unwrap();
        assert_eq!(r.message, "café");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            parse_record(b"no separator"),
            Err(KmsgParseError::NoSeparator)
        );
        assert!(matches!(
            parse_record(b"x,1,2,-;m"),
            Err(KmsgParseError::BadPrefix(_))
        ));
        assert!(matches!(
            parse_record(b"6,1;m"),
            Err(KmsgParseError::BadPrefix(_))
        ));
        assert!(matches!(
            parse_record(b"99999999999,1,2,-;m"),
            Err(KmsgParseError::BadPrefix(_))
        ));
        assert_eq!(unescape(b"\\x4"), "\\x4");
        assert_eq!(unescape(b"a\\xzz"), "a\\xzz");
        assert_eq!(unescape(b"\\x41\\"), "A\\");
    }

    /// Arbitrary bytes never panic the parser (deterministic property test).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"0123456789,;-\\x\n =abcfAF\xff\xc3";
        for _ in 0..20000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = (rng % 64) as usize;
            let mut v = Vec::with_capacity(len);
            let mut r = rng;
            for _ in 0..len {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(alphabet[(r >> 33) as usize % alphabet.len()]);
            }
            let _ = parse_record(&v);
            let _ = unescape(&v);
        }
    }

    /// A fake `/dev/kmsg`: scripted reads, including `EPIPE`.
    struct FakeKmsg(VecDeque<io::Result<Vec<u8>>>);
    impl Read for FakeKmsg {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Err(io::ErrorKind::WouldBlock.into()),
                Some(Err(e)) => Err(e),
                Some(Ok(b)) => {
                    buf[..b.len()].copy_from_slice(&b);
                    Ok(b.len())
                }
            }
        }
    }

    #[test]
    fn epipe_counts_lost_records_and_reading_goes_on() {
        let stats = Arc::new(MonitorStats::new("kernel-monitor"));
        let mut d = KmsgDecoder::new(stats.clone());
        let mut fake = FakeKmsg(
            vec![
                Ok(b"6,10,1,-;a\n".to_vec()),
                Err(io::Error::from_raw_os_error(libc::EPIPE)),
                Err(io::Error::from_raw_os_error(libc::EPIPE)),
                Ok(b"6,688,2,-;oldest surviving\n".to_vec()),
                Ok(b"garbage".to_vec()),
                Ok(b"4,689,3,-;task x:1 blocked for more than 120 seconds.\n".to_vec()),
            ]
            .into(),
        );
        let mut buf = vec![0u8; READ_BUF];
        let mut msgs = Vec::new();
        while let Some(ev) = d.read_from(&mut fake, &mut buf).unwrap() {
            if let ReadEvent::Record(r) = ev {
                msgs.push(r.message);
            }
        }
        assert_eq!(
            msgs,
            vec![
                "a",
                "oldest surviving",
                "task x:1 blocked for more than 120 seconds."
            ]
        );
        assert_eq!(stats.records_lost.load(Ordering::Relaxed), 677);
        assert_eq!(stats.overruns.load(Ordering::Relaxed), 2);
        assert_eq!(stats.records_read.load(Ordering::Relaxed), 3);
        assert_eq!(stats.parse_errors.load(Ordering::Relaxed), 1);
        assert_eq!(d.last_seq(), Some(689));
    }

    #[test]
    fn resuming_counts_the_gap_since_the_cursor() {
        let stats = Arc::new(MonitorStats::new("k"));
        let mut d = KmsgDecoder::new(stats.clone());
        d.resume_after(100);
        d.on_bytes(b"6,150,1,-;x\n");
        assert_eq!(stats.records_lost.load(Ordering::Relaxed), 49);
    }
}
