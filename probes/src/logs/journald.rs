//! The journald source (NPD `plugin: journald`), pure Rust (`sdjournal`), no libsystemd.
//!
//! Follows the journal directory `<host-root>/<logPath>` (default `/var/log/journal`),
//! keeping entries whose `SYSLOG_IDENTIFIER` equals `pluginConfig.source`; the message is
//! `MESSAGE`, the timestamp `__REALTIME_TIMESTAMP`. The journal is polled (re-opened each
//! poll, which also picks up rotated and new files) from the persisted cursor when the
//! state is from this boot, otherwise from `max(boot + delay, now - lookback)`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::{Matcher, MonitorConfig, MonitorStats, Persist};
use crate::findings::LogFinding;

/// How often the journal is re-read.
pub const POLL: Duration = Duration::from_millis(500);

pub(super) struct JournalMonitor {
    pub dir: PathBuf,
    pub identifier: String,
    pub boot_id: Option<String>,
    pub boot: SystemTime,
    pub state_path: PathBuf,
    pub config: MonitorConfig,
    pub stats: Arc<MonitorStats>,
    pub tx: mpsc::Sender<LogFinding>,
    pub shutdown: watch::Receiver<bool>,
}

fn usec(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl JournalMonitor {
    /// Blocking loop; returns on shutdown or when the receiver is gone.
    pub(super) fn run(self) {
        self.stats.running.store(true, Ordering::Relaxed);
        let now = SystemTime::now();
        let saved = super::load_state(&self.state_path, &self.stats, self.boot_id.as_deref());
        let mut matcher = Matcher::new(self.config.clone(), Arc::clone(&self.stats), now);
        let mut resume: Option<sdjournal::Cursor> = None;
        if let Some(s) = &saved {
            matcher.conditions.restore(&s.conditions);
            if let Some(c) = &s.journal_cursor {
                match sdjournal::Cursor::parse(c) {
                    Ok(c) => resume = Some(c),
                    Err(e) => tracing::warn!(error = %e, "ignoring unparsable journal cursor"),
                }
            }
        }
        let since = {
            let lb = now.checked_sub(self.config.lookback).unwrap_or(self.boot);
            lb.max(self.boot + self.config.delay.unwrap_or_default())
        };
        let mut persist = Persist::new(self.state_path.clone(), self.boot_id.clone());
        persist.journal_cursor = saved.as_ref().and_then(|s| s.journal_cursor.clone());
        self.stats.set_backend(super::Backend::Journal);
        for u in matcher.conditions.current() {
            if self.tx.blocking_send(LogFinding::Condition(u)).is_err() {
                return;
            }
        }
        tracing::info!(monitor = %self.config.source, dir = %self.dir.display(), identifier = %self.identifier,
            resume = resume.is_some(), "journal monitor started");
        let mut warned_open = false;
        let mut first = true;
        loop {
            if *self.shutdown.borrow() || self.shutdown.has_changed().is_err() {
                break;
            }
            self.stats.beat();
            match sdjournal::Journal::open_dir(&self.dir) {
                Err(e) => {
                    self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.mark_down(format!(
                        "cannot open the journal in {}: {e}",
                        self.dir.display()
                    ));
                    if !warned_open {
                        warned_open = true;
                        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot open the journal; retrying (logged once)");
                    }
                }
                Ok(journal) => {
                    warned_open = false;
                    self.stats.mark_up(true);
                    let mut q = journal.query();
                    q.match_exact("SYSLOG_IDENTIFIER", self.identifier.as_bytes());
                    match resume.clone() {
                        Some(c) => {
                            q.after_cursor(c);
                        }
                        None => {
                            q.since_realtime(usec(since));
                        }
                    }
                    match q.iter() {
                        Err(e) => {
                            self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "journal query failed");
                        }
                        Ok(iter) => {
                            for item in iter {
                                let entry = match item {
                                    Ok(e) => e,
                                    Err(e) => {
                                        self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                                        tracing::debug!(error = %e, "skipping unreadable journal entry");
                                        continue;
                                    }
                                };
                                self.stats.records_read.fetch_add(1, Ordering::Relaxed);
                                if let Ok(c) = entry.cursor() {
                                    persist.journal_cursor = Some(c.to_string());
                                    resume = Some(c);
                                    persist.dirty = true;
                                }
                                let msg = entry
                                    .get("MESSAGE")
                                    .map(|m| String::from_utf8_lossy(m).into_owned())
                                    .unwrap_or_default();
                                let at = SystemTime::UNIX_EPOCH
                                    + Duration::from_micros(entry.realtime_usec());
                                let (findings, _) = matcher.push(&msg, at);
                                if !findings.is_empty() {
                                    persist.save(&self.stats, None, &matcher.conditions);
                                    for f in findings {
                                        if self.tx.blocking_send(f).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if first {
                first = false;
                self.stats.ready.store(true, Ordering::Relaxed);
            }
            let cleared = matcher.conditions.expire(SystemTime::now());
            if !cleared.is_empty() || persist.dirty {
                persist.save(&self.stats, None, &matcher.conditions);
            }
            for u in cleared {
                if self.tx.blocking_send(LogFinding::Condition(u)).is_err() {
                    return;
                }
            }
            if super::pause(&self.shutdown, POLL) {
                break;
            }
        }
        persist.save(&self.stats, None, &matcher.conditions);
        self.stats.running.store(false, Ordering::Relaxed);
    }
}
