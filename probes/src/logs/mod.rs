//! Log monitors: NPD-compatible system-log-monitor rules over the kernel log.
//!
//! * [`rules`]: loading and validating NPD rule files ([`MonitorConfig::load`]).
//! * [`engine`]: NPD's buffer matching semantics, compiled once, with a prefilter.
//! * [`kmsg`]: `/dev/kmsg` records and ring-overrun accounting.
//! * [`cursor`]: per-boot state (kmsg cursor, log-based conditions) in the state directory.
//! * [`oom`]: OOM kill attribution (pod UID, container ID).
//!
//! [`spawn_monitors`] runs one task per monitor and sends every [`LogFinding`] into a
//! bounded channel. At start each monitor first sends one [`ConditionUpdate`] per declared
//! condition with its current state (restored from the state directory in the same boot,
//! otherwise `False` with the declared reason), then findings as lines match.
//!
//! Sources: `kmsg` ([`kmsg`]), `journald` ([`journald`], default-on `journald` cargo
//! feature) and `filelog` ([`filelog`]). [`spawn_monitors`] skips a journald monitor whose
//! journal directory is missing (NPD fails to start it) and lists it in
//! [`Monitors::skipped`].

pub mod cursor;
pub mod engine;
pub mod filelog;
#[cfg(feature = "journald")]
pub mod journald;
pub mod kmsg;
pub mod oom;
pub mod rules;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::findings::{ConditionUpdate, LogFinding, MonitorEvent};
use crate::{ConditionStatus, HostPaths};
pub use engine::{Line, LogBuffer, RuleMatch, RuleSet};
pub use rules::{ConditionDecl, MonitorConfig, Plugin, RuleDecl, RuleType, RulesError};

/// Default state directory (`--state-dir`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nodeprobe";

/// Command-line settings of the log monitors (flattened into the agent's CLI).
#[derive(Debug, Clone, clap::Args)]
pub struct LogMonitorArgs {
    /// System-log-monitor rule files (NPD JSON), comma-separated. Default: the built-in
    /// kernel-monitor and docker-monitor rules. NPD's spelling is accepted.
    #[arg(
        id = "log-monitors",
        long = "log-monitors",
        visible_alias = "config.system-log-monitor",
        env = "NODEPROBE_LOG_MONITORS",
        value_delimiter = ',',
        global = true
    )]
    pub log_monitors: Vec<PathBuf>,

    /// Directory for the agent's state (kmsg cursor, log-based conditions).
    #[arg(
        id = "state-dir",
        long = "state-dir",
        env = "NODEPROBE_STATE_DIR",
        default_value = DEFAULT_STATE_DIR,
        global = true
    )]
    pub state_dir: PathBuf,

    /// Kernel log device to read; default `<host-root>/dev/kmsg`.
    #[arg(
        id = "kmsg-path",
        long = "kmsg-path",
        env = "NODEPROBE_KMSG_PATH",
        global = true
    )]
    pub kmsg_path: Option<PathBuf>,
}

impl LogMonitorArgs {
    /// The configured rule files, or the built-in defaults when none is given.
    pub fn load_configs(&self) -> Result<Vec<MonitorConfig>, RulesError> {
        if self.log_monitors.is_empty() {
            MonitorConfig::defaults()
        } else {
            let mut seen = Vec::new();
            let mut out = Vec::new();
            for p in &self.log_monitors {
                if seen.contains(p) {
                    continue; // NPD skips duplicate paths
                }
                seen.push(p.clone());
                out.push(MonitorConfig::load(p)?);
            }
            Ok(out)
        }
    }

    pub fn options(&self) -> MonitorOptions {
        MonitorOptions {
            state_dir: self.state_dir.clone(),
            kmsg_path: self.kmsg_path.clone(),
        }
    }
}

/// Where monitors keep state and read the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOptions {
    pub state_dir: PathBuf,
    /// Override of `<host-root>/dev/kmsg`.
    pub kmsg_path: Option<PathBuf>,
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

