//! Log monitors: NPD-compatible system-log-monitor rules over the kernel log, the journal
//! and log files.
//!
//! * [`rules`]: loading and validating NPD rule files ([`MonitorConfig::load`]).
//! * [`engine`]: NPD's buffer matching semantics, compiled once, with a prefilter.
//! * [`driver`]: the one monitor loop (initial conditions, at-least-once delivery, expiry,
//!   outages, state) over a [`LogSource`].
//! * the sources: [`kmsg`] (the kernel log: `/dev/kmsg`, or where a container's device
//!   cgroup denies it, the ring through `syslog(2)`, [`ring`]), [`journald`] (default-on
//!   `journald` cargo feature) and [`filelog`].
//! * [`cursor`]: per-boot state (position, log-based conditions) in the state directory.
//! * [`oom`]: OOM kill attribution (pod UID, container ID).
//! * [`scan`]: one pass over what a log still holds within `lookback` (`--oneshot`).
//!
//! [`spawn_monitors`] runs one thread per monitor (never the async runtime's thread: every
//! read and state write may block) and sends every finding into a bounded channel.

pub mod cursor;
pub mod driver;
pub mod engine;
pub mod filelog;
#[cfg(feature = "journald")]
pub mod journald;
pub mod kmsg;
pub mod oom;
pub mod ring;
pub mod rules;
pub mod scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::findings::{ConditionUpdate, LogFinding, LogItem, MonitorEvent};
use crate::{ConditionStatus, HostPaths};
pub use driver::{LogSource, LOG_SOURCE_UNAVAILABLE};
pub use engine::{Line, LogBuffer, RuleMatch, RuleSet};
pub use kmsg::parse_kernel_log_line;
pub use rules::{ConditionDecl, MonitorConfig, Plugin, RuleDecl, RuleType, RulesError};

/// Default state directory (`--state-dir`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nodeprobe";

/// Command-line settings of the log monitors (flattened into the agent's CLI).
#[derive(Debug, Clone, clap::Args)]
pub struct LogMonitorArgs {
    /// System-log-monitor rule files (NPD JSON), comma-separated. Default: the built-in
    /// kernel-monitor and docker-monitor rules. NPD's spellings
    /// (--config.system-log-monitor, the older --system-log-monitors) are accepted.
    #[arg(
        id = "log-monitors",
        long = "log-monitors",
        visible_aliases = ["config.system-log-monitor", "system-log-monitors"],
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

    /// How often the kernel ring is read through syslog(2) where the kernel log device
    /// cannot be opened (a container without access to /dev/kmsg).
    #[arg(
        id = "kernel-log-poll-interval",
        long = "kernel-log-poll-interval",
        env = "NODEPROBE_KERNEL_LOG_POLL_INTERVAL",
        default_value = "1s",
        value_parser = crate::parse_duration,
        global = true
    )]
    pub kernel_log_poll_interval: Duration,

    /// Also run the built-in NVIDIA Xid rules (GPU nodes): `NVRM: Xid` kernel lines become
    /// events NvidiaXID<n>Warning, and the fatal ones condition NvidiaGPUProblem with reason
    /// NvidiaXID<n>Error. Off by default: the condition would appear on every node.
    #[arg(
        id = "nvidia-xid-rules",
        long = "nvidia-xid-rules",
        env = "NODEPROBE_NVIDIA_XID_RULES",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        global = true
    )]
    pub nvidia_xid_rules: bool,
}

impl LogMonitorArgs {
    /// The configured rule files, or the built-in defaults when none is given.
    pub fn load_configs(&self) -> Result<Vec<MonitorConfig>, RulesError> {
        let mut configs = self.load_rule_files()?;
        if self.nvidia_xid_rules {
            let xid = MonitorConfig::nvidia_xid()?;
            // a rule file given for the same source replaces the built-in one
            if !configs.iter().any(|c| c.source == xid.source) {
                configs.push(xid);
            }
        }
        Ok(configs)
    }

    fn load_rule_files(&self) -> Result<Vec<MonitorConfig>, RulesError> {
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
            ring_poll: self.kernel_log_poll_interval,
        }
    }
}

