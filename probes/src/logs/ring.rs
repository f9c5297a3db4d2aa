//! The kernel log read through `syslog(2)` (`SYSLOG_ACTION_READ_ALL`): the kmsg source's
//! fallback where `/dev/kmsg` cannot be opened (a container's device cgroup allows no such
//! device) but `CAP_SYSLOG` is granted.
//!
//! `READ_ALL` returns the newest records of the ring that fit the buffer as text lines
//! `<PRI>[ seconds.micros] message` (with `CONFIG_PRINTK_CALLER` a `[  T123]` follows the
//! time); each line of a multi-line record carries the same prefix. The ring is polled (every
//! [`DEFAULT_POLL`] by default). Without sequence numbers, what was already seen is known by
//! the cursor `(timestamp, lines already seen at that timestamp)`; an oldest line newer than
//! the cursor means records were overwritten between two polls (counted as lost: at least
//! one, the exact number is unknown).
//!
//! Differences from `/dev/kmsg`: no sequence numbers (the cursor above instead), no
//! dictionary lines, messages are not escaped (the kernel splits them into lines instead:
//! every line is matched as its own record), and a line is seen up to one poll interval
//! after it was written.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::driver::{Position, Record, SourceError, Start};
use super::kmsg::{record_time, KernelClock};
use super::MonitorStats;

/// Default interval between two reads of the ring (`--kernel-log-poll-interval`).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Largest buffer one read uses, whatever the ring's size: the newest records that fit.
pub const MAX_READ: usize = 4 << 20;

/// Why a ring line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingParseError {
    #[error("kernel ring line does not start with <PRI>")]
    NoPriority,
    #[error("kernel ring line has no [seconds.micros] timestamp (printk.time off?)")]
    NoTimestamp,
}

/// One line of the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingLine {
    pub facility: u32,
    /// Syslog level, `PRI & 7`.
    pub level: u8,
    /// Microseconds since boot (the same clock as `/dev/kmsg`'s).
    pub usec: u64,
    /// The text after the prefix (raw bytes read as UTF-8, invalid sequences replaced).
    pub message: String,
}

/// Parse one line `<PRI>[ seconds.micros] message` (no trailing newline).
pub fn parse_line(line: &[u8]) -> Result<RingLine, RingParseError> {
    let rest = line.strip_prefix(b"<").ok_or(RingParseError::NoPriority)?;
    let end = rest
        .iter()
        .position(|&b| b == b'>')
        .ok_or(RingParseError::NoPriority)?;
    let pri: u32 = std::str::from_utf8(&rest[..end])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(RingParseError::NoPriority)?;
    let rest = rest[end + 1..]
        .strip_prefix(b"[")
        .ok_or(RingParseError::NoTimestamp)?;
    let close = rest
        .iter()
        .position(|&b| b == b']')
        .ok_or(RingParseError::NoTimestamp)?;
    let usec = parse_time(&rest[..close]).ok_or(RingParseError::NoTimestamp)?;
    let mut rest = &rest[close + 1..];
    // CONFIG_PRINTK_CALLER: `[  T123]` or `[   C1]` right after the time
    if let Some(r) = rest.strip_prefix(b"[") {
        if let Some(c) = r.iter().position(|&b| b == b']') {
            let id = r[..c].trim_ascii_start();
            if id.len() > 1
                && (id[0] == b'T' || id[0] == b'C')
                && id[1..].iter().all(u8::is_ascii_digit)
            {
                rest = &r[c + 1..];
            }
        }
    }
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    Ok(RingLine {
        facility: pri >> 3,
        level: (pri & 7) as u8,
        usec,
        message: String::from_utf8_lossy(rest).into_owned(),
    })
}

/// `    12.345678` → 12345678 µs.
fn parse_time(t: &[u8]) -> Option<u64> {
    let t = std::str::from_utf8(t).ok()?.trim_start();
    let (s, us) = t.split_once('.')?;
    if us.len() != 6
        || s.is_empty()
        || !s.bytes().all(|b| b.is_ascii_digit())
        || !us.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000)?
        .checked_add(us.parse().ok()?)
}