/// Wait up to `d` in a blocking monitor thread, waking at once when shutdown is requested
/// (or its sender is gone). Returns true when the monitor should stop. One timed wait, not a
/// polling loop, so an idle monitor wakes only once per `d`.
pub(crate) fn pause(shutdown: &watch::Receiver<bool>, d: Duration) -> bool {
    let mut rx = shutdown.clone();
    if *rx.borrow_and_update() {
        return true;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            if let Ok(Err(_)) = h.block_on(tokio::time::timeout(d, rx.changed())) {
                return true; // sender gone
            }
        }
        Err(_) => std::thread::sleep(d),
    }
    let stop = *rx.borrow();
    stop
}

/// Why monitors could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log monitors need a tokio runtime")]
    NoRuntime,
    #[error("{monitor}: cannot open kernel log {path}: {source}")]
    Open {
        monitor: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{monitor}: cannot start the monitor thread: {source}")]
    Thread {
        monitor: String,
        #[source]
        source: std::io::Error,
    },
}

/// Counters of one monitor, for metrics.
#[derive(Debug)]
pub struct MonitorStats {
    /// The monitor's `source`.
    pub source: String,
    /// Records read from the log.
    pub records_read: AtomicU64,
    /// Records lost: overwritten in the ring before being read (`EPIPE`), or gone from the
    /// ring while the agent was down.
    pub records_lost: AtomicU64,
    /// Ring overruns (`EPIPE` reads).
    pub overruns: AtomicU64,
    /// Rule matches (events and condition matches).
    pub matches: AtomicU64,
    /// Records that could not be parsed.
    pub parse_errors: AtomicU64,
    /// Failed state reads/writes.
    pub state_errors: AtomicU64,
    /// Read errors other than overruns.
    pub read_errors: AtomicU64,
    /// The monitor's task is running.
    pub running: AtomicBool,
    /// The monitor has positioned itself in its log and sent its initial conditions:
    /// lines written from now on will be seen.
    pub ready: AtomicBool,
}

impl MonitorStats {
    pub fn new(source: impl Into<String>) -> Self {
        MonitorStats {
            source: source.into(),
            records_read: AtomicU64::new(0),
            records_lost: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            parse_errors: AtomicU64::new(0),
            state_errors: AtomicU64::new(0),
            read_errors: AtomicU64::new(0),
            running: AtomicBool::new(false),
            ready: AtomicBool::new(false),
        }
    }
}

/// Running monitors.
#[derive(Debug)]
pub struct Monitors {
    /// One entry per running monitor.
    pub stats: Vec<Arc<MonitorStats>>,
    /// Monitors not started: (origin, why).
    pub skipped: Vec<(String, String)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Monitors that block (journald, filelog) run on their own threads, not in the
    /// runtime's small blocking pool, which they would hold for the agent's lifetime.
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How long [`Monitors::shutdown`] waits for monitor threads.
const THREAD_STOP_WAIT: Duration = Duration::from_secs(5);

impl Monitors {
    /// Stop every monitor, persisting its state first. Waits at most a few seconds for
    /// monitor threads; one still busy after that is left behind (and logged).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = Instant::now() + THREAD_STOP_WAIT;
        for t in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!(
                    thread = t.thread().name().unwrap_or("?"),
                    "a log monitor thread did not stop in time"
                );
            }
        }
    }
}

/// Start a blocking monitor on its own named thread, inside the runtime's context (its
/// waits and channel sends use the runtime's timers).
fn spawn_thread(
    name: &str,
    origin: &str,
    run: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, LogError> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| LogError::NoRuntime)?;
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _context = handle.enter();
            run()
        })
        .map_err(|source| LogError::Thread {
            monitor: origin.to_string(),
            source,
        })
}

/// Log-based conditions of one monitor (permanent rules), scoped to one boot.
#[derive(Debug, Clone)]
pub struct ConditionTracker {
    source: String,
    conds: Vec<TrackedCondition>,
}

#[derive(Debug, Clone)]
struct TrackedCondition {
    decl: ConditionDecl,
    status: ConditionStatus,
    reason: String,
    message: String,
    transition: SystemTime,
    last_match: Option<SystemTime>,
}

impl TrackedCondition {
    fn update(&self, source: &str) -> ConditionUpdate {
        ConditionUpdate {
            source: source.to_string(),
            condition: self.decl.condition.clone(),
            status: self.status,
            reason: self.reason.clone(),
            message: self.message.clone(),
            transition: self.transition,
        }
    }
}

