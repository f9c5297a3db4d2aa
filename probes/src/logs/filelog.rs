//! The filelog source (NPD `plugin: filelog`): tail `<host-root>/<logPath>` across
//! rotation and truncation, turn each line into (timestamp, message) with the
//! `pluginConfig` regexes (`timestamp`, `message`; the last submatch of each is used, as NPD
//! does) and the Go `timestampFormat` layout; drop lines containing a `skipList` substring.
//!
//! Deviation (documented): timestamps without a zone are read as UTC (NPD: the process's
//! local zone, which in a container is UTC unless `/etc/localtime` is mounted). A
//! timestamp without a year gets the current year, as in NPD.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use regex::Regex;

use super::driver::{LogSource, Position, Record, SourceError, Start};
use super::{Backend, MonitorStats};

/// How often the file is checked for new data.
pub const POLL: Duration = Duration::from_millis(500);
/// Longest line kept; longer ones are dropped.
pub const MAX_LINE: usize = 1 << 20;

/// Why a filelog `pluginConfig` is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilelogConfigError {
    #[error("pluginConfig.{0} is required for the filelog plugin")]
    Missing(&'static str),
    #[error("pluginConfig.{key}: {cause}")]
    Regex { key: &'static str, cause: String },
    #[error("pluginConfig.timestampFormat: {0}")]
    Layout(String),
}

/// One element of a Go time layout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    Year4,
    Year2,
    MonthNum {
        padded: bool,
    },
    MonthShort,
    MonthLong,
    Day {
        pad: Pad,
    },
    Hour24,
    Hour12 {
        padded: bool,
    },
    Minute {
        padded: bool,
    },
    Second {
        padded: bool,
    },
    /// `.000` / `.999` / `,000`: a separator and fractional digits.
    Frac,
    AmPm,
    WeekdayShort,
    WeekdayLong,
    ZoneName,
    /// `-0700`, `-07:00`, `-07`, `Z0700`, `Z07:00`, `Z07`.
    Offset {
        z: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pad {
    Zero,
    Space,
    None,
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

/// A parsed Go layout (`Jan _2 15:04:05`, `2006-01-02T15:04:05.999999999-07:00`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoLayout(Vec<Tok>);

impl GoLayout {
    pub fn parse(layout: &str) -> Result<Self, String> {
        // longest tokens first
        const TABLE: &[(&str, Tok)] = &[
            ("January", Tok::MonthLong),
            ("Monday", Tok::WeekdayLong),
            ("Z07:00", Tok::Offset { z: true }),
            ("-07:00", Tok::Offset { z: false }),
            ("Z0700", Tok::Offset { z: true }),
            ("-0700", Tok::Offset { z: false }),
            ("2006", Tok::Year4),
            ("Jan", Tok::MonthShort),
            ("Mon", Tok::WeekdayShort),
            ("MST", Tok::ZoneName),
            ("Z07", Tok::Offset { z: true }),
            ("-07", Tok::Offset { z: false }),
            ("_2", Tok::Day { pad: Pad::Space }),
            ("01", Tok::MonthNum { padded: true }),
            ("02", Tok::Day { pad: Pad::Zero }),
            ("03", Tok::Hour12 { padded: true }),
            ("04", Tok::Minute { padded: true }),
            ("05", Tok::Second { padded: true }),
            ("06", Tok::Year2),
            ("15", Tok::Hour24),
            ("PM", Tok::AmPm),
            ("pm", Tok::AmPm),
            ("1", Tok::MonthNum { padded: false }),
            ("2", Tok::Day { pad: Pad::None }),
            ("3", Tok::Hour12 { padded: false }),
            ("4", Tok::Minute { padded: false }),
            ("5", Tok::Second { padded: false }),
        ];
        let mut toks: Vec<Tok> = Vec::new();
        let mut rest = layout;
        let push_lit = |toks: &mut Vec<Tok>, s: &str| {
            if let Some(Tok::Lit(l)) = toks.last_mut() {
                l.push_str(s);
            } else {
                toks.push(Tok::Lit(s.to_string()));
            }
        };
        'outer: while !rest.is_empty() {
            // fractional seconds: [.,] followed by 0s or 9s, after a seconds token
            if (rest.starts_with('.') || rest.starts_with(','))
                && matches!(toks.last(), Some(Tok::Second { .. }))
            {
                let n = rest[1..]
                    .bytes()
                    .take_while(|b| *b == b'0' || *b == b'9')
                    .count();
                if n > 0 && !rest[1 + n..].starts_with(|c: char| c.is_ascii_digit()) {
                    toks.push(Tok::Frac);
                    rest = &rest[1 + n..];
                    continue;
                }
            }
            for (pat, tok) in TABLE {
                if rest.starts_with(pat) {
                    toks.push(tok.clone());
                    rest = &rest[pat.len()..];
                    continue 'outer;
                }
            }
            let ch = rest.chars().next().unwrap_or(' ');
            push_lit(&mut toks, &rest[..ch.len_utf8()]);
            rest = &rest[ch.len_utf8()..];
        }
        if !toks.iter().any(|t| !matches!(t, Tok::Lit(_))) {
            return Err(format!("layout {layout:?} has no date or time element"));
        }
        Ok(GoLayout(toks))
    }

    /// Parse `value`; `None` when it does not fit the layout.
    pub fn parse_time(&self, value: &str, current_year: i64) -> Option<SystemTime> {
        let mut s = value;
        let (mut year, mut month, mut day) = (None::<i64>, 1i64, 1i64);
        let (mut hour, mut min, mut sec, mut nanos) = (0i64, 0i64, 0i64, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset = 0i64;
        fn digits(s: &mut &str, min: usize, max: usize) -> Option<i64> {
            let n = s
                .bytes()
                .take(max)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if n < min {
                return None;
            }
            let v = s[..n].parse().ok()?;
            *s = &s[n..];
            Some(v)
        }
        fn name(s: &mut &str, names: &[&str], short: bool) -> Option<usize> {
            for (i, n) in names.iter().enumerate() {
                let n = if short { &n[..3] } else { n };
                let b = s.as_bytes();
                if b.len() >= n.len() && b[..n.len()].eq_ignore_ascii_case(n.as_bytes()) {
                    *s = &s[n.len()..];
                    return Some(i);
                }
            }
            None
        }
        for t in &self.0 {
            match t {
                Tok::Lit(l) => s = s.strip_prefix(l.as_str())?,
                Tok::Year4 => year = Some(digits(&mut s, 4, 4)?),
                Tok::Year2 => {
                    let y = digits(&mut s, 2, 2)?;
                    year = Some(if y >= 69 { 1900 + y } else { 2000 + y });
                }
                Tok::MonthNum { padded } => month = digits(&mut s, if *padded { 2 } else { 1 }, 2)?,
                Tok::MonthShort => month = name(&mut s, &MONTHS, true)? as i64 + 1,
                Tok::MonthLong => month = name(&mut s, &MONTHS, false)? as i64 + 1,
                Tok::Day { pad } => {
                    if *pad == Pad::Space {
                        s = s.strip_prefix(' ').unwrap_or(s);
                    }
                    day = digits(&mut s, if *pad == Pad::Zero { 2 } else { 1 }, 2)?;
                }
                Tok::Hour24 => hour = digits(&mut s, 2, 2)?,
                Tok::Hour12 { padded } => hour = digits(&mut s, if *padded { 2 } else { 1 }, 2)?,
                Tok::Minute { padded } => min = digits(&mut s, if *padded { 2 } else { 1 }, 2)?,
                Tok::Second { padded } => sec = digits(&mut s, if *padded { 2 } else { 1 }, 2)?,
                Tok::Frac => {
                    // Go accepts a missing fraction for 9s layouts
                    if let Some(r) = s.strip_prefix(['.', ',']) {
                        let n = r.bytes().take_while(|b| b.is_ascii_digit()).count();
                        let frac = &r[..n.min(9)];
                        let mut v: u32 = frac.parse().unwrap_or(0);
                        for _ in frac.len()..9 {
                            v *= 10;
                        }
                        nanos = v;
                        s = &r[n..];
                    }
                }
                Tok::AmPm => {
                    pm = Some(match s.as_bytes().get(..2)? {
                        b"PM" | b"pm" => true,
                        b"AM" | b"am" => false,
                        _ => return None,
                    });
                    s = &s[2..];
                }
                Tok::WeekdayShort => {
                    name(&mut s, &DAYS, true)?;
                }
                Tok::WeekdayLong => {
                    name(&mut s, &DAYS, false)?;
                }
                Tok::ZoneName => {
                    let n = s.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
                    if n == 0 {
                        return None;
                    }
                    s = &s[n..];
                }
                Tok::Offset { z } => {
                    if *z && s.starts_with('Z') {
                        s = &s[1..];
                    } else {
                        let sign = match s.as_bytes().first()? {
                            b'+' => 1,
                            b'-' => -1,
                            _ => return None,
                        };
                        s = &s[1..];
                        let h = digits(&mut s, 2, 2)?;
                        s = s.strip_prefix(':').unwrap_or(s);
                        let m = digits(&mut s, 0, 2).unwrap_or(0);
                        offset = sign * (h * 3600 + m * 60);
                    }
                }
            }
        }
        if let Some(p) = pm {
            if hour > 12 {
                return None;
            }
            hour = match (p, hour) {
                (true, 12) => 12,
                (true, h) => h + 12,
                (false, 12) => 0,
                (false, h) => h,
            };
        }
        if sec > 60 {
            return None;
        }
        // jiff validates the date (no 30 February) and does the calendar arithmetic
        use crate::timefmt::{civil, tz};
        let year = year.filter(|y| *y != 0).unwrap_or(current_year);
        let small = |v: i64| i8::try_from(v).ok();
        let dt = civil::DateTime::new(
            i16::try_from(year).ok()?,
            small(month)?,
            small(day)?,
            small(hour)?,
            small(min)?,
            small(sec.min(59))?,
            i32::try_from(nanos).ok()?,
        )
        .ok()?;
        let offset = tz::Offset::from_seconds(i32::try_from(offset).ok()?).ok()?;
        let t = offset.to_timestamp(dt).ok()?;
        (t.as_second() >= 0).then(|| SystemTime::from(t))
    }
}

/// The current UTC year.
fn current_year(now: SystemTime) -> i64 {
    i64::from(
        crate::timefmt::timestamp(now)
            .to_zoned(crate::timefmt::tz::TimeZone::UTC)
            .year(),
    )
}

/// Turns a raw line into (timestamp, message), as NPD's filelog translator does.
#[derive(Debug, Clone)]
pub struct Translator {
    timestamp: Regex,
    message: Regex,
    layout: GoLayout,
}

impl Translator {
    pub fn from_plugin_config(
        cfg: &std::collections::BTreeMap<String, String>,
    ) -> Result<Self, FilelogConfigError> {
        let get = |k: &'static str| {
            cfg.get(k)
                .filter(|v| !v.is_empty())
                .ok_or(FilelogConfigError::Missing(k))
        };
        let re = |key: &'static str| -> Result<Regex, FilelogConfigError> {
            Regex::new(get(key)?).map_err(|e| FilelogConfigError::Regex {
                key,
                cause: e.to_string(),
            })
        };
        Ok(Translator {
            timestamp: re("timestamp")?,
            message: re("message")?,
            layout: GoLayout::parse(get("timestampFormat")?).map_err(FilelogConfigError::Layout)?,
        })
    }

    fn last_submatch<'a>(re: &Regex, line: &'a str) -> Option<&'a str> {
        let caps = re.captures(line)?;
        Some(caps.iter().last().flatten().map_or("", |m| m.as_str()))
    }

    pub fn translate(&self, line: &str, now: SystemTime) -> Option<(SystemTime, String)> {
        let ts = Self::last_submatch(&self.timestamp, line)?;
        let at = self.layout.parse_time(ts, current_year(now))?;
        let msg = Self::last_submatch(&self.message, line)?;
        Some((at, msg.to_string()))
    }
}