/// Where monitors keep state and read the kernel log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorOptions {
    pub state_dir: PathBuf,
    /// Override of `<host-root>/dev/kmsg`.
    pub kmsg_path: Option<PathBuf>,
    /// Poll interval of the kernel ring read through `syslog(2)`.
    pub ring_poll: Duration,
}

impl MonitorOptions {
    /// Defaults with this state directory.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        MonitorOptions {
            state_dir: state_dir.into(),
            kmsg_path: None,
            ring_poll: ring::DEFAULT_POLL,
        }
    }
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
    /// What the monitor reads ([`Backend`] as a number).
    backend: AtomicU8,
    /// The source can be read now.
    up: AtomicBool,
    /// The source was readable at least once.
    ever_up: AtomicBool,
    /// Since when (ms on [`monotonic_ms`]) the source cannot be read; 0 while it can.
    down_since_ms: AtomicU64,
    /// Why the source cannot be read (last error).
    problem: Mutex<String>,
    /// Last sign of life of the monitor's loop (ms on [`monotonic_ms`]).
    heartbeat_ms: AtomicU64,
    /// Since when (ms on [`monotonic_ms`]) a state file write is under way; 0: none.
    writing_since_ms: AtomicU64,
}

/// What a monitor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Backend {
    /// Not (yet) readable.
    None = 0,
    /// `/dev/kmsg`.
    Kmsg = 1,
    /// The kernel ring through `syslog(2)`.
    Syslog = 2,
    /// The systemd journal.
    Journal = 3,
    /// A log file.
    File = 4,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::Kmsg => "kmsg",
            Backend::Syslog => "syslog",
            Backend::Journal => "journald",
            Backend::File => "filelog",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Backend::Kmsg,
            2 => Backend::Syslog,
            3 => Backend::Journal,
            4 => Backend::File,
            _ => Backend::None,
        }
    }
}