/// Where the reader is in the ring: the newest timestamp seen and how many lines with
/// exactly that timestamp were seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingCursor {
    pub usec: u64,
    pub seen: u32,
}

/// What one read of the ring holds that the cursor had not seen.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// New lines, oldest first.
    pub lines: Vec<RingLine>,
    /// The oldest line read is newer than the cursor: records were lost in between.
    pub lost: bool,
    /// Unparsable lines among the new ones.
    pub parse_errors: u64,
    /// The cursor after these lines (`None`: nothing parsable in the ring).
    pub cursor: Option<RingCursor>,
}

/// Split one `READ_ALL` result into the lines after `after` (all of them without a cursor).
/// Scans from the newest line back to the cursor, so a poll that finds nothing new costs one
/// line's parse, not the ring's.
pub fn select(text: &[u8], after: Option<RingCursor>) -> Batch {
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Batch::default();
    let mut newest: Option<RingCursor> = None;
    let mut oldest: Option<u64> = None;
    let mut at_cursor = Vec::new(); // lines with the cursor's timestamp, newest first
    let mut unparsable = 0u64; // since the last parsable line
    let mut reached_old = false;
    for raw in lines.iter().rev() {
        let Ok(line) = parse_line(raw) else {
            unparsable += 1;
            continue;
        };
        // Garbage is counted once a newer new line shows it lies after the cursor (and is
        // not a half-written newest line, which the next read shows complete).
        if !out.lines.is_empty() {
            out.parse_errors += unparsable;
        }
        unparsable = 0;
        oldest = Some(line.usec);
        match &mut newest {
            None => {
                newest = Some(RingCursor {
                    usec: line.usec,
                    seen: 1,
                })
            }
            Some(n) if n.usec == line.usec => n.seen += 1,
            Some(_) => {}
        }
        match after {
            Some(c) if line.usec < c.usec => {
                reached_old = true;
                break;
            }
            Some(c) if line.usec == c.usec => at_cursor.push(line),
            _ => out.lines.push(line),
        }
    }
    if let Some(c) = after {
        // The first `seen` lines with the cursor's timestamp were delivered before.
        at_cursor.reverse();
        let skip = (c.seen as usize).min(at_cursor.len());
        let fresh = at_cursor.split_off(skip);
        out.lines.extend(fresh.into_iter().rev());
        // The oldest line read is newer than the cursor: what was between is gone.
        out.lost = !reached_old && oldest.is_some_and(|o| o > c.usec);
    }
    out.lines.reverse();
    out.cursor = match (newest, after) {
        (Some(n), Some(c)) if n.usec == c.usec => Some(RingCursor {
            usec: c.usec,
            seen: n.seen.max(c.seen),
        }),
        (Some(n), Some(c)) if n.usec < c.usec => Some(c), // never move back
        (Some(n), _) => Some(n),
        (None, c) => c,
    };
    out
}

/// The ring read through `syslog(2)` every `poll`, on the monitor's thread.
pub struct RingReader {
    poll: Duration,
    buf: Vec<u8>,
    cursor: Option<RingCursor>,
    last_read: Option<Instant>,
    stats: Arc<MonitorStats>,
    clock: KernelClock,
    lost_logged: bool,
}

impl RingReader {
    /// Check that the ring can be read (`CAP_SYSLOG`), and size the buffer to it.
    pub fn open(poll: Duration, stats: Arc<MonitorStats>, clock: KernelClock) -> io::Result<Self> {
        let size = crate::sys::klog_size()?;
        let mut buf = vec![0u8; size.clamp(4096, MAX_READ)];
        crate::sys::klog_read_all(&mut buf[..64])?;
        Ok(RingReader {
            poll,
            buf,
            cursor: None,
            last_read: None,
            stats,
            clock,
            lost_logged: false,
        })
    }

