//! One pass over what a log still holds, for `--oneshot`: a monitor's rules over the records
//! written within its `lookback` (not before `boot + delay`), nothing kept (no cursor, no
//! state file, no thread left behind).
//!
//! * [`scan`] is pure: records in, the conditions' state and the temporary findings out,
//!   with the daemon's matching ([`super::Matcher`]: NPD buffer semantics, permanent rules
//!   set conditions, `clearAfter` clears them, OOM kills attributed to a pod).
//! * [`read_kernel`] reads the kernel log without ever waiting: `/dev/kmsg` opened
//!   non-blocking and read from its oldest record up to `EAGAIN`, or where the device cannot
//!   be opened, the ring through `syslog(2)` `READ_ALL` ([`super::ring`]).
//! * `read_journal` (cargo feature `journald`) queries the journal for the monitor's
//!   identifier since the window's start.
//! * [`scan_monitor`] puts them together for one rule file.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::driver::{self, LogSource, Record, SourceError, Start};
use super::{kmsg, ring, Backend, Matcher, MonitorConfig, MonitorStats, Plugin};
use crate::findings::{ConditionUpdate, LogFinding, MonitorEvent};
use crate::{ConditionStatus, HostPaths};

/// Temporary findings kept per monitor (the newest); the rest are counted in
/// [`ScanResult::events_omitted`].
pub const MAX_EVENTS: usize = 100;

/// Upper bound on the records one kernel-log read takes (a full 32 MiB ring of the
/// shortest records is below it): a flood of new records cannot keep the read going.
pub const MAX_RECORDS: usize = 1 << 20;

/// What the rules found in one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Every declared condition at the end of the window (`True` with the matched reason
    /// and line, else the declared healthy reason and message).
    pub conditions: Vec<ConditionUpdate>,
    /// Temporary findings, oldest first: the newest [`MAX_EVENTS`].
    pub events: Vec<MonitorEvent>,
    /// Temporary findings left out of `events` (older ones).
    pub events_omitted: u64,
    /// Records within the window (matched against the rules).
    pub records: u64,
}

/// Run `config`'s rules over `records`, those written at or after `since` only (`None`: a
/// monitor without `lookback`, which only looks at lines written from now on: nothing).
/// Conditions whose `clearAfter` quiet period has passed by `now` are cleared.
pub fn scan(
    config: &MonitorConfig,
    records: impl IntoIterator<Item = Record>,
    since: Option<SystemTime>,
    now: SystemTime,
) -> ScanResult {
    let stats = Arc::new(MonitorStats::new(config.source.clone()));
    let mut matcher = Matcher::new(config.clone(), stats, now);
    let mut events = VecDeque::new();
    let mut omitted = 0u64;
    let mut n = 0u64;
    if let Some(since) = since {
        for rec in records {
            if rec.at < since {
                continue;
            }
            n += 1;
            for f in matcher.push(&rec.message, rec.at).0 {
                if let LogFinding::Event(e) = f {
                    if events.len() == MAX_EVENTS {
                        events.pop_front();
                        omitted += 1;
                    }
                    events.push_back(e);
                }
            }
        }
    }
    matcher.conditions.expire(now);
    ScanResult {
        conditions: matcher.conditions.current(),
        events: events.into(),
        events_omitted: omitted,
        records: n,
    }
}

/// Where a monitor's window starts: `lookback` before `now`, not before `boot + delay`;
/// `None` without a `lookback`.
pub fn window_start(
    config: &MonitorConfig,
    now: SystemTime,
    boot: SystemTime,
) -> Option<SystemTime> {
    match driver::start_point(config, now, boot) {
        Start::Since(t) => Some(t),
        _ => None,
    }
}

