//! The journald source (NPD `plugin: journald`), pure Rust (`sdjournal`), no libsystemd.
//!
//! Follows the journal directory `<host-root>/<logPath>` (default `/var/log/journal`) with
//! sdjournal's live reader (inotify on the journal files; rotated and new files are picked
//! up), keeping entries whose `SYSLOG_IDENTIFIER` equals `pluginConfig.source`; the message
//! is `MESSAGE`, the timestamp `__REALTIME_TIMESTAMP`, the position the entry's cursor.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::driver::{LogSource, Position, Record, SourceError, Start};
use super::{Backend, MonitorStats};

/// Entries taken from the subscription in one read at most.
const BATCH: usize = 4096;

/// A followed journal directory.
pub struct JournalSource {
    pub dir: PathBuf,
    pub identifier: String,
    pub stats: Arc<MonitorStats>,
    live: Option<(sdjournal::LiveJournal, sdjournal::LiveSubscription)>,
}

impl JournalSource {
    pub fn new(dir: PathBuf, identifier: String, stats: Arc<MonitorStats>) -> Self {
        JournalSource {
            dir,
            identifier,
            stats,
            live: None,
        }
    }
}

fn usec(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl LogSource for JournalSource {
    fn backend(&self) -> Backend {
        Backend::Journal
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn open(&mut self, start: &Start) -> Result<(), SourceError> {
        self.live = None;
        let fail = |e: sdjournal::SdJournalError| {
            SourceError(format!(
                "cannot read the journal in {}: {e}",
                self.dir.display()
            ))
        };
        let config = sdjournal::JournalConfig {
            poll_interval: super::driver::TICK,
            ..Default::default()
        };
        let journal = sdjournal::Journal::open_dir_with_config(&self.dir, config).map_err(fail)?;
        let mut live = journal.live().map_err(fail)?;
        let mut filter = live.filter();
        filter.match_exact("SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        let mut options = sdjournal::SubscriptionOptions::new(filter);
        match start {
            Start::After(Position::Journal(c)) => match sdjournal::Cursor::parse(c) {
                Ok(c) => {
                    options.after_cursor(c);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring an unparsable journal cursor"),
            },
            Start::Since(t) => {
                options.since_realtime(usec(*t));
            }
            Start::End | Start::After(_) => {}
        }
        let sub = live.subscribe_with_options(options).map_err(fail)?;
        self.live = Some((live, sub));
        Ok(())
    }

    /// Waits up to the journal's poll interval, [`super::driver::TICK`] (set at open).
    fn read(&mut self, _wait: Duration, out: &mut Vec<Record>) -> Result<(), SourceError> {
        let Some((live, sub)) = self.live.as_mut() else {
            return Err(SourceError("the journal is not open".into()));
        };
        let take = |out: &mut Vec<Record>| {
            let mut n = 0;
            while n < BATCH {
                let Ok(item) = sub.try_recv() else { break };
                n += 1;
                let entry = match item {
                    Ok(e) => e,
                    Err(e) => {
                        self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "skipping an unreadable journal entry");
                        continue;
                    }
                };
                out.push(Record {
                    message: entry
                        .get("MESSAGE")
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_default(),
                    at: SystemTime::UNIX_EPOCH + Duration::from_micros(entry.realtime_usec()),
                    position: entry
                        .cursor()
                        .ok()
                        .map(|c| Position::Journal(c.to_string())),
                });
            }
            n
        };
        if take(out) > 0 {
            return Ok(());
        }
        // Nothing queued: wait (inotify, at most the configured interval) for the journal
        // to change, then take what it delivered.
        live.poll_once().map_err(|e| {
            SourceError(format!(
                "following the journal in {} failed: {e}",
                self.dir.display()
            ))
        })?;
        take(out);
        Ok(())
    }
}