    /// Position at `start`.
    pub fn position(&mut self, start: &Start) {
        self.cursor = match start {
            Start::After(Position::Ring(c)) => Some(*c),
            Start::Since(_) => None,
            Start::End | Start::After(_) => match crate::sys::klog_read_all(&mut self.buf) {
                Ok(n) => select(&self.buf[..n], None).cursor,
                Err(_) => None,
            },
        };
    }

    /// Read the ring once the poll interval has passed (waiting at most `wait` for it).
    pub fn read(&mut self, wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError> {
        if let Some(last) = self.last_read {
            let due = self.poll.saturating_sub(last.elapsed());
            if due > wait {
                std::thread::sleep(wait);
                return Ok(());
            }
            std::thread::sleep(due);
        }
        self.last_read = Some(Instant::now());
        let n = crate::sys::klog_read_all(&mut self.buf).map_err(|e| {
            SourceError(format!(
                "reading the kernel ring through syslog(2) failed: {e}"
            ))
        })?;
        let now = self.clock.now();
        let batch = select(&self.buf[..n], self.cursor);
        self.stats
            .parse_errors
            .fetch_add(batch.parse_errors, Ordering::Relaxed);
        if batch.lost {
            self.stats.overruns.fetch_add(1, Ordering::Relaxed);
            self.stats.records_lost.fetch_add(1, Ordering::Relaxed);
            if !self.lost_logged {
                self.lost_logged = true;
                tracing::warn!(source = %self.stats.source,
                    "kernel ring overwritten between two reads: records were lost (counted; logged once)");
            }
        }
        for line in batch.lines {
            // the cursor moves line by line, so a saved position never skips one
            let c = match self.cursor {
                Some(c) if c.usec == line.usec => RingCursor {
                    usec: c.usec,
                    seen: c.seen + 1,
                },
                _ => RingCursor {
                    usec: line.usec,
                    seen: 1,
                },
            };
            self.cursor = Some(c);
            out.push(Record {
                at: record_time(now, line.usec),
                position: Some(Position::Ring(c)),
                message: line.message,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(usec: u64, msg: &str) -> String {
        format!(
            "<12>[{:>5}.{:06}] {msg}\n",
            usec / 1_000_000,
            usec % 1_000_000
        )
    }

    fn msgs(b: &Batch) -> Vec<&str> {
        b.lines.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn parses_ring_lines() {
        let r = parse_line(b"<12>[  653.289211] nodeprobe-lead-test: hello").unwrap();
        assert_eq!((r.facility, r.level, r.usec), (1, 4, 653_289_211));
        assert_eq!(r.message, "nodeprobe-lead-test: hello");
        let r = parse_line(b"<6>[    0.000000] Linux version 6.1").unwrap();
        assert_eq!((r.facility, r.level, r.usec), (0, 6, 0));
        // caller id, a call-trace line keeps its leading space, UTF-8 and tabs are raw
        let r = parse_line(b"<4>[ 1.000001][  T123]  <TASK>").unwrap();
        assert_eq!((r.usec, r.message.as_str()), (1_000_001, " <TASK>"));
        let r = parse_line("<14>[99999.999999] café\there".as_bytes()).unwrap();
        assert_eq!(r.message, "café\there");
        // a bracket that is not a caller id is part of the message
        let r = parse_line(b"<6>[ 2.000000] [drm] init").unwrap();
        assert_eq!(r.message, "[drm] init");
        let r = parse_line(b"<6>[ 2.000000][drm] x").unwrap();
        assert_eq!(r.message, "[drm] x");
        let r = parse_line(b"<6>[ 2.000000]").unwrap();
        assert_eq!(r.message, "");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_line(b"plain"), Err(RingParseError::NoPriority));
        assert_eq!(
            parse_line(b"<x>[ 1.000000] m"),
            Err(RingParseError::NoPriority)
        );
        assert_eq!(
            parse_line(b"<>[ 1.000000] m"),
            Err(RingParseError::NoPriority)
        );
        assert_eq!(parse_line(b"<6>no time"), Err(RingParseError::NoTimestamp));
        assert_eq!(parse_line(b"<6>[ 1.5] m"), Err(RingParseError::NoTimestamp));
        assert_eq!(
            parse_line(b"<6>[ 1.000000 m"),
            Err(RingParseError::NoTimestamp)
        );
        assert_eq!(
            parse_line(b"<6>[99999999999999999999.000000] m"),
            Err(RingParseError::NoTimestamp)
        );
        assert_eq!(
            parse_line(b"<99999999999>[ 1.000000] m"),
            Err(RingParseError::NoPriority)
        );
    }

    /// Arbitrary bytes never panic the parser or the selection (deterministic property test).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = b"<>[]. 0123456789TC\nab\xff\xc3";
        for v in crate::testing::arbitrary(0x9e37_79b9_7f4a_7c15, alphabet, 80, 20000) {
            let _ = parse_line(&v);
            let _ = select(&v, Some(RingCursor { usec: 5, seen: 1 }));
            let _ = select(&v, None);
        }
    }

    #[test]
    fn only_lines_after_the_cursor_are_new() {
        let ring = [l(1, "a"), l(2, "b"), l(2, "c"), l(3, "d")].concat();
        let all = select(ring.as_bytes(), None);
        assert_eq!(msgs(&all), ["a", "b", "c", "d"]);
        assert_eq!(all.cursor, Some(RingCursor { usec: 3, seen: 1 }));
        assert!(!all.lost);
        // one of the two lines at 2 µs seen: the other is new
        let b = select(ring.as_bytes(), Some(RingCursor { usec: 2, seen: 1 }));
        assert_eq!(msgs(&b), ["c", "d"]);
        let b = select(ring.as_bytes(), Some(RingCursor { usec: 3, seen: 1 }));
        assert!(b.lines.is_empty());
        assert_eq!(b.cursor, Some(RingCursor { usec: 3, seen: 1 }));
        // a multi-line record: every line carries the same prefix, read on as they come
        let more = [ring.clone(), l(3, "e"), l(3, "f")].concat();
        let b = select(more.as_bytes(), b.cursor);
        assert_eq!(msgs(&b), ["e", "f"]);
        assert_eq!(b.cursor, Some(RingCursor { usec: 3, seen: 3 }));
    }

    #[test]
    fn an_oldest_line_newer_than_the_cursor_means_lost_records() {
        let ring = [l(10, "x"), l(11, "y")].concat();
        let b = select(ring.as_bytes(), Some(RingCursor { usec: 5, seen: 1 }));
        assert!(b.lost);
        assert_eq!(msgs(&b), ["x", "y"]);
        // the cursor's own line still in the ring: nothing lost
        let ring = [l(5, "w"), l(10, "x")].concat();
        let b = select(ring.as_bytes(), Some(RingCursor { usec: 5, seen: 1 }));
        assert!(!b.lost);
        assert_eq!(msgs(&b), ["x"]);
    }

    #[test]
    fn garbage_lines_are_counted_once_and_the_cursor_never_moves_back() {
        let ring = [l(1, "a"), "junk\n".into(), l(2, "b"), "half".into()].concat();
        let b = select(ring.as_bytes(), Some(RingCursor { usec: 1, seen: 1 }));
        assert_eq!(msgs(&b), ["b"]);
        assert_eq!(
            b.parse_errors, 1,
            "the unterminated newest line is not counted"
        );
        // a ring that looks older than the cursor (never for one boot) keeps the cursor
        let b = select(l(1, "a").as_bytes(), Some(RingCursor { usec: 9, seen: 2 }));
        assert!(b.lines.is_empty());
        assert_eq!(b.cursor, Some(RingCursor { usec: 9, seen: 2 }));
        assert_eq!(select(b"", None), Batch::default());
    }
}