impl ConditionTracker {
    /// Every declared condition `False` with its declared reason and message.
    pub fn new(source: &str, decls: &[ConditionDecl], now: SystemTime) -> Self {
        ConditionTracker {
            source: source.to_string(),
            conds: decls
                .iter()
                .map(|d| TrackedCondition {
                    decl: d.clone(),
                    status: ConditionStatus::False,
                    reason: d.reason.clone(),
                    message: d.message.clone(),
                    transition: now,
                    last_match: None,
                })
                .collect(),
        }
    }

    /// Take over conditions saved earlier in this boot (unknown ones are ignored).
    pub fn restore(&mut self, saved: &[cursor::SavedCondition]) {
        for s in saved {
            if let Some(c) = self
                .conds
                .iter_mut()
                .find(|c| c.decl.condition == s.condition)
            {
                c.status = if s.status == "True" {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                };
                c.reason = s.reason.clone();
                c.message = s.message.clone();
                c.transition = cursor::from_unix_ms(s.transition_unix_ms);
                c.last_match = s.last_match_unix_ms.map(cursor::from_unix_ms);
            }
        }
    }

    pub fn snapshot(&self) -> Vec<cursor::SavedCondition> {
        self.conds
            .iter()
            .map(|c| cursor::SavedCondition {
                condition: c.decl.condition.clone(),
                status: c.status.as_str().to_string(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                transition_unix_ms: cursor::to_unix_ms(c.transition),
                last_match_unix_ms: c.last_match.map(cursor::to_unix_ms),
            })
            .collect()
    }

    /// Current state of every condition.
    pub fn current(&self) -> Vec<ConditionUpdate> {
        self.conds.iter().map(|c| c.update(&self.source)).collect()
    }

    /// A permanent rule matched (NPD §2.5): a change of status or reason sets the message
    /// and the transition (first matched line's time) and is reported; a repeat with the
    /// same reason only refreshes the quiet-period clock.
    pub fn on_match(
        &mut self,
        condition: &str,
        reason: &str,
        message: &str,
        at: SystemTime,
    ) -> Option<ConditionUpdate> {
        let c = self
            .conds
            .iter_mut()
            .find(|c| c.decl.condition == condition)?;
        c.last_match = Some(c.last_match.map_or(at, |t| t.max(at)));
        if c.status == ConditionStatus::True && c.reason == reason {
            return None;
        }
        c.status = ConditionStatus::True;
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.transition = at;
        Some(c.update(&self.source))
    }

    /// Clear conditions whose `clearAfter` quiet period has passed.
    pub fn expire(&mut self, now: SystemTime) -> Vec<ConditionUpdate> {
        let mut out = Vec::new();
        for c in &mut self.conds {
            let (Some(after), ConditionStatus::True) = (c.decl.clear_after, c.status) else {
                continue;
            };
            let last = c.last_match.unwrap_or(c.transition);
            if now.duration_since(last).unwrap_or_default() >= after {
                c.status = ConditionStatus::False;
                c.reason = c.decl.reason.clone();
                c.message = c.decl.message.clone();
                c.transition = now;
                c.last_match = None;
                out.push(c.update(&self.source));
            }
        }
        out
    }

    /// Shortest `clearAfter` of a condition that is `True` (when to look again).
    pub fn next_expiry_check(&self) -> Option<Duration> {
        self.conds
            .iter()
            .filter(|c| c.status == ConditionStatus::True)
            .filter_map(|c| c.decl.clear_after)
            .min()
    }
}

/// The matching half of a monitor: buffer, rules, conditions. Pure and synchronous.
#[derive(Debug)]
pub struct Matcher {
    config: MonitorConfig,
    buffer: LogBuffer,
    pub conditions: ConditionTracker,
    stats: Arc<MonitorStats>,
}

impl Matcher {
    pub fn new(config: MonitorConfig, stats: Arc<MonitorStats>, now: SystemTime) -> Self {
        Matcher {
            buffer: LogBuffer::new(Arc::clone(&config.ruleset)),
            conditions: ConditionTracker::new(&config.source, &config.conditions, now),
            config,
            stats,
        }
    }

    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Push one log line (trimmed like NPD; empty lines are dropped) and return what it
    /// produced, plus the raw matches (for `rules test`).
    pub fn push(&mut self, message: &str, at: SystemTime) -> (Vec<LogFinding>, Vec<RuleMatch>) {
        let message = message.trim();
        if message.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let matches = self.buffer.push(Line {
            message: message.to_string(),
            timestamp: at,
        });
        let mut out = Vec::new();
        for m in &matches {
            self.stats.matches.fetch_add(1, Ordering::Relaxed);
            let rule = &self.config.rules[m.rule];
            match rule.kind {
                RuleType::Temporary => out.push(LogFinding::Event(MonitorEvent {
                    source: self.config.source.clone(),
                    reason: rule.reason.clone(),
                    message: m.message.clone(),
                    timestamp: m.timestamp,
                    oom: oom::parse_oom_kill(&m.message),
                })),
                RuleType::Permanent => {
                    if let Some(u) = self.conditions.on_match(
                        &rule.condition,
                        &rule.reason,
                        &m.message,
                        m.timestamp,
                    ) {
                        out.push(LogFinding::Condition(u));
                    }
                }
            }
        }
        (out, matches)
    }
}

/// Start every monitor. Must be called inside a tokio runtime. Monitors whose source is
/// not available in this build (journald, filelog) are skipped and listed.
pub fn spawn_monitors(
    host: HostPaths,
    configs: Vec<MonitorConfig>,
    options: MonitorOptions,
    tx: mpsc::Sender<LogFinding>,
) -> Result<Monitors, LogError> {
    tokio::runtime::Handle::try_current().map_err(|_| LogError::NoRuntime)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut monitors = Monitors {
        stats: Vec::new(),
        skipped: Vec::new(),
        shutdown,
        tasks: Vec::new(),
        threads: Vec::new(),
    };
    let mut used_state_files: Vec<PathBuf> = Vec::new();
    let mut kmsg_tasks = Vec::new();
    let mut used_state = |plugin: &str, source: &str| {
        let mut p = cursor::state_file(&options.state_dir, plugin, source);
        let mut n = 2;
        while used_state_files.contains(&p) {
            p = cursor::state_file(&options.state_dir, plugin, &format!("{source}-{n}"));
            n += 1;
        }
        used_state_files.push(p.clone());
        p
    };
    #[cfg(feature = "journald")]
    let mut journal_tasks = Vec::new();
    let mut file_tasks = Vec::new();
    for config in configs {
        if config.plugin == Plugin::Filelog {
            let Some(log_path) = config.log_path.clone() else {
                continue; // rejected at load
            };
            let translator = match filelog::Translator::from_plugin_config(&config.plugin_config) {
                Ok(t) => t,
                Err(e) => {
                    monitors
                        .skipped
                        .push((config.origin.clone(), e.to_string()));
                    continue;
                }
            };
            let stats = Arc::new(MonitorStats::new(config.source.clone()));
            monitors.stats.push(Arc::clone(&stats));
            file_tasks.push(filelog::FileMonitor {
                path: host.path(&log_path),
                translator,
                boot_id: read_boot_id(&host.proc().join("sys/kernel/random/boot_id")),
                boot: boot_time(SystemTime::now()),
                state_path: used_state("filelog", &config.source),
                config,
                stats,
                tx: tx.clone(),
                shutdown: shutdown_rx.clone(),
            });
            continue;
        }
        #[cfg(feature = "journald")]
        if config.plugin == Plugin::Journald {
            let dir = host.path(config.log_path.as_deref().unwrap_or("/var/log/journal"));
            if !dir.is_dir() {
                let why = format!(
                    "journal directory {} does not exist; monitor {:?} not started",
                    dir.display(),
                    config.source
                );
                tracing::warn!(origin = %config.origin, "{why}");
                monitors.skipped.push((config.origin.clone(), why));
                continue;
            }
            let stats = Arc::new(MonitorStats::new(config.source.clone()));
            monitors.stats.push(Arc::clone(&stats));
            journal_tasks.push(journald::JournalMonitor {
                dir,
                identifier: config
                    .plugin_config
                    .get("source")
                    .cloned()
                    .unwrap_or_default(),
                boot_id: read_boot_id(&host.proc().join("sys/kernel/random/boot_id")),
                boot: boot_time(SystemTime::now()),
                state_path: used_state("journald", &config.source),
                config,
                stats,
                tx: tx.clone(),
                shutdown: shutdown_rx.clone(),
            });
            continue;
        }
        if config.plugin != Plugin::Kmsg {
            let why = format!(
                "the {} source is not implemented in this build; monitor {:?} not started",
                config.plugin.as_str(),
                config.source
            );
            tracing::warn!(origin = %config.origin, "{why}");
            monitors.skipped.push((config.origin.clone(), why));
            continue;
        }
        let kmsg_path = options
            .kmsg_path
            .clone()
            .unwrap_or_else(|| host.dev().join("kmsg"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&kmsg_path)
            .map_err(|source| LogError::Open {
                monitor: config.origin.clone(),
                path: kmsg_path.display().to_string(),
                source,
            })?;
        let state_path = used_state("kmsg", &config.source);
        let stats = Arc::new(MonitorStats::new(config.source.clone()));
        monitors.stats.push(Arc::clone(&stats));
        kmsg_tasks.push(KmsgMonitor {
            boot_id_path: host.proc().join("sys/kernel/random/boot_id"),
            kmsg_path,
            file,
            state_path,
            config,
            stats,
            tx: tx.clone(),
            shutdown: shutdown_rx.clone(),
        });
    }
    for m in kmsg_tasks {
        monitors.tasks.push(tokio::spawn(m.run()));
    }
    for (i, m) in file_tasks.into_iter().enumerate() {
        let origin = m.config.origin.clone();
        let t = spawn_thread(&format!("filelog-{i}"), &origin, move || m.run())?;
        monitors.threads.push(t);
    }
    #[cfg(feature = "journald")]
    for (i, m) in journal_tasks.into_iter().enumerate() {
        let origin = m.config.origin.clone();
        let t = spawn_thread(&format!("journald-{i}"), &origin, move || m.run())?;
        monitors.threads.push(t);
    }
    Ok(monitors)
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Same boot, state present: everything after this sequence number.
    AfterSeq(u64),
    /// New boot or no state: records not older than this (lookback / delay).
    Since(SystemTime),
    /// No lookback: only records written from now on.
    End,
}

struct KmsgMonitor {
    boot_id_path: PathBuf,
    kmsg_path: PathBuf,
    file: std::fs::File,
    state_path: PathBuf,
    config: MonitorConfig,
    stats: Arc<MonitorStats>,
    tx: mpsc::Sender<LogFinding>,
    shutdown: watch::Receiver<bool>,
}

/// Read (and drop) every record available now on a non-blocking kmsg fd; the last
/// sequence number seen.
fn skip_existing(mut file: &std::fs::File, buf: &mut [u8]) -> Option<u64> {
    use std::io::Read;
    let mut last = None;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Ok(r) = kmsg::parse_record(&buf[..n]) {
                    last = Some(r.seq);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::warn!(error = %e, "reading the kernel log failed");
                break;
            }
        }
    }
    last
}

