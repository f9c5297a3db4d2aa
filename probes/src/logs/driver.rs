//! The one log-monitor driver: every source (the kernel log through `/dev/kmsg` or
//! `syslog(2)`, the journal, a log file) implements [`LogSource`]; [`Driver::run`] does the
//! rest, the same for all, on the monitor's own thread:
//!
//! * restores the conditions and the position saved earlier in this boot, else starts at
//!   `max(boot + delay, now - lookback)` (or the end of the log without a lookback);
//! * sends the initial conditions, then every finding as lines match;
//! * **at least once**: after the findings of a line it waits until the receiver says they
//!   are durable ([`LogItem::Durable`]), and only then saves the position past that line; a
//!   crash in between reads the line again;
//! * clears conditions whose `clearAfter` passed (checked every [`TICK`]);
//! * a source that cannot be opened, or has failed for [`OUTAGE_AFTER`], is an outage: every
//!   declared condition `Unknown` with the cause, one `LogSourceUnavailable` event, a new try
//!   every [`RETRY`]; once it reads again the conditions return to their real state.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::{cursor, ring, Backend, Matcher, MonitorConfig, MonitorStats};
use crate::findings::{Ack, ConditionUpdate, LogFinding, LogItem, MonitorEvent};
use crate::ConditionStatus;

/// How long a read waits for new records before the driver looks at the clock.
pub const TICK: Duration = Duration::from_secs(1);
/// How often a source that cannot be read is tried again.
pub const RETRY: Duration = Duration::from_secs(10);
/// A source that was readable and fails this long is an outage (conditions `Unknown`, event).
pub const OUTAGE_AFTER: Duration = Duration::from_secs(60);
/// The position is saved at most this often while no finding forces it.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Reason of the event and the `Unknown` conditions of a source that cannot be read.
pub const LOG_SOURCE_UNAVAILABLE: &str = "LogSourceUnavailable";

/// A position in a source: where reading resumes after a restart in the same boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// `/dev/kmsg`: the last sequence number read.
    Kmsg(u64),
    /// The kernel ring through `syslog(2)`.
    Ring(ring::RingCursor),
    /// The journal cursor of the last entry read.
    Journal(String),
    /// A log file's inode and the offset after the last complete line read.
    File { inode: u64, offset: u64 },
}

/// Where a source starts reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// After this position (state saved earlier in this boot).
    After(Position),
    /// Records written at or after this time (`lookback`, `delay`).
    Since(SystemTime),
    /// Only records written from now on.
    End,
}

/// One record read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message: String,
    /// When it was written (realtime clock).
    pub at: SystemTime,
    /// The position after this record.
    pub position: Option<Position>,
}