/// A followed log file.
pub struct FileSource {
    path: PathBuf,
    translator: Translator,
    skip_list: Vec<String>,
    stats: Arc<MonitorStats>,
    cur: Option<Open>,
    /// Bytes read but not yet matched: the start of a line without its newline.
    pending: Vec<u8>,
    buf: Vec<u8>,
}

struct Open {
    file: File,
    inode: u64,
    offset: u64,
}

fn open_at(path: &PathBuf, offset: Option<u64>) -> std::io::Result<Open> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let offset = match offset {
        Some(o) if o <= meta.len() => o,
        Some(_) => 0,
        None => meta.len(),
    };
    file.seek(SeekFrom::Start(offset))?;
    Ok(Open {
        file,
        inode: meta.ino(),
        offset,
    })
}

/// How [`FileSource::read_available`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadEnd {
    Eof,
    Limit,
}

impl FileSource {
    pub fn new(
        path: PathBuf,
        translator: Translator,
        skip_list: Vec<String>,
        stats: Arc<MonitorStats>,
    ) -> Self {
        FileSource {
            path,
            translator,
            skip_list,
            stats,
            cur: None,
            pending: Vec::new(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Read the open file to its end, or `limit` bytes, turning each complete line into a
    /// record.
    fn read_available(
        &mut self,
        limit: u64,
        out: &mut Vec<Record>,
    ) -> Result<ReadEnd, SourceError> {
        let mut left = limit;
        while left > 0 {
            let Some(o) = self.cur.as_mut() else {
                return Ok(ReadEnd::Eof);
            };
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match o.file.read(&mut self.buf[..want]) {
                Ok(0) => return Ok(ReadEnd::Eof),
                Ok(n) => {
                    left = left.saturating_sub(n as u64);
                    self.pending.extend_from_slice(&self.buf[..n]);
                    self.take_lines(out);
                    if self.pending.len() > MAX_LINE {
                        if let Some(o) = self.cur.as_mut() {
                            o.offset += self.pending.len() as u64;
                        }
                        self.pending.clear();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SourceError(format!(
                        "reading {} failed: {e}",
                        self.path.display()
                    )))
                }
            }
        }
        Ok(ReadEnd::Limit)
    }

    /// Turn every complete line in `pending` into a record: one scan and one drain per
    /// call, not per line.
    fn take_lines(&mut self, out: &mut Vec<Record>) {
        let Some(o) = self.cur.as_mut() else { return };
        let now = SystemTime::now();
        let mut start = 0;
        while let Some(rel) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[start..start + rel];
            start += rel + 1;
            o.offset += rel as u64 + 1;
            let text = clean_line(line);
            if self.skip_list.iter().any(|s| text.contains(s.as_str())) {
                continue;
            }
            let Some((at, message)) = self.translator.translate(&text, now) else {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            out.push(Record {
                message,
                at,
                position: Some(Position::File {
                    inode: o.inode,
                    offset: o.offset,
                }),
            });
        }
        self.pending.drain(..start);
    }
}

/// A line as the rules see it: without a trailing `\r` (CRLF files), NUL bytes removed (the
/// zero-filled block a crash leaves in a log file is glued to the next line, whose header
/// would no longer match), invalid UTF-8 replaced — as `nodeprobe rules test` reads files.
fn clean_line(line: &[u8]) -> std::borrow::Cow<'_, str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&0) {
        let kept: Vec<u8> = line.iter().copied().filter(|b| *b != 0).collect();
        std::borrow::Cow::Owned(String::from_utf8_lossy(&kept).into_owned())
    } else {
        String::from_utf8_lossy(line)
    }
}

impl LogSource for FileSource {
    fn backend(&self) -> Backend {
        Backend::File
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn open(&mut self, start: &Start) -> Result<(), SourceError> {
        let offset = match start {
            // the saved file, or it was rotated while we were away: the new file is all new
            Start::After(Position::File { inode, offset }) => match std::fs::metadata(&self.path) {
                Ok(m) if m.ino() == *inode => Some(*offset),
                _ => Some(0),
            },
            Start::Since(_) => Some(0),
            Start::End | Start::After(_) => None,
        };
        self.pending.clear();
        self.cur = Some(
            open_at(&self.path, offset)
                .map_err(|e| SourceError(format!("cannot open {}: {e}", self.path.display())))?,
        );
        Ok(())
    }

    fn read(&mut self, wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError> {
        let before = out.len();
        self.read_available(u64::MAX, out)?;
        let Some(o) = self.cur.as_ref() else {
            return Err(SourceError("the log file is not open".into()));
        };
        let (inode, offset) = (o.inode, o.offset);
        match std::fs::metadata(&self.path) {
            Ok(m) if m.ino() != inode => {
                // Rotated: finish the old file first (lines written after the read above,
                // and a last line without a newline), then follow the new one.
                if self.read_available(ROTATED_TAIL_MAX, out)? == ReadEnd::Eof
                    && !self.pending.is_empty()
                {
                    self.pending.push(b'\n');
                    self.take_lines(out);
                }
                self.open(&Start::Since(SystemTime::UNIX_EPOCH))?;
            }
            // Truncated (copytruncate): what was cut is gone, and so is the rest of a
            // partial line; read the file again from its start.
            Ok(m) if m.len() < offset => self.open(&Start::Since(SystemTime::UNIX_EPOCH))?,
            _ => {}
        }
        if out.len() == before {
            std::thread::sleep(POLL.min(wait));
        }
        Ok(())
    }
}

/// Most of a rotated file's tail read before following the new file.
const ROTATED_TAIL_MAX: u64 = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::{LogFinding, LogItem};
    use crate::logs::MonitorConfig;
    use tokio::sync::mpsc;

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8, s: i8) -> SystemTime {
        let dt = crate::timefmt::civil::date(y, mo, d).at(h, mi, s, 0);
        SystemTime::from(
            dt.to_zoned(crate::timefmt::tz::TimeZone::UTC)
                .unwrap()
                .timestamp(),
        )
    }