/// The host's boot id; `None` (state is then not persisted) when it cannot be read.
fn read_boot_id(path: &Path) -> Option<String> {
    match HostPaths::read_trimmed(path) {
        Ok(id) if !id.is_empty() => Some(id),
        other => {
            tracing::warn!(path = %path.display(), result = ?other.err(),
                "cannot read the boot id; log cursor and condition state are not persisted");
            None
        }
    }
}

/// Realtime clock at boot, as the kernel's kmsg timestamps count from it.
fn boot_time(now: SystemTime) -> SystemTime {
    let since_boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec().max(0) as u64, t.tv_nsec().max(0) as u32))
        .unwrap_or_default();
    now.checked_sub(since_boot)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

struct Persist {
    path: PathBuf,
    boot_id: Option<String>,
    last_write: Instant,
    warned: bool,
    dirty: bool,
    /// Journal cursor (journald monitors).
    journal_cursor: Option<String>,
    /// Inode and offset (filelog monitors).
    file: Option<(u64, u64)>,
}

impl Persist {
    fn save(&mut self, stats: &MonitorStats, last_seq: Option<u64>, tracker: &ConditionTracker) {
        let Some(boot_id) = self.boot_id.clone() else {
            return;
        };
        let state = cursor::MonitorState {
            version: cursor::STATE_VERSION,
            boot_id,
            last_seq,
            conditions: tracker.snapshot(),
            journal_cursor: self.journal_cursor.clone(),
            file_inode: self.file.map(|f| f.0),
            file_offset: self.file.map(|f| f.1),
        };
        self.last_write = Instant::now();
        self.dirty = false;
        if let Err(e) = cursor::save(&self.path, &state) {
            stats.state_errors.fetch_add(1, Ordering::Relaxed);
            if !self.warned {
                self.warned = true;
                tracing::warn!(error = %e, "cannot persist log monitor state; a restart may replay or miss lines (logged once)");
            }
        }
    }
}