/// Read every record the kernel log holds now, oldest first, without waiting: `kmsg_path`
/// opened non-blocking and read up to `EAGAIN`, else the ring through `syslog(2)`. Stops at
/// the first batch holding a record written after the read began (or at [`MAX_RECORDS`]).
pub fn read_kernel(
    kmsg_path: PathBuf,
    stats: Arc<MonitorStats>,
) -> Result<(Vec<Record>, Backend), SourceError> {
    let mut src = kmsg::KernelSource::new(kmsg_path, ring::DEFAULT_POLL, stats);
    // from the oldest record the ring holds
    src.open(&Start::Since(SystemTime::UNIX_EPOCH))?;
    let backend = src.backend();
    let began = SystemTime::now();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        src.read(Duration::ZERO, &mut out)?;
        if out.len() == before
            || out.len() >= MAX_RECORDS
            || out.last().is_some_and(|r| r.at > began)
        {
            break;
        }
    }
    Ok((out, backend))
}

/// The journal entries of `identifier` (`SYSLOG_IDENTIFIER`) in `dir` written at or after
/// `since`, oldest first, at most [`MAX_RECORDS`]. Unreadable entries are counted in
/// `stats.parse_errors` and skipped.
#[cfg(feature = "journald")]
pub fn read_journal(
    dir: &std::path::Path,
    identifier: &str,
    since: SystemTime,
    stats: &MonitorStats,
) -> Result<Vec<Record>, SourceError> {
    use std::sync::atomic::Ordering;
    let fail = |e: sdjournal::SdJournalError| match e {
        sdjournal::SdJournalError::NotFound => {
            SourceError(format!("no journal files in {}", dir.display()))
        }
        e => SourceError(format!("cannot read the journal in {}: {e}", dir.display())),
    };
    let journal = sdjournal::Journal::open_dir(dir).map_err(fail)?;
    let mut q = journal.query();
    q.match_exact("SYSLOG_IDENTIFIER", identifier.as_bytes());
    let usec = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    q.since_realtime(usec);
    q.limit(MAX_RECORDS);
    let mut out = Vec::new();
    for item in q.iter().map_err(fail)? {
        match item {
            Ok(entry) => out.push(Record {
                message: entry
                    .get("MESSAGE")
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_default(),
                at: SystemTime::UNIX_EPOCH + Duration::from_micros(entry.realtime_usec()),
                position: None,
            }),
            Err(e) => {
                stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "skipping an unreadable journal entry");
            }
        }
    }
    Ok(out)
}

/// One monitor's pass: what was read and what the rules found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorScan {
    /// The monitor's `source` (e.g. `kernel-monitor`).
    pub source: String,
    /// Its rule file (`builtin:…` for the defaults).
    pub origin: String,
    /// What was read (`None` when nothing could be).
    pub backend: Backend,
    /// Where it was read from (a path, or `syslog(2)`).
    pub location: String,
    /// The window's start; `None`: the monitor has no `lookback`.
    pub since: Option<SystemTime>,
    /// Why the log could not be read (its conditions are then `Unknown`), or why the
    /// monitor was not scanned (`skipped`).
    pub problem: Option<String>,
    /// Not a source `--oneshot` reads (log files): nothing was read, nothing reported.
    pub skipped: bool,
    /// Records that could not be parsed, or were lost to a ring overrun during the read.
    pub unreadable_records: u64,
    /// Records read, within the window or not (the whole ring for the kernel log).
    pub records_read: u64,
    pub result: ScanResult,
    /// The pods of the OOM kills found, by UID, as the kubelet's pod log directories name
    /// them (`--oneshot` has no API server to ask).
    pub pods: std::collections::BTreeMap<String, super::oom::PodRef>,
    pub duration: Duration,
}

/// Where and how `--oneshot` reads the logs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub host: HostPaths,
    /// Override of `<host-root>/dev/kmsg`.
    pub kmsg_path: Option<PathBuf>,
}