    /// `Nov 27 07:15:15` for now (UTC), as a syslog line starts.
    fn syslog_now() -> String {
        crate::timefmt::timestamp(SystemTime::now())
            .strftime("%b %e %H:%M:%S")
            .to_string()
    }

    fn kernel_line(msg: &str) -> String {
        format!("{} node1 kernel: [ 1234.5678] {msg}", syslog_now())
    }

    /// A rotation right after lines were appended (between two polls of the monitor): the
    /// old file's tail, including a last line without a newline, is matched before the new
    /// file is followed. The runtime's only blocking thread is taken by a stuck task, so
    /// this also shows that the monitor does not need the blocking pool.
    #[test]
    fn rotation_keeps_the_old_files_tail() {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("kern.log");
        std::fs::write(&log, "").unwrap();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/npd-config/kernel-monitor-filelog.json");
        let text = std::fs::read_to_string(fixture).unwrap().replace(
            "\"/var/log/kern.log\"",
            &format!("{:?}", log.to_str().unwrap()),
        );
        let config = MonitorConfig::parse("kernel-monitor-filelog.json", text.as_bytes()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let blocker = rt.spawn_blocking(move || stuck.recv_timeout(Duration::from_secs(60)));
        let events = rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(64);
            let monitors = crate::logs::spawn_monitors(
                crate::HostPaths::new("/"),
                vec![config],
                crate::logs::MonitorOptions::new(tmp.path().join("state")),
                tx,
            )
            .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            // the initial conditions (confirmed) come once the monitor is positioned
            loop {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some(LogItem::Finding(LogFinding::Condition(_)))) => {}
                    Ok(Some(LogItem::Durable(ack))) => break ack.done(),
                    other => panic!("monitor never started: {other:?}"),
                }
            }
            // Between two polls: append a line and a line without its newline, rotate.
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            writeln!(
                f,
                "{}",
                kernel_line("INFO: task tail-a:1 blocked for more than 120 seconds.")
            )
            .unwrap();
            write!(
                f,
                "{}",
                kernel_line("INFO: task tail-b:2 blocked for more than 120 seconds.")
            )
            .unwrap();
            drop(f);
            std::fs::rename(&log, tmp.path().join("kern.log.1")).unwrap();
            std::fs::write(
                &log,
                format!(
                    "{}\n",
                    kernel_line("INFO: task new-c:3 blocked for more than 120 seconds.")
                ),
            )
            .unwrap();
            let mut events = Vec::new();
            while events.len() < 3 {
                match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                    Ok(Some(LogItem::Finding(LogFinding::Event(e)))) => events.push(e.message),
                    Ok(Some(LogItem::Durable(ack))) => ack.done(),
                    Ok(Some(LogItem::Finding(_))) => {}
                    other => panic!("after {events:?}: {other:?}"),
                }
            }
            monitors.shutdown().await;
            events
        });
        release.send(()).unwrap();
        assert!(rt.block_on(blocker).unwrap().is_ok());
        assert_eq!(
            events,
            [
                "INFO: task tail-a:1 blocked for more than 120 seconds.",
                "INFO: task tail-b:2 blocked for more than 120 seconds.",
                "INFO: task new-c:3 blocked for more than 120 seconds.",
            ]
        );
    }

    #[test]
    fn go_layouts_from_npd_configs() {
        let l = GoLayout::parse("Jan _2 15:04:05").unwrap();
        assert_eq!(
            l.parse_time("Nov  7 07:15:15", 2026),
            Some(utc(2026, 11, 7, 7, 15, 15))
        );
        assert_eq!(
            l.parse_time("Nov 27 07:15:15", 2026),
            Some(utc(2026, 11, 27, 7, 15, 15))
        );
        assert_eq!(l.parse_time("Foo 27 07:15:15", 2026), None);
        let l = GoLayout::parse("2006-01-02T15:04:05.999999999-07:00").unwrap();
        assert_eq!(
            l.parse_time("2026-11-27T09:15:15.5+02:00", 2000),
            Some(utc(2026, 11, 27, 7, 15, 15) + Duration::from_millis(500))
        );
        assert_eq!(
            l.parse_time("2026-11-27T07:15:15-00:00", 2000),
            Some(utc(2026, 11, 27, 7, 15, 15))
        );
        let l = GoLayout::parse("Mon Jan 2 3:04:05 PM MST 2006").unwrap();
        assert_eq!(
            l.parse_time("Fri Nov 27 7:15:15 PM UTC 2026", 0),
            Some(utc(2026, 11, 27, 19, 15, 15))
        );
        assert!(GoLayout::parse("no tokens here").is_err());
        assert_eq!(current_year(utc(2026, 11, 27, 0, 0, 0)), 2026);
        assert_eq!(current_year(utc(2024, 12, 31, 23, 0, 0)), 2024);
    }

    /// Arbitrary text never panics the layout parser or the time parser.
    #[test]
    fn arbitrary_text_never_panics() {
        let alphabet = [
            "Jan", "_2", "15", ":", "04", "05", ".999", "-07:00", "Z", "é", "PM", " ", "2006",
            "日", "+", "9",
        ];
        let layouts: Vec<GoLayout> = [
            "Jan _2 15:04:05",
            "2006-01-02T15:04:05.999999999Z07:00",
            "Mon Jan 2 3:04:05 PM MST 2006",
        ]
        .iter()
        .map(|l| GoLayout::parse(l).unwrap())
        .collect();
        for parts in crate::testing::arbitrary(0x1234_5678_9abc_def1, &alphabet, 11, 20000) {
            let v = parts.concat();
            let _ = GoLayout::parse(&v);
            for l in &layouts {
                let _ = l.parse_time(&v, 2026);
            }
        }
    }

    /// A crash leaves a zero-filled block glued to the next line, and some writers end lines
    /// with CRLF: both lines still match (as `rules test` reads them), parse errors stay 0.
    #[test]
    fn nul_prefixed_and_crlf_lines_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("kern.log");
        let a = kernel_line("INFO: task a:1 blocked for more than 120 seconds.");
        let b = kernel_line("INFO: task b:2 blocked for more than 120 seconds.");
        let mut bytes = vec![0u8; 4096];
        bytes.extend_from_slice(format!("{a}\r\n{b}\n").as_bytes());
        std::fs::write(&log, bytes).unwrap();
        let cfg = [
            ("timestamp", "^.{15}"),
            ("message", "kernel: \\[.*\\] (.*)"),
            ("timestampFormat", "Jan _2 15:04:05"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let stats = Arc::new(MonitorStats::new("kern.log"));
        let mut src = FileSource::new(
            log,
            Translator::from_plugin_config(&cfg).unwrap(),
            Vec::new(),
            stats.clone(),
        );
        src.open(&Start::Since(SystemTime::UNIX_EPOCH)).unwrap();
        let mut out = Vec::new();
        src.read(Duration::ZERO, &mut out).unwrap();
        let got: Vec<&str> = out.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(
            got,
            [
                "INFO: task a:1 blocked for more than 120 seconds.",
                "INFO: task b:2 blocked for more than 120 seconds."
            ]
        );
        assert_eq!(stats.parse_errors.load(Ordering::Relaxed), 0);
        assert_eq!(clean_line(b"\0x\0y\r"), "xy");
        assert_eq!(clean_line(b"a\rb"), "a\rb", "a lone CR inside is kept");
    }

    #[test]
    fn translator_uses_the_last_submatch() {
        let cfg = |ts: &str, msg: &str, fmt: &str| {
            [
                ("timestamp", ts),
                ("message", msg),
                ("timestampFormat", fmt),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        let now = utc(2026, 11, 27, 8, 0, 0);
        let t = Translator::from_plugin_config(&cfg(
            "^.{15}",
            "kernel: \\[.*\\] (.*)",
            "Jan _2 15:04:05",
        ))
        .unwrap();
        assert_eq!(
            t.translate(
                "Nov 27 07:15:15 node kernel: [ 12.5] TCP: too many orphaned sockets",
                now
            ),
            Some((
                utc(2026, 11, 27, 7, 15, 15),
                "TCP: too many orphaned sockets".to_string()
            ))
        );
        assert_eq!(t.translate("garbage", now), None);
        // no capture group: the whole match (NPD disk-log-message-filelog.json)
        let t = Translator::from_plugin_config(&cfg(
            "^.{15}",
            "(?i)Currently unreadable.*sectors|(?i)Offline uncorrectable sectors",
            "Jan _2 15:04:05",
        ))
        .unwrap();
        assert_eq!(
            t.translate(
                "Nov 27 07:15:15 node smartd: 8 Offline uncorrectable sectors",
                now
            )
            .map(|x| x.1),
            Some("Offline uncorrectable sectors".to_string())
        );
        let t = Translator::from_plugin_config(&cfg(
            "^time=\"(\\S*)\"",
            "msg=\"([^\n]*)\"",
            "2006-01-02T15:04:05.999999999-07:00",
        ))
        .unwrap();
        assert_eq!(
            t.translate(
                "time=\"2026-11-27T07:15:15.000000001Z\" level=error msg=\"x y\"",
                now
            ),
            None,
            "a Z offset does not fit a -07:00 layout (as in Go)"
        );
        assert!(matches!(
            Translator::from_plugin_config(&cfg("(", "x", "Jan")),
            Err(FilelogConfigError::Regex { .. })
        ));
        assert!(matches!(
            Translator::from_plugin_config(&Default::default()),
            Err(FilelogConfigError::Missing("timestamp"))
        ));
    }
}
