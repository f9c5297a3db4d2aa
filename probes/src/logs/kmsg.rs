//! The kernel log source: `/dev/kmsg` records (parsing, overrun accounting, the device
//! reader) and [`KernelSource`], which reads the device when it can open it and otherwise
//! the ring through `syslog(2)` ([`super::ring`]).
//!
//! One `read()` returns one record: `PRI,SEQ,USEC,FLAGS[,...];message\n` followed by zero
//! or more dictionary lines ` KEY=VALUE\n`. The message keeps the kernel's `\xNN` escapes
//! (newline, tab, backslash, non-ASCII bytes); we decode them. Dictionary lines are
//! metadata, never part of the message (NPD keeps them in the text, which defeats any
//! pattern ending at the text). `PRI = facility << 3 | level`; lines written from user space
//! come back with facility `user` (1), so no facility is dropped.

use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::driver::{LogSource, Position, Record, SourceError, Start};
use super::{ring, Backend, MonitorStats};

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

/// The clocks kernel record times are read against: the realtime clock and the time since
/// boot on `CLOCK_MONOTONIC` (the clock of printk timestamps). A record's time is anchored
/// at each read (`realtime now - (since boot now - record)`), so after a step of the realtime
/// clock (NTP, an operator) the next records follow it instead of drifting by the step.
#[derive(Debug, Clone)]
pub enum KernelClock {
    /// The system's clocks.
    System,
    /// Set by hand (tests): (realtime, since boot).
    Manual(Arc<Mutex<(SystemTime, Duration)>>),
}

impl KernelClock {
    /// Time since boot now.
    pub fn since_boot(&self) -> Duration {
        self.now().1
    }

    /// (realtime, since boot) now.
    pub fn now(&self) -> (SystemTime, Duration) {
        match self {
            KernelClock::System => {
                let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
                    .map(|t| Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32))
                    .unwrap_or_default();
                (SystemTime::now(), mono)
            }
            KernelClock::Manual(m) => *m.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// The realtime of a record `usec` after boot, read when the clocks said `now`.
pub fn record_time(now: (SystemTime, Duration), usec: u64) -> SystemTime {
    let (real, since_boot) = now;
    let at = Duration::from_micros(usec);
    match since_boot.checked_sub(at) {
        Some(ago) => real.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
        None => real + (at - since_boot),
    }
}

/// `/dev/kmsg`, opened non-blocking and waited on with `poll(2)` on the monitor's thread.
pub struct KmsgDevice {
    file: std::fs::File,
    decoder: KmsgDecoder,
    buf: Vec<u8>,
    /// Records up to this sequence number were read before (a restart's cursor).
    after: Option<u64>,
    clock: KernelClock,
}

impl KmsgDevice {
    fn open(
        path: &std::path::Path,
        stats: Arc<MonitorStats>,
        clock: KernelClock,
    ) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        Ok(KmsgDevice {
            file,
            decoder: KmsgDecoder::new(stats),
            buf: vec![0u8; READ_BUF],
            after: None,
            clock,
        })
    }

    /// Position at `start`: the whole ring is readable from its oldest record.
    fn position(&mut self, start: &Start) {
        match start {
            Start::After(Position::Kmsg(seq)) => {
                self.decoder.resume_after(*seq);
                self.after = Some(*seq);
            }
            Start::Since(_) => {}
            Start::End | Start::After(_) => {
                // skip what is there now, but learn its last sequence number so the saved
                // position is meaningful at once
                let mut last = None;
                loop {
                    match self.file.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Ok(r) = parse_record(&self.buf[..n]) {
                                last = Some(r.seq);
                            }
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    }
                }
                if let Some(seq) = last {
                    self.decoder.resume_after(seq);
                    self.after = Some(seq);
                }
            }
        }
    }

    fn read(&mut self, wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError> {
        use std::os::fd::AsFd;
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            self.file.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(SourceError(format!("polling the kernel log failed: {e}"))),
        }
        let now = self.clock.now();
        // drain what is there, a bounded batch at a time
        for _ in 0..4096 {
            match self.decoder.read_from(&mut self.file, &mut self.buf) {
                Ok(None) => break,
                Ok(Some(ReadEvent::Record(rec))) => {
                    if self.after.is_some_and(|a| rec.seq <= a) {
                        continue;
                    }
                    out.push(Record {
                        at: record_time(now, rec.usec),
                        position: Some(Position::Kmsg(rec.seq)),
                        message: rec.message,
                    });
                }
                Ok(Some(_)) => {}
                Err(e) => return Err(SourceError(format!("reading the kernel log failed: {e}"))),
            }
        }
        Ok(())
    }
}

/// What the kernel source reads.
enum KernelLog {
    Device(KmsgDevice),
    Ring(ring::RingReader),
}

/// The kernel log: `/dev/kmsg` when it can be opened, otherwise (a container's device
/// cgroup: `EPERM`) the ring through `syslog(2)`. Chosen at each open.
pub struct KernelSource {
    pub kmsg_path: PathBuf,
    /// Poll interval of the ring.
    pub poll: Duration,
    pub stats: Arc<MonitorStats>,
    pub clock: KernelClock,
    log: Option<KernelLog>,
    warned: bool,
}