/// Read one monitor's log within its window and run its rules. A log that cannot be read
/// turns the monitor's conditions `Unknown` (reason [`driver::LOG_SOURCE_UNAVAILABLE`]) with
/// the cause, as the daemon does.
pub fn scan_monitor(config: &MonitorConfig, options: &ScanOptions) -> MonitorScan {
    let t0 = std::time::Instant::now();
    let now = SystemTime::now();
    let since = window_start(config, now, driver::boot_time(now));
    let stats = Arc::new(MonitorStats::new(config.source.clone()));
    let mut out = MonitorScan {
        source: config.source.clone(),
        origin: config.origin.clone(),
        backend: Backend::None,
        location: String::new(),
        since,
        problem: None,
        skipped: false,
        unreadable_records: 0,
        records_read: 0,
        result: scan(config, Vec::new(), None, now),
        pods: Default::default(),
        duration: Duration::ZERO,
    };
    let read: Result<Vec<Record>, SourceError> = match config.plugin {
        _ if since.is_none() => Ok(Vec::new()),
        Plugin::Kmsg => {
            let path = options
                .kmsg_path
                .clone()
                .unwrap_or_else(|| options.host.dev().join("kmsg"));
            out.location = path.display().to_string();
            match read_kernel(path, Arc::clone(&stats)) {
                Ok((records, backend)) => {
                    out.backend = backend;
                    if backend == Backend::Syslog {
                        out.location = "syslog(2)".into();
                    }
                    Ok(records)
                }
                Err(e) => Err(SourceError(format!(
                    "{}; {}; or skip the logs with --oneshot-logs=false",
                    e.0,
                    kmsg::KERNEL_LOG_GRANT
                ))),
            }
        }
        #[cfg(feature = "journald")]
        Plugin::Journald => {
            let dir = options
                .host
                .path(config.log_path.as_deref().unwrap_or("/var/log/journal"));
            out.location = dir.display().to_string();
            out.backend = Backend::Journal;
            let identifier = config
                .plugin_config
                .get("source")
                .cloned()
                .unwrap_or_default();
            let since = since.unwrap_or(now);
            read_journal(&dir, &identifier, since, &stats)
        }
        other => {
            out.skipped = true;
            out.problem = Some(format!(
                "{} logs are not read by --oneshot (the daemon reads them)",
                other.as_str()
            ));
            out.duration = t0.elapsed();
            return out;
        }
    };
    match read {
        Ok(records) => {
            out.records_read = records.len() as u64;
            out.result = scan(config, records, since, now);
            let uids = out
                .result
                .events
                .iter()
                .filter_map(|e| e.oom.as_ref().and_then(|o| o.pod_uid.as_deref()));
            out.pods = super::oom::pods_named(&options.host, uids);
        }
        Err(e) => {
            out.backend = Backend::None;
            for c in &mut out.result.conditions {
                c.status = ConditionStatus::Unknown;
                c.reason = driver::LOG_SOURCE_UNAVAILABLE.to_string();
                c.message = e.0.clone();
            }
            out.problem = Some(e.0);
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    out.unreadable_records = stats.parse_errors.load(Relaxed) + stats.records_lost.load(Relaxed);
    out.duration = t0.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn rec(at: SystemTime, message: &str) -> Record {
        Record {
            message: message.to_string(),
            at,
            position: None,
        }
    }

    fn defaults() -> MonitorConfig {
        MonitorConfig::defaults()
            .unwrap()
            .into_iter()
            .find(|c| c.plugin == Plugin::Kmsg)
            .unwrap()
    }

    /// Raw `/dev/kmsg` records (fixtures in the device's format), parsed by the kmsg parser
    /// and timed against a clock where boot was at `t(0)` and now is `t(1000)`.
    fn from_kmsg(raw: &[&str]) -> Vec<Record> {
        let now = (t(1000), Duration::from_secs(1000));
        raw.iter()
            .map(|r| {
                let k = kmsg::parse_record(r.as_bytes()).unwrap();
                rec(kmsg::record_time(now, k.usec), &k.message)
            })
            .collect()
    }

    const UID: &str = "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab";

    fn fixture() -> Vec<Record> {
        let cid = "ab".repeat(32);
        let oom = format!(
            "6,900,850000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod{UID}/{cid},task_memcg=/kubepods/burstable/pod{UID}/{cid},task=python3,pid=4242,uid=0"
        );
        from_kmsg(&[
            // before the window (lookback 5m = from t(700))
            "3,100,100000000,-;INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
            "3,101,200000000,-;EXT4-fs (sda1): Remounting filesystem read-only",
            // inside it
            "6,800,800000000,-;eth0: link up",
            "3,801,810000000,-;INFO: task docker:321 blocked for more than 120 seconds.",
            "3,802,820000000,-;INFO: task java:77 blocked for more than 120 seconds.",
            &oom,
            "6,901,860000000,-;Memory cgroup out of memory: Killed process 4242 (python3)",
        ])
    }

    #[test]
    fn findings_within_the_lookback_only() {
        let c = defaults();
        assert_eq!(c.lookback, Duration::from_secs(300));
        let since = window_start(&c, t(1000), t(0));
        assert_eq!(since, Some(t(700)));
        let r = scan(&c, fixture(), since, t(1000));
        assert_eq!(r.records, 5);

        // KernelDeadlock from the docker line in the window; the read-only remount before
        // the window is not seen.
        let dead = r
            .conditions
            .iter()
            .find(|c| c.condition == "KernelDeadlock")
            .unwrap();
        assert_eq!(dead.status, ConditionStatus::True);
        assert_eq!(dead.reason, "DockerHung");
        assert_eq!(
            dead.message,
            "INFO: task docker:321 blocked for more than 120 seconds."
        );
        assert_eq!(dead.transition, t(810));
        let ro = r
            .conditions
            .iter()
            .find(|c| c.condition == "ReadonlyFilesystem")
            .unwrap();
        assert_eq!(
            (ro.status, ro.reason.as_str(), ro.message.as_str()),
            (
                ConditionStatus::False,
                "FilesystemIsNotReadOnly",
                "Filesystem is not read-only"
            )
        );

        let got: Vec<(&str, SystemTime)> = r
            .events
            .iter()
            .map(|e| (e.reason.as_str(), e.timestamp))
            .collect();
        assert_eq!(
            got,
            vec![
                ("TaskHung", t(810)),
                ("TaskHung", t(820)),
                ("PodOOMKilling", t(850))
            ]
        );
        let oom = r.events[2].oom.as_ref().expect("OOM attributed");
        assert_eq!(oom.pod_uid.as_deref(), Some(UID));
        assert_eq!((oom.task.as_str(), oom.pid), ("python3", 4242));
        assert_eq!(r.events_omitted, 0);
    }

    #[test]
    fn a_wider_window_sees_the_remount() {
        let c = defaults();
        let r = scan(&c, fixture(), Some(t(0)), t(1000));
        let ro = r
            .conditions
            .iter()
            .find(|c| c.condition == "ReadonlyFilesystem")
            .unwrap();
        assert_eq!(ro.status, ConditionStatus::True);
        assert_eq!(ro.reason, "FilesystemIsReadOnly");
        assert_eq!(ro.transition, t(200));
        assert_eq!(r.events.len(), 4, "{:?}", r.events);
    }

    #[test]
    fn no_lookback_reads_nothing_and_reports_healthy_defaults() {
        let json = r#"{"plugin":"kmsg","source":"k","conditions":[{"type":"KernelDeadlock","reason":"KernelHasNoDeadlock","message":"fine"}],
            "rules":[{"type":"permanent","condition":"KernelDeadlock","reason":"DockerHung","pattern":"task docker:\\w+ blocked"}]}"#;
        let c = MonitorConfig::parse("t.json", json.as_bytes()).unwrap();
        assert_eq!(window_start(&c, t(1000), t(0)), None);
        let r = scan(&c, fixture(), None, t(1000));
        assert_eq!(r.records, 0);
        assert_eq!(r.conditions[0].status, ConditionStatus::False);
        assert!(r.events.is_empty());
    }

    #[test]
    fn clear_after_applies_at_the_end_of_the_window() {
        let json = r#"{"plugin":"kmsg","source":"k","lookback":"1h",
            "conditions":[{"type":"ReadonlyFilesystem","reason":"FilesystemIsNotReadOnly","message":"ok","clearAfter":"100s"}],
            "rules":[{"type":"permanent","condition":"ReadonlyFilesystem","reason":"FilesystemIsReadOnly","pattern":"Remounting filesystem read-only"}]}"#;
        let c = MonitorConfig::parse("t.json", json.as_bytes()).unwrap();
        let lines = vec![rec(t(500), "Remounting filesystem read-only")];
        let recent = scan(&c, lines.clone(), Some(t(0)), t(550));
        assert_eq!(recent.conditions[0].status, ConditionStatus::True);
        let quiet = scan(&c, lines, Some(t(0)), t(650));
        assert_eq!(quiet.conditions[0].status, ConditionStatus::False);
        assert_eq!(quiet.conditions[0].reason, "FilesystemIsNotReadOnly");
    }

    #[test]
    fn the_newest_events_are_kept_and_the_rest_counted() {
        let c = defaults();
        let lines: Vec<Record> = (0..MAX_EVENTS as u64 + 7)
            .map(|i| {
                rec(
                    t(i),
                    &format!("INFO: task w{i}:1 blocked for more than 120 seconds."),
                )
            })
            .collect();
        let r = scan(&c, lines, Some(t(0)), t(10_000));
        assert_eq!(r.events.len(), MAX_EVENTS);
        assert_eq!(r.events_omitted, 7);
        assert!(
            r.events[0].message.contains("task w7:1"),
            "{:?}",
            r.events[0]
        );
        assert!(r.events[MAX_EVENTS - 1]
            .message
            .contains(&format!("task w{}:1", MAX_EVENTS + 6)));
    }

    #[test]
    fn an_unreadable_kernel_log_makes_the_conditions_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ScanOptions {
            host: HostPaths::new(dir.path()),
            kmsg_path: Some(dir.path().join("missing/kmsg")),
        };
        let s = scan_monitor(&defaults(), &opts);
        // without /dev/kmsg the ring through syslog(2) is tried: as root it is read
        if s.backend == Backend::Syslog {
            assert!(s.problem.is_none(), "{s:?}");
            assert_eq!(s.location, "syslog(2)");
            return;
        }
        assert_eq!(s.backend, Backend::None);
        let p = s.problem.as_deref().unwrap();
        assert!(
            p.contains("missing/kmsg") && p.ends_with(kmsg::KERNEL_LOG_GRANT),
            "{p}"
        );
        for c in &s.result.conditions {
            assert_eq!(c.status, ConditionStatus::Unknown);
            assert_eq!(c.reason, driver::LOG_SOURCE_UNAVAILABLE);
        }
    }

    #[cfg(feature = "journald")]
    #[test]
    fn an_unreadable_journal_makes_the_conditions_unknown() {
        let json = r#"{"plugin":"journald","pluginConfig":{"source":"kubelet"},"logPath":"/var/log/journal",
            "lookback":"5m","source":"kubelet-monitor",
            "conditions":[{"type":"KubeletStuck","reason":"KubeletIsFine","message":"fine"}],
            "rules":[{"type":"permanent","condition":"KubeletStuck","reason":"Stuck","pattern":"stuck"}]}"#;
        let c = MonitorConfig::parse("t.json", json.as_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // an empty journal directory (a node whose journal is volatile)
        std::fs::create_dir_all(dir.path().join("var/log/journal")).unwrap();
        let opts = ScanOptions {
            host: HostPaths::new(dir.path()),
            kmsg_path: None,
        };
        let s = scan_monitor(&c, &opts);
        assert_eq!(s.backend, Backend::None);
        let p = s.problem.as_deref().unwrap();
        assert!(
            p.starts_with("no journal files in ") && p.ends_with("var/log/journal"),
            "{p}"
        );
        let cond = &s.result.conditions[0];
        assert_eq!(cond.status, ConditionStatus::Unknown);
        assert_eq!(cond.reason, driver::LOG_SOURCE_UNAVAILABLE);
        assert_eq!(cond.message, p);
    }

    #[test]
    fn file_logs_are_skipped_not_failed() {
        let json = r#"{"plugin":"filelog","pluginConfig":{"timestamp":"^.{15}","message":"kernel: \\[.*\\] (.*)","timestampFormat":"Jan _2 15:04:05"},
            "logPath":"/var/log/kern.log","lookback":"5m","source":"f","conditions":[],"rules":[]}"#;
        let c = MonitorConfig::parse("t.json", json.as_bytes()).unwrap();
        let opts = ScanOptions {
            host: HostPaths::new("/nonexistent"),
            kmsg_path: None,
        };
        let s = scan_monitor(&c, &opts);
        assert!(s.skipped, "{s:?}");
        assert!(s.problem.unwrap().contains("filelog"));
    }
}