impl KmsgMonitor {
    async fn run(mut self) {
        self.stats.running.store(true, Ordering::Relaxed);
        let now = SystemTime::now();
        let boot = boot_time(now);
        let boot_id = read_boot_id(&self.boot_id_path);
        let saved = load_state(&self.state_path, &self.stats, boot_id.as_deref());
        let source = self.config.source.clone();
        let mut matcher = Matcher::new(self.config.clone(), Arc::clone(&self.stats), now);
        let mut decoder = kmsg::KmsgDecoder::new(Arc::clone(&self.stats));
        let start = match &saved {
            Some(s) => {
                matcher.conditions.restore(&s.conditions);
                match s.last_seq {
                    Some(seq) => Start::AfterSeq(seq),
                    None => Start::End,
                }
            }
            None if self.config.lookback.is_zero() => Start::End,
            None => {
                let mut since = now.checked_sub(self.config.lookback).unwrap_or(boot);
                let after_delay = boot + self.config.delay.unwrap_or_default();
                if since < after_delay {
                    since = after_delay;
                }
                Start::Since(since)
            }
        };
        let mut buf = vec![0u8; kmsg::READ_BUF];
        // No lookback: skip what is in the ring now, but learn its last sequence number so
        // that the cursor is meaningful from the start (a restart then resumes exactly).
        let start = if start == Start::End {
            match skip_existing(&self.file, &mut buf) {
                Some(seq) => Start::AfterSeq(seq),
                None => Start::End,
            }
        } else {
            start
        };
        if let Start::AfterSeq(seq) = start {
            decoder.resume_after(seq);
        }
        tracing::info!(monitor = %source, start = ?start, state = %self.state_path.display(), "kernel log monitor started");
        let mut persist = Persist {
            path: self.state_path.clone(),
            boot_id,
            last_write: Instant::now(),
            warned: false,
            dirty: true,
            journal_cursor: None,
            file: None,
        };
        for u in matcher.conditions.current() {
            if self.tx.send(LogFinding::Condition(u)).await.is_err() {
                return;
            }
        }
        let afd = match crate::sys::async_fd_readable(self.file) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(path = %self.kmsg_path.display(), error = %e, "kernel log cannot be polled; monitor stopped");
                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.running.store(false, Ordering::Relaxed);
                return;
            }
        };
        self.stats.ready.store(true, Ordering::Relaxed);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut processed_seq = match start {
            Start::AfterSeq(s) => Some(s),
            _ => None,
        };
        'outer: loop {
            tokio::select! {
                _ = self.shutdown.changed() => break 'outer,
                _ = tick.tick() => {
                    let cleared = matcher.conditions.expire(SystemTime::now());
                    if !cleared.is_empty() {
                        persist.save(&self.stats, processed_seq, &matcher.conditions);
                        for u in cleared {
                            if self.tx.send(LogFinding::Condition(u)).await.is_err() {
                                break 'outer;
                            }
                        }
                    } else if persist.dirty {
                        persist.save(&self.stats, processed_seq, &matcher.conditions);
                    }
                }
                ready = afd.readable() => {
                    let mut guard = match ready {
                        Ok(g) => g,
                        Err(e) => {
                            tracing::error!(error = %e, "polling the kernel log failed; monitor stopped");
                            self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                            break 'outer;
                        }
                    };
                    // drain what is there, a bounded batch at a time
                    for _ in 0..4096 {
                        let res = guard.try_io(|fd| {
                            use std::io::Read;
                            fd.get_ref().read(&mut buf)
                        });
                        let ev = match res {
                            Err(_would_block) => break,
                            Ok(Ok(0)) => break,
                            Ok(Ok(n)) => decoder.on_bytes(&buf[..n]),
                            Ok(Err(e)) if e.raw_os_error() == Some(libc::EPIPE) => decoder.on_overrun(),
                            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Ok(Err(e)) => {
                                self.stats.read_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %e, "reading the kernel log failed; retrying in 5s");
                                drop(guard);
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                continue 'outer;
                            }
                        };
                        let kmsg::ReadEvent::Record(rec) = ev else { continue };
                        match start {
                            Start::AfterSeq(s) if rec.seq <= s => continue,
                            _ => {}
                        }
                        let at = boot + Duration::from_micros(rec.usec);
                        processed_seq = Some(rec.seq);
                        persist.dirty = true;
                        if let Start::Since(since) = start {
                            if at < since {
                                continue;
                            }
                        }
                        let (findings, _) = matcher.push(&rec.message, at);
                        if !findings.is_empty() {
                            // persist first: a restart never reports these again
                            persist.save(&self.stats, processed_seq, &matcher.conditions);
                            for f in findings {
                                if self.tx.send(f).await.is_err() {
                                    break 'outer;
                                }
                            }
                        }
                    }
                    if persist.dirty && persist.last_write.elapsed() >= Duration::from_secs(1) {
                        persist.save(&self.stats, processed_seq, &matcher.conditions);
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        persist.save(&self.stats, processed_seq, &matcher.conditions);
        self.stats.running.store(false, Ordering::Relaxed);
        tracing::info!(monitor = %source, "kernel log monitor stopped");
    }
}