/// Milliseconds on a monotonic clock, counted from the first call in this process (never 0).
pub fn monotonic_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    epoch.elapsed().as_millis() as u64 + 1
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
            backend: AtomicU8::new(Backend::None as u8),
            up: AtomicBool::new(false),
            ever_up: AtomicBool::new(false),
            down_since_ms: AtomicU64::new(monotonic_ms()),
            problem: Mutex::new(String::new()),
            heartbeat_ms: AtomicU64::new(monotonic_ms()),
            writing_since_ms: AtomicU64::new(0),
        }
    }

    /// A state file write starts (`true`) or ends.
    pub fn writing(&self, on: bool) {
        let v = if on { monotonic_ms() } else { 0 };
        self.writing_since_ms.store(v, Ordering::Relaxed);
    }

    /// How long the state file write under way has taken (a hung state directory).
    pub fn writing_for(&self) -> Option<Duration> {
        match self.writing_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(monotonic_ms().saturating_sub(since))),
        }
    }

    pub fn set_backend(&self, b: Backend) {
        self.backend.store(b as u8, Ordering::Relaxed);
    }

    pub fn backend(&self) -> Backend {
        Backend::from_u8(self.backend.load(Ordering::Relaxed))
    }

    /// The source could (`true`) or could not be read.
    pub fn mark_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
        if up {
            self.ever_up.store(true, Ordering::Relaxed);
            self.down_since_ms.store(0, Ordering::Relaxed);
        } else {
            let _ = self.down_since_ms.compare_exchange(
                0,
                monotonic_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// The source cannot be read, and why.
    pub fn mark_down(&self, why: impl Into<String>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = why.into();
        }
        self.mark_up(false);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// How long the source has been unreadable and whether it ever was readable; `None` while
    /// it can be read.
    pub fn down_for(&self) -> Option<(Duration, bool)> {
        if self.is_up() {
            return None;
        }
        let since = self.down_since_ms.load(Ordering::Relaxed);
        let d = Duration::from_millis(monotonic_ms().saturating_sub(since));
        Some((d, self.ever_up.load(Ordering::Relaxed)))
    }

    /// The last reason the source could not be read.
    pub fn problem(&self) -> String {
        self.problem.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The monitor's loop is alive.
    pub fn beat(&self) {
        self.heartbeat_ms.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Time since the loop's last sign of life.
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(
            monotonic_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)),
        )
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
    /// One thread per monitor, not the runtime's small blocking pool, which they would
    /// hold for the agent's lifetime.
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How long [`Monitors::shutdown`] waits for monitor threads.
const THREAD_STOP_WAIT: Duration = Duration::from_secs(5);

impl Monitors {
    /// Stop every monitor, persisting its state first. Waits at most a few seconds for
    /// monitor threads; one still busy after that is left behind (and logged).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
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

/// Start every monitor on its own thread. Must be called inside a tokio runtime (the
/// threads use its timers). A monitor whose source is not available in this build
/// (journald without the cargo feature) or whose plugin configuration is invalid is skipped
/// and listed; a source that cannot be read is the monitor's business (an outage), never an
/// error here.
pub fn spawn_monitors(
    host: HostPaths,
    configs: Vec<MonitorConfig>,
    options: MonitorOptions,
    tx: mpsc::Sender<LogItem>,
) -> Result<Monitors, LogError> {
    tokio::runtime::Handle::try_current().map_err(|_| LogError::NoRuntime)?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut monitors = Monitors {
        stats: Vec::new(),
        skipped: Vec::new(),
        shutdown,
        threads: Vec::new(),
    };
    let boot_id_path = host.proc().join("sys/kernel/random/boot_id");
    let mut used_state_files: Vec<PathBuf> = Vec::new();
    for (i, config) in configs.into_iter().enumerate() {
        let stats = Arc::new(MonitorStats::new(config.source.clone()));
        let (source, kind, grant): (Box<dyn LogSource>, &str, &str) = match config.plugin {
            Plugin::Kmsg => {
                let kmsg_path = options
                    .kmsg_path
                    .clone()
                    .unwrap_or_else(|| host.dev().join("kmsg"));
                let src = kmsg::KernelSource::new(kmsg_path, options.ring_poll, Arc::clone(&stats));
                (Box::new(src), "kernel", kmsg::KERNEL_LOG_GRANT)
            }
            #[cfg(feature = "journald")]
            Plugin::Journald => {
                let dir = host.path(config.log_path.as_deref().unwrap_or("/var/log/journal"));
                let identifier = config
                    .plugin_config
                    .get("source")
                    .cloned()
                    .unwrap_or_default();
                let src = journald::JournalSource::new(dir, identifier, Arc::clone(&stats));
                (Box::new(src), "journal", "")
            }
            Plugin::Filelog => {
                let translator =
                    match filelog::Translator::from_plugin_config(&config.plugin_config) {
                        Ok(t) => t,
                        Err(e) => {
                            monitors
                                .skipped
                                .push((config.origin.clone(), e.to_string()));
                            continue;
                        }
                    };
                let Some(log_path) = config.log_path.clone() else {
                    continue; // rejected at load
                };
                let src = filelog::FileSource::new(
                    host.path(&log_path),
                    translator,
                    config.skip_list.clone(),
                    Arc::clone(&stats),
                );
                (Box::new(src), "file", "")
            }
            #[allow(unreachable_patterns)]
            other => {
                let why = format!(
                    "the {} source is not implemented in this build; monitor {:?} not started",
                    other.as_str(),
                    config.source
                );
                tracing::warn!(origin = %config.origin, "{why}");
                monitors.skipped.push((config.origin.clone(), why));
                continue;
            }
        };
        // one state file per monitor, even when two share a source name
        let mut state_path =
            cursor::state_file(&options.state_dir, config.plugin.as_str(), &config.source);
        let mut n = 2;
        while used_state_files.contains(&state_path) {
            let source = format!("{}-{n}", config.source);
            state_path = cursor::state_file(&options.state_dir, config.plugin.as_str(), &source);
            n += 1;
        }
        used_state_files.push(state_path.clone());
        monitors.stats.push(Arc::clone(&stats));
        let origin = config.origin.clone();
        let driver = driver::Driver {
            boot_id: driver::read_boot_id(&boot_id_path),
            config,
            stats,
            tx: tx.clone(),
            shutdown: shutdown_rx.clone(),
            state_path,
            grant,
            kind,
        };
        let t = spawn_thread(&format!("{kind}-log-{i}"), &origin, move || {
            driver.run(source)
        })?;
        monitors.threads.push(t);
    }
    Ok(monitors)
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