/// Why a source cannot be read now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A log source. Implementations block (on the monitor's thread), never longer than the
/// wait they are given.
pub trait LogSource: Send {
    /// What it reads now.
    fn backend(&self) -> Backend;
    /// Where (a path), for logs and messages.
    fn describe(&self) -> String;
    /// Open (or open again after a failure) and position at `start`. A position of another
    /// source kind counts as [`Start::End`].
    fn open(&mut self, start: &Start) -> Result<(), SourceError>;
    /// Append the records available now to `out`, waiting up to `wait` when there are none.
    fn read(&mut self, wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError>;
}

/// Where reading starts without saved state: `lookback` before now, not before
/// `boot + delay`; the end of the log without a lookback.
pub fn start_point(config: &MonitorConfig, now: SystemTime, boot: SystemTime) -> Start {
    if config.lookback.is_zero() {
        return Start::End;
    }
    let since = now.checked_sub(config.lookback).unwrap_or(boot);
    Start::Since(since.max(boot + config.delay.unwrap_or_default()))
}

/// Realtime clock at boot, from CLOCK_MONOTONIC now (for `lookback`/`delay` only: record
/// times are anchored at each read, see [`super::kmsg::KernelClock`]).
pub fn boot_time(now: SystemTime) -> SystemTime {
    now.checked_sub(super::kmsg::KernelClock::System.since_boot())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The host's boot id; `None` (state is then not persisted) when it cannot be read.
pub fn read_boot_id(path: &std::path::Path) -> Option<String> {
    match crate::HostPaths::read_trimmed(path) {
        Ok(id) if !id.is_empty() => Some(id),
        other => {
            tracing::warn!(path = %path.display(), result = ?other.err(),
                "cannot read the boot id; log cursor and condition state are not persisted");
            None
        }
    }
}

/// A monitor's saved state, if it is from this boot. A corrupt file is counted and logged,
/// and the monitor starts as if there were none.
fn load_state(
    path: &std::path::Path,
    stats: &MonitorStats,
    boot_id: Option<&str>,
) -> Option<cursor::MonitorState> {
    let saved = cursor::load(path).unwrap_or_else(|e| {
        stats.state_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, "ignoring log monitor state");
        None
    });
    saved.filter(|s| boot_id == Some(s.boot_id.as_str()))
}

/// The monitor's state file: conditions and the last durable position.
struct Persist {
    path: PathBuf,
    boot_id: Option<String>,
    position: Option<Position>,
    last_write: Instant,
    dirty: bool,
    warned: bool,
}

impl Persist {
    fn save(&mut self, stats: &MonitorStats, matcher: &Matcher) {
        let Some(boot_id) = self.boot_id.clone() else {
            return;
        };
        let mut state = cursor::MonitorState {
            version: cursor::STATE_VERSION,
            boot_id,
            last_seq: None,
            conditions: matcher.conditions.snapshot(),
            journal_cursor: None,
            file_inode: None,
            file_offset: None,
            ring_usec: None,
            ring_seen: None,
        };
        match &self.position {
            Some(Position::Kmsg(seq)) => state.last_seq = Some(*seq),
            Some(Position::Ring(c)) => {
                (state.ring_usec, state.ring_seen) = (Some(c.usec), Some(c.seen))
            }
            Some(Position::Journal(c)) => state.journal_cursor = Some(c.clone()),
            Some(Position::File { inode, offset }) => {
                (state.file_inode, state.file_offset) = (Some(*inode), Some(*offset))
            }
            None => {}
        }
        self.last_write = Instant::now();
        self.dirty = false;
        stats.writing(true);
        let r = cursor::save(&self.path, &state);
        stats.writing(false);
        if let Err(e) = r {
            stats.state_errors.fetch_add(1, Ordering::Relaxed);
            if !self.warned {
                self.warned = true;
                tracing::warn!(error = %e, "cannot persist log monitor state; a restart may replay or miss lines (logged once)");
            }
        }
    }
}

/// The position a saved state holds.
fn saved_position(s: &cursor::MonitorState) -> Option<Position> {
    if let Some(seq) = s.last_seq {
        return Some(Position::Kmsg(seq));
    }
    if let (Some(usec), Some(seen)) = (s.ring_usec, s.ring_seen) {
        return Some(Position::Ring(ring::RingCursor { usec, seen }));
    }
    if let Some(c) = &s.journal_cursor {
        return Some(Position::Journal(c.clone()));
    }
    match (s.file_inode, s.file_offset) {
        (Some(inode), Some(offset)) => Some(Position::File { inode, offset }),
        _ => None,
    }
}

/// Everything a monitor needs besides its source.
pub(super) struct Driver {
    pub config: MonitorConfig,
    pub stats: Arc<MonitorStats>,
    pub tx: mpsc::Sender<LogItem>,
    pub shutdown: watch::Receiver<bool>,
    pub state_path: PathBuf,
    pub boot_id: Option<String>,
    /// What to grant when the source cannot be read (appended to the cause).
    pub grant: &'static str,
    /// "kernel", "journal", "file": the log line that says the monitor reads.
    pub kind: &'static str,
}

/// How a delivery ended.
enum Sent {
    Durable,
    /// The receiver is gone or the agent stops: the position must not move.
    Stop,
}

impl Driver {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    /// Send `findings` and wait until the receiver says they are durable.
    fn deliver(&self, findings: Vec<LogFinding>) -> Sent {
        for f in findings {
            if self.tx.blocking_send(LogItem::Finding(f)).is_err() {
                return Sent::Stop;
            }
        }
        let (ack, wait) = Ack::new();
        if self.tx.blocking_send(LogItem::Durable(ack)).is_err() {
            return Sent::Stop;
        }
        loop {
            self.stats.beat();
            match wait.wait(TICK) {
                Some(true) => return Sent::Durable,
                Some(false) => return Sent::Stop,
                None if self.stopping() => return Sent::Stop,
                None => {}
            }
        }
    }

    /// The outage: conditions `Unknown`, one event. False when the receiver is gone.
    fn announce_outage(&self, why: &str) -> bool {
        tracing::error!(monitor = %self.config.source, "{why}; its conditions are Unknown until it can");
        let now = SystemTime::now();
        let mut out: Vec<LogFinding> = self
            .config
            .conditions
            .iter()
            .map(|d| {
                LogFinding::Condition(ConditionUpdate {
                    source: self.config.source.clone(),
                    condition: d.condition.clone(),
                    status: ConditionStatus::Unknown,
                    reason: LOG_SOURCE_UNAVAILABLE.to_string(),
                    message: why.to_string(),
                    transition: now,
                })
            })
            .collect();
        out.push(LogFinding::Event(MonitorEvent {
            source: self.config.source.clone(),
            reason: LOG_SOURCE_UNAVAILABLE.to_string(),
            message: why.to_string(),
            timestamp: now,
            oom: None,
        }));
        matches!(self.deliver(out), Sent::Durable)
    }

    /// An outage is due when the source was never read, or has failed for [`OUTAGE_AFTER`].
    fn outage_due(&self) -> bool {
        match self.stats.down_for() {
            Some((_, false)) => true,
            Some((d, true)) => d >= OUTAGE_AFTER,
            None => false,
        }
    }