/// Parse a line of a kernel log file for offline replay (`rules test --format kmsg`):
/// a raw record (`PRI,SEQ,USEC,FLAGS;msg`), `dmesg -r` (`<PRI>[ secs] msg`) or
/// `dmesg` (`[ secs] msg`) form. Returns the message and, when given, seconds since boot.
pub fn parse_kernel_log_line(line: &str) -> (String, Option<f64>) {
    if let Ok(r) = kmsg::parse_record(line.as_bytes()) {
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

/// Strip a classic syslog header (`Mon DD HH:MM:SS host ident[pid]: `) for
/// `rules test --format syslog`; lines without one are returned unchanged.
pub fn strip_syslog_header(line: &str) -> &str {
    let b = line.as_bytes();
    // "Jan  2 15:04:05 " is 16 bytes
    if b.len() > 16 && b[3] == b' ' && b[9] == b':' && b[12] == b':' && b[15] == b' ' {
        let rest = &line[16..];
        if let Some(sp) = rest.find(' ') {
            let after_host = &rest[sp + 1..];
            if let Some(colon) = after_host.find(": ") {
                if !after_host[..colon].contains(' ') {
                    return &after_host[colon + 2..];
                }
            }
            return after_host;
        }
    }
    line
}

/// Read the state directory's path for a kmsg monitor (for operators and tests).
pub fn kmsg_state_file(state_dir: &Path, source: &str) -> PathBuf {
    cursor::state_file(state_dir, "kmsg", source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn config(json: &str) -> MonitorConfig {
        MonitorConfig::parse("test.json", json.as_bytes()).unwrap()
    }

    const RO: &str = r#"{"plugin":"kmsg","source":"kernel-monitor","bufferSize":10,
        "conditions":[{"type":"ReadonlyFilesystem","reason":"FilesystemIsNotReadOnly","message":"Filesystem is not read-only","clearAfter":"10s"}],
        "rules":[{"type":"permanent","condition":"ReadonlyFilesystem","reason":"FilesystemIsReadOnly","pattern":"Remounting filesystem read-only"},
                 {"type":"permanent","condition":"ReadonlyFilesystem","reason":"OtherReason","pattern":"other ro"},
                 {"type":"temporary","reason":"PodOOMKilling","pattern":"oom-kill:.*,task_memcg=/kubepods[./].*"}]}"#;

    #[test]
    fn permanent_rules_follow_npd_and_clear_after_quiet_period() {
        let stats = Arc::new(MonitorStats::new("k"));
        let mut m = Matcher::new(config(RO), stats.clone(), t(0));
        let init = m.conditions.current();
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].status, ConditionStatus::False);
        assert_eq!(init[0].reason, "FilesystemIsNotReadOnly");

        let (f, _) = m.push("EXT4-fs (sda1): Remounting filesystem read-only", t(100));
        let LogFinding::Condition(u) = &f[0] else {
            panic!("{f:?}")
        };
        assert_eq!(
            (u.status, u.reason.as_str(), u.transition),
            (ConditionStatus::True, "FilesystemIsReadOnly", t(100))
        );
        // same reason again: nothing new, transition kept
        assert!(m
            .push("Remounting filesystem read-only", t(105))
            .0
            .is_empty());
        // other reason: a change
        assert_eq!(m.push("other ro", t(106)).0.len(), 1);
        // not quiet long enough yet
        assert!(m.conditions.expire(t(110)).is_empty());
        let cleared = m.conditions.expire(t(116));
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].status, ConditionStatus::False);
        assert_eq!(cleared[0].reason, "FilesystemIsNotReadOnly");
        assert_eq!(cleared[0].transition, t(116));
        assert_eq!(stats.matches.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn conditions_survive_a_restart_via_snapshot() {
        let mut m = Matcher::new(config(RO), Arc::new(MonitorStats::new("k")), t(0));
        m.push("Remounting filesystem read-only", t(100));
        let saved = m.conditions.snapshot();
        let mut again = Matcher::new(config(RO), Arc::new(MonitorStats::new("k")), t(500));
        again.conditions.restore(&saved);
        let cur = again.conditions.current();
        assert_eq!(cur[0].status, ConditionStatus::True);
        assert_eq!(cur[0].reason, "FilesystemIsReadOnly");
        assert_eq!(cur[0].transition, t(100));
        // same line again after restart: no change reported
        assert!(again
            .push("Remounting filesystem read-only", t(501))
            .0
            .is_empty());
    }

    #[test]
    fn oom_events_carry_attribution() {
        let mut m = Matcher::new(config(RO), Arc::new(MonitorStats::new("k")), t(0));
        let uid = "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab";
        let cid = "ab".repeat(32);
        let line = format!("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod{uid}/{cid},task_memcg=/kubepods/burstable/pod{uid}/{cid},task=python3,pid=4242,uid=0");
        let (f, _) = m.push(&line, t(1));
        let LogFinding::Event(e) = &f[0] else {
            panic!("{f:?}")
        };
        assert_eq!(e.reason, "PodOOMKilling");
        let o = e.oom.as_ref().unwrap();
        assert_eq!(o.pod_uid.as_deref(), Some(uid));
        assert_eq!(o.container_id.as_deref(), Some(cid.as_str()));
        assert_eq!((o.task.as_str(), o.pid), ("python3", 4242));
    }

    #[test]
    fn offline_line_formats() {
        assert_eq!(
            parse_kernel_log_line("4,441,925896295,-;hello"),
            ("hello".to_string(), Some(925.896295))
        );
        assert_eq!(
            parse_kernel_log_line("<6>[   12.500000] eth0: up"),
            ("eth0: up".to_string(), Some(12.5))
        );
        assert_eq!(
            parse_kernel_log_line("[12.5] x"),
            ("x".to_string(), Some(12.5))
        );
        assert_eq!(parse_kernel_log_line("plain"), ("plain".to_string(), None));
        // found by fuzzing (log_line): no negative, infinite or exponent timestamps
        for odd in [
            "[ -0100.000000] x",
            "[inf] x",
            "[NaN] x",
            "[1e300] x",
            &format!("[{}] x", "9".repeat(400)),
        ] {
            assert_eq!(parse_kernel_log_line(odd), (odd.to_string(), None), "{odd}");
        }
        assert_eq!(
            strip_syslog_header("Nov 27 07:15:15 node1 kernel: TCP: too many orphaned sockets"),
            "TCP: too many orphaned sockets"
        );
        assert_eq!(strip_syslog_header("short"), "short");
    }
}