/// What a node operator must grant when the kernel log cannot be read.
pub const KERNEL_LOG_GRANT: &str = "grant the agent CAP_SYSLOG (Kubernetes: securityContext.capabilities.add: [\"SYSLOG\"]; \
     kernel.dmesg_restrict=1 requires it for syslog(2)), or access to the /dev/kmsg device (privileged)";

impl KernelSource {
    pub fn new(kmsg_path: PathBuf, poll: Duration, stats: Arc<MonitorStats>) -> Self {
        KernelSource {
            kmsg_path,
            poll,
            stats,
            clock: KernelClock::System,
            log: None,
            warned: false,
        }
    }
}

impl LogSource for KernelSource {
    fn backend(&self) -> Backend {
        match self.log {
            Some(KernelLog::Device(_)) => Backend::Kmsg,
            Some(KernelLog::Ring(_)) => Backend::Syslog,
            None => Backend::None,
        }
    }

    fn describe(&self) -> String {
        match self.log {
            Some(KernelLog::Ring(_)) => "syslog(2)".to_string(),
            _ => self.kmsg_path.display().to_string(),
        }
    }

    fn open(&mut self, start: &Start) -> Result<(), SourceError> {
        self.log = None;
        let kmsg_err =
            match KmsgDevice::open(&self.kmsg_path, Arc::clone(&self.stats), self.clock.clone()) {
                Ok(mut d) => {
                    d.position(start);
                    self.log = Some(KernelLog::Device(d));
                    return Ok(());
                }
                Err(e) => e,
            };
        match ring::RingReader::open(self.poll, Arc::clone(&self.stats), self.clock.clone()) {
            Ok(mut r) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(path = %self.kmsg_path.display(), error = %kmsg_err,
                        "cannot open the kernel log device; reading the kernel ring through syslog(2) instead");
                }
                r.position(start);
                self.log = Some(KernelLog::Ring(r));
                Ok(())
            }
            Err(ring_err) => Err(SourceError(format!(
                "cannot read the kernel log: opening {} failed: {kmsg_err}; syslog(2) READ_ALL failed: {ring_err}",
                self.kmsg_path.display()
            ))),
        }
    }

    fn read(&mut self, wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError> {
        match &mut self.log {
            Some(KernelLog::Device(d)) => d.read(wait, out),
            Some(KernelLog::Ring(r)) => r.read(wait, out),
            None => Err(SourceError("the kernel log is not open".into())),
        }
    }
}

/// Parse a line of a kernel log file for offline replay (`rules test --format kmsg`):
/// a raw record (`PRI,SEQ,USEC,FLAGS;msg`), `dmesg -r` (`<PRI>[ secs] msg`) or
/// `dmesg` (`[ secs] msg`) form. Returns the message and, when given, seconds since boot.
pub fn parse_kernel_log_line(line: &str) -> (String, Option<f64>) {
    if let Ok(r) = parse_record(line.as_bytes()) {
        return (r.message, Some(r.usec as f64 / 1e6));
    }
    if let Ok(r) = ring::parse_line(line.as_bytes()) {
        return (r.message, Some(r.usec as f64 / 1e6));
    }
    let mut rest = line;
    if let Some(r) = rest.strip_prefix('<') {
        if let Some(end) = r.find('>') {
            if r[..end].bytes().all(|b| b.is_ascii_digit()) && end > 0 {
                rest = &r[end + 1..];
            }
        }
    }
    if let Some(r) = rest.strip_prefix('[') {
        if let Some(end) = r.find(']') {
            // `[ 12.345678]`: digits and a dot only (not `-5`, `inf`, `1e9`), finite
            let ts = r[..end].trim();
            let secs = ts
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
                .then(|| ts.parse::<f64>().ok())
                .flatten()
                .filter(|s| s.is_finite());
            if let Some(secs) = secs {
                let msg = r[end + 1..].strip_prefix(' ').unwrap_or(&r[end + 1..]);
                return (msg.to_string(), Some(secs));
            }
        }
    }
    (rest.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn record_times_follow_a_step_of_the_realtime_clock() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let clock = Arc::new(Mutex::new((t(1_000_000), Duration::from_secs(100))));
        let k = KernelClock::Manual(Arc::clone(&clock));
        // a record 10 s before now
        assert_eq!(record_time(k.now(), 90_000_000), t(999_990));
        // the realtime clock steps back an hour (NTP): 5 s later, a record 1 s old
        *clock.lock().unwrap() = (t(1_000_005 - 3600), Duration::from_secs(105));
        assert_eq!(record_time(k.now(), 104_000_000), t(1_000_004 - 3600));
        // a record stamped after "now" (clock granularity) is not before it
        assert_eq!(
            record_time(k.now(), 105_500_000),
            t(1_000_005 - 3600) + Duration::from_millis(500)
        );
    }

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
        let alphabet = b"0123456789,;-\\x\n =abcfAF\xff\xc3";
        for v in crate::testing::arbitrary(0x2545_f491_4f6c_dd1d, alphabet, 64, 20000) {
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