    /// Open `source` at `start`, trying again every [`RETRY`]; an outage is announced once
    /// it is due. Returns whether an outage was announced, `None` on shutdown.
    fn open(&self, source: &mut dyn LogSource, start: &Start, mut announced: bool) -> Option<bool> {
        loop {
            self.stats.beat();
            match source.open(start) {
                Ok(()) => return Some(announced),
                Err(e) => {
                    let why = match self.grant {
                        "" => e.0,
                        grant => format!("{}; {grant}", e.0),
                    };
                    self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.mark_down(why.clone());
                    if self.outage_due() && !announced {
                        announced = true;
                        if !self.announce_outage(&why) {
                            return None;
                        }
                        self.stats.ready.store(true, Ordering::Relaxed);
                    }
                }
            }
            if super::pause(&self.shutdown, RETRY) {
                return None;
            }
        }
    }

    /// Run the monitor until shutdown (or until the receiver is gone).
    pub fn run(self, mut source: Box<dyn LogSource>) {
        self.stats.running.store(true, Ordering::Relaxed);
        let now = SystemTime::now();
        let saved = load_state(&self.state_path, &self.stats, self.boot_id.as_deref());
        let mut matcher = Matcher::new(self.config.clone(), Arc::clone(&self.stats), now);
        let mut persist = Persist {
            path: self.state_path.clone(),
            boot_id: self.boot_id.clone(),
            position: None,
            last_write: Instant::now(),
            dirty: true,
            warned: false,
        };
        let mut start = match &saved {
            Some(s) => {
                matcher.conditions.restore(&s.conditions);
                persist.position = saved_position(s);
                match &persist.position {
                    Some(p) => Start::After(p.clone()),
                    None => start_point(&self.config, now, boot_time(now)),
                }
            }
            None => start_point(&self.config, now, boot_time(now)),
        };
        let since = match start {
            Start::Since(t) => Some(t),
            _ => None,
        };
        let mut announced = false;
        let mut batch = Vec::new();
        'open: loop {
            let Some(a) = self.open(source.as_mut(), &start, announced) else {
                break 'open;
            };
            self.stats.set_backend(source.backend());
            let first = !self.stats.ready.load(Ordering::Relaxed);
            if first || a {
                self.stats.mark_up(true);
            }
            tracing::info!(monitor = %self.config.source, backend = source.backend().as_str(),
                path = %source.describe(), start = ?start, state = %self.state_path.display(),
                "{} log monitor started", self.kind);
            if first || a {
                // first start, or the end of an outage: the conditions' real state
                let current = matcher.conditions.current();
                let current = current.into_iter().map(LogFinding::Condition).collect();
                if let Sent::Stop = self.deliver(current) {
                    break 'open;
                }
            }
            announced = false;
            self.stats.ready.store(true, Ordering::Relaxed);
            // Read until shutdown, or until the source fails (then open it again).
            loop {
                self.stats.beat();
                if self.stopping() {
                    break 'open;
                }
                batch.clear();
                if let Err(e) = source.read(TICK, &mut batch) {
                    self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.mark_down(e.0.clone());
                    tracing::warn!(monitor = %self.config.source, error = %e, "reading the log failed; opening it again");
                    if self.outage_due() && !announced {
                        announced = true;
                        if !self.announce_outage(&e.0) {
                            break 'open;
                        }
                    }
                    if let Some(p) = &persist.position {
                        start = Start::After(p.clone());
                    }
                    if super::pause(&self.shutdown, TICK) {
                        break 'open;
                    }
                    continue 'open;
                }
                if !self.stats.is_up() {
                    self.stats.mark_up(true);
                }
                for rec in batch.drain(..) {
                    self.stats.records_read.fetch_add(1, Ordering::Relaxed);
                    let findings = match since {
                        Some(s) if rec.at < s => Vec::new(),
                        _ => matcher.push(&rec.message, rec.at).0,
                    };
                    if !findings.is_empty() {
                        if let Sent::Stop = self.deliver(findings) {
                            break 'open;
                        }
                        persist.position = rec.position;
                        persist.save(&self.stats, &matcher);
                    } else if rec.position.is_some() {
                        persist.position = rec.position;
                        persist.dirty = true;
                    }
                }
                let cleared = matcher.conditions.expire(SystemTime::now());
                if !cleared.is_empty() {
                    let cleared = cleared.into_iter().map(LogFinding::Condition).collect();
                    if let Sent::Stop = self.deliver(cleared) {
                        break 'open;
                    }
                    persist.save(&self.stats, &matcher);
                } else if persist.dirty && persist.last_write.elapsed() >= SAVE_EVERY {
                    persist.save(&self.stats, &matcher);
                }
            }
        }
        persist.save(&self.stats, &matcher);
        self.stats.running.store(false, Ordering::Relaxed);
        tracing::info!(monitor = %self.config.source, "{} log monitor stopped", self.kind);
    }
}
