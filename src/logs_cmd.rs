//! Log-monitor subcommands: `rules check`, `rules test` and `watch-logs`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use clap::{Subcommand, ValueEnum};
use probes::findings::{LogFinding, LogItem, OomKill};
use probes::logs::{self, LogMonitorArgs, Matcher, MonitorConfig, MonitorStats, RuleType};
use serde_json::{json, Value};

use crate::exit;

/// Subcommands (without one, nodeprobe runs its probes).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate and try out NPD system-log-monitor rule files.
    #[command(subcommand)]
    Rules(RulesCommand),

    /// Run the log monitors and print every finding (one JSON object per line with
    /// `--output json`) until SIGINT/SIGTERM. Uses --log-monitors, --state-dir,
    /// --kmsg-path and --host-root like the daemon.
    WatchLogs {
        /// Output format.
        #[arg(long, env = "NODEPROBE_WATCH_OUTPUT", value_enum, default_value_t = WatchOutput::Text)]
        output: WatchOutput,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load and validate rule files; exit 0, or 64 with errors naming file, rule and cause.
    Check {
        /// Rule files (NPD JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay log lines through rule files offline (NPD matching semantics) and print every
    /// match (line number, reason, condition, message) and a count per reason.
    /// `rules test --rules A.json[,B.json] [LOG]` or `rules test A.json [LOG]`.
    Test {
        /// Rule files (NPD JSON); repeat or comma-separate.
        #[arg(long = "rules", short = 'r', value_delimiter = ',')]
        rules: Vec<PathBuf>,
        /// Test this line instead of reading a log (repeatable; lines are pushed in order).
        #[arg(long = "line")]
        lines: Vec<String>,
        /// How to read the log's lines.
        #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
        format: LogFormat,
        /// Output format.
        #[arg(long, value_enum, default_value_t = WatchOutput::Text)]
        output: WatchOutput,
        /// `[RULE_FILE] [LOG]`: without --rules the first path is the rule file. LOG is the
        /// file to replay; `-` or absent: standard input (unless --line is given).
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchOutput {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Each line is one message.
    Plain,
    /// Raw kmsg records (`PRI,SEQ,USEC,FLAGS;msg`), `dmesg -r` or `dmesg` output.
    Kmsg,
    /// Classic syslog lines (`Mon DD HH:MM:SS host ident: msg`).
    Syslog,
}

/// Why a log subcommand failed (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum LogsCmdError {
    #[error(transparent)]
    Rules(#[from] logs::RulesError),
    #[error(transparent)]
    Monitors(#[from] logs::LogError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--host-root {0} is not a directory")]
    HostRoot(String),
    #[error("{0}")]
    Usage(String),
}

/// Run a subcommand; returns the exit code.
pub fn run(
    cmd: &Command,
    args: &LogMonitorArgs,
    host_root: &std::path::Path,
) -> Result<i32, LogsCmdError> {
    match cmd {
        Command::Rules(RulesCommand::Check { files }) => Ok(check(files)),
        Command::Rules(RulesCommand::Test {
            rules,
            lines,
            format,
            output,
            paths,
        }) => {
            let (rules, rest) = if rules.is_empty() {
                match paths.split_first() {
                    Some((r, rest)) => (vec![r.clone()], rest),
                    None => {
                        return Err(LogsCmdError::Usage(
                            "rules test needs a rule file (--rules FILE or a first PATH)".into(),
                        ))
                    }
                }
            } else {
                (rules.clone(), paths.as_slice())
            };
            if rest.len() > 1 {
                return Err(LogsCmdError::Usage(format!(
                    "rules test replays one log, got {} paths",
                    rest.len()
                )));
            }
            test(
                &rules,
                lines,
                *format,
                *output,
                rest.first().map(PathBuf::as_path),
            )
        }
        Command::WatchLogs { output } => watch(args, host_root, *output),
    }
}

fn check(files: &[PathBuf]) -> i32 {
    let mut failed = false;
    for f in files {
        // A custom-plugin file: say which native probe it maps to.
        if std::fs::read(f).is_ok_and(|b| probes::plugins::is_plugin_file(&b)) {
            match probes::plugins::load(f) {
                Ok(m) => {
                    println!("OK   {}: {}", f.display(), m.describe());
                    for n in &m.notes {
                        println!("NOTE {}: {n}", f.display());
                    }
                }
                Err(e) => {
                    failed = true;
                    eprintln!("ERROR {e}");
                }
            }
            continue;
        }
        match MonitorConfig::load(f) {
            Ok(c) => {
                println!(
                    "OK   {}: plugin {}, source {:?}, {} rules ({} single-line, {} multi-line), {} conditions",
                    f.display(),
                    c.plugin.as_str(),
                    c.source,
                    c.rules.len(),
                    c.ruleset.fast_rule_count(),
                    c.ruleset.multiline_rule_count(),
                    c.conditions.len()
                );
                for w in &c.warnings {
                    println!("WARN {w}");
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("ERROR {e}");
            }
        }
    }
    if failed {
        exit::USAGE
    } else {
        exit::OK
    }
}

fn test(
    rule_files: &[PathBuf],
    lines: &[String],
    format: LogFormat,
    output: WatchOutput,
    log: Option<&std::path::Path>,
) -> Result<i32, LogsCmdError> {
    let configs = MonitorConfig::load_all(rule_files)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let read_err = |source| LogsCmdError::Io {
        what: "reading the log".to_string(),
        source,
    };
    if !lines.is_empty() {
        let input = lines.iter().enumerate().map(|(i, l)| {
            Ok(ReplayLine {
                number: i as u64 + 1,
                text: l.clone(),
                ..ReplayLine::default()
            })
        });
        replay(configs, input, format, output, &mut out).map_err(read_err)?;
        return Ok(exit::OK);
    }
    match log {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|source| LogsCmdError::Io {
                what: format!("cannot open {}", p.display()),
                source,
            })?;
            let input = LossyLines::new(std::io::BufReader::new(f), MAX_LINE);
            replay(configs, input, format, output, &mut out)
        }
        _ => {
            let input = LossyLines::new(std::io::stdin().lock(), MAX_LINE);
            replay(configs, input, format, output, &mut out)
        }
    }
    .map_err(|source| LogsCmdError::Io {
        what: match log {
            Some(p) if p.as_os_str() != "-" => format!("reading {}", p.display()),
            _ => "reading standard input".to_string(),
        },
        source,
    })?;
    Ok(exit::OK)
}

/// Longest line `rules test` replays: the rest of a longer line is cut off (and noted), so
/// memory stays bounded whatever the input (the filelog monitor's limit).
pub const MAX_LINE: usize = 1 << 20;

/// Notes listed one by one in the output; further ones are only counted.
const MAX_LISTED_NOTES: usize = 20;

/// One line of a replayed log, decoded leniently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayLine {
    /// 1-based line number in the input (newlines counted, whatever the bytes between).
    pub number: u64,
    /// The line without its `\n` / `\r\n`, NUL bytes removed, invalid UTF-8 replaced by
    /// U+FFFD, at most [`MAX_LINE`] bytes of input.
    pub text: String,
    /// Some bytes were not valid UTF-8 (replaced).
    pub invalid_utf8: bool,
    /// NUL bytes removed (zero-filled blocks after a crash, binary junk).
    pub nul_bytes: u64,
    /// The line was longer than the limit: (its length, bytes kept).
    pub cut: Option<(u64, u64)>,
}

impl ReplayLine {
    /// What was done to the line, if anything (for the output).
    pub fn note(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some((len, kept)) = self.cut {
            parts.push(format!("cut to its first {kept} of {len} bytes"));
        }
        if self.invalid_utf8 {
            parts.push("invalid UTF-8 replaced with U+FFFD".to_string());
        }
        if self.nul_bytes > 0 {
            parts.push(format!("{} NUL bytes removed", self.nul_bytes));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// Lines of any byte stream: split at `\n` (a `\r` before it is dropped too), read in
/// bounded memory. Unlike [`BufRead::lines`] it never fails on bytes, only on I/O errors.
pub struct LossyLines<R> {
    reader: R,
    max: usize,
    number: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> LossyLines<R> {
    /// Lines of `reader`, each cut to at most `max` bytes (at least 1).
    pub fn new(reader: R, max: usize) -> Self {
        LossyLines {
            reader,
            max: max.max(1),
            number: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<ReplayLine>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut any = false;
        let mut newline = false;
        loop {
            let avail = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            any = true;
            let (chunk, used) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    newline = true;
                    (&avail[..i], i + 1)
                }
                None => (avail, avail.len()),
            };
            total += chunk.len() as u64;
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.reader.consume(used);
            if newline {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        let cut = total > self.buf.len() as u64;
        if cut {
            // Do not leave half a character at the cut.
            let keep = utf8_boundary(&self.buf);
            self.buf.truncate(keep);
        } else if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let kept = self.buf.len() as u64;
        let before = self.buf.len();
        self.buf.retain(|&b| b != 0);
        let nul_bytes = (before - self.buf.len()) as u64;
        let (text, invalid_utf8) = match String::from_utf8_lossy(&self.buf) {
            std::borrow::Cow::Borrowed(s) => (s.to_string(), false),
            std::borrow::Cow::Owned(s) => (s, true),
        };
        Ok(Some(ReplayLine {
            number: self.number,
            text,
            invalid_utf8,
            nul_bytes,
            cut: cut.then_some((total, kept)),
        }))
    }
}

/// Length of `b` without a multi-byte UTF-8 sequence left incomplete at its end.
fn utf8_boundary(b: &[u8]) -> usize {
    for back in 1..=b.len().min(4) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if back < need { i } else { b.len() };
    }
    b.len()
}

impl<R: BufRead> Iterator for LossyLines<R> {
    type Item = std::io::Result<ReplayLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_line() {
            Ok(Some(l)) => Some(Ok(l)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Message and timestamp of a replayed line in `format`.
fn message_of(line: &str, format: LogFormat, now: SystemTime) -> (String, SystemTime) {
    let (message, secs) = match format {
        LogFormat::Plain => (line.to_string(), None),
        LogFormat::Kmsg => logs::parse_kernel_log_line(line),
        LogFormat::Syslog => (logs::strip_syslog_header(line).to_string(), None),
    };
    // Seconds since boot, shown as if the boot were at the epoch; nonsense (negative,
    // infinite, beyond what a clock holds) falls back to now.
    let at = secs
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        .unwrap_or(now);
    (message, at)
}

/// What [`replay`] counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub lines: u64,
    pub matches: u64,
    pub invalid_utf8_lines: u64,
    pub cut_lines: u64,
    pub nul_bytes: u64,
}

/// Replay `input` through the rules of `configs` and write every match, the notes on
/// lines that had to be repaired, and the counts to `out` (`rules test`). Only I/O errors
/// of `input` fail it; output errors (a closed pipe) are ignored.
pub fn replay(
    configs: Vec<MonitorConfig>,
    input: impl Iterator<Item = std::io::Result<ReplayLine>>,
    format: LogFormat,
    output: WatchOutput,
    out: &mut dyn Write,
) -> std::io::Result<ReplaySummary> {
    let now = SystemTime::now();
    let mut matchers: Vec<Matcher> = configs
        .into_iter()
        .map(|c| {
            let stats = std::sync::Arc::new(MonitorStats::new(c.source.clone()));
            Matcher::new(c, stats, now)
        })
        .collect();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let mut sum = ReplaySummary::default();
    for line in input {
        let line = line?;
        sum.lines += 1;
        sum.invalid_utf8_lines += u64::from(line.invalid_utf8);
        sum.cut_lines += u64::from(line.cut.is_some());
        sum.nul_bytes += line.nul_bytes;
        if let Some(note) = line.note() {
            if notes.len() < MAX_LISTED_NOTES {
                if output == WatchOutput::Text {
                    let _ = writeln!(out, "line {}: note: {note}", line.number);
                }
                notes.push(json!({"line": line.number, "note": note}));
            }
        }
        let (message, at) = message_of(&line.text, format, now);
        for m in &mut matchers {
            let (_, matches) = m.push(&message, at);
            for rm in matches {
                sum.matches += 1;
                let rule = &m.config().rules[rm.rule];
                *counts.entry(rule.reason.clone()).or_default() += 1;
                let oom = probes::logs::oom::parse_oom_kill(&rm.message);
                let (kind, condition) = match rule.kind {
                    RuleType::Temporary => ("temporary", None),
                    RuleType::Permanent => ("permanent", Some(rule.condition.clone())),
                };
                match output {
                    WatchOutput::Text => {
                        let cond = condition
                            .as_deref()
                            .map(|c| format!(" -> {c}=True"))
                            .unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "line {}: {} ({kind}{cond}) [{}] {:?}{}",
                            line.number,
                            rule.reason,
                            m.config().source,
                            rm.message,
                            oom.as_ref().map(oom_text).unwrap_or_default()
                        );
                    }
                    WatchOutput::Json => found.push(json!({
                        "line": line.number,
                        "source": m.config().source,
                        "reason": rule.reason,
                        "type": kind,
                        "condition": condition,
                        "message": rm.message,
                        "lines": rm.lines,
                        "oom": oom.as_ref().map(oom_json),
                    })),
                }
            }
        }
    }
    let repaired = sum.invalid_utf8_lines + sum.cut_lines > 0 || sum.nul_bytes > 0;
    match output {
        WatchOutput::Text => {
            let _ = writeln!(out, "{} lines read", sum.lines);
            if repaired {
                let _ = writeln!(
                    out,
                    "repaired: {} lines with invalid UTF-8, {} lines cut, {} NUL bytes removed",
                    sum.invalid_utf8_lines, sum.cut_lines, sum.nul_bytes
                );
            }
            for (reason, n) in &counts {
                let _ = writeln!(out, "{reason}: {n}");
            }
        }
        WatchOutput::Json => {
            let _ = writeln!(
                out,
                "{}",
                json!({
                    "lines": sum.lines,
                    "matches": found,
                    "counts": counts,
                    "repaired": {
                        "invalid_utf8_lines": sum.invalid_utf8_lines,
                        "cut_lines": sum.cut_lines,
                        "nul_bytes": sum.nul_bytes,
                        "notes": notes,
                    },
                })
            );
        }
    }
    let _ = out.flush();
    Ok(sum)
}

fn watch(
    args: &LogMonitorArgs,
    host_root: &std::path::Path,
    output: WatchOutput,
) -> Result<i32, LogsCmdError> {
    if !host_root.is_dir() {
        return Err(LogsCmdError::HostRoot(host_root.display().to_string()));
    }
    let configs = args.load_configs()?;
    for c in &configs {
        for w in &c.warnings {
            tracing::warn!("{w}");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| LogsCmdError::Io {
            what: "starting the async runtime".to_string(),
            source,
        })?;
    let host = probes::HostPaths::new(host_root);
    runtime.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let monitors = logs::spawn_monitors(host, configs, args.options(), tx)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|source| LogsCmdError::Io {
                what: "installing the SIGTERM handler".to_string(),
                source,
            })?;
        // Tell the reader when every monitor has positioned itself in its log.
        let stats = monitors.stats.clone();
        let mut ready_sent = false;
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = poll.tick(), if !ready_sent => {
                    if stats.iter().all(|s| s.ready.load(Ordering::Relaxed)) {
                        ready_sent = true;
                        emit(output, &ready_json(&stats, &monitors.skipped));
                    }
                }
                f = rx.recv() => match f {
                    Some(LogItem::Finding(f)) => emit(output, &finding_json(&f)),
                    // printed and flushed: as durable as this command makes anything
                    Some(LogItem::Durable(ack)) => ack.done(),
                    None => break,
                },
            }
        }
        let stats = monitors.stats.clone();
        monitors.shutdown().await;
        while let Ok(item) = rx.try_recv() {
            if let LogItem::Finding(f) = item {
                emit(output, &finding_json(&f));
            }
        }
        emit(output, &stats_json(&stats));
        Ok::<(), LogsCmdError>(())
    })?;
    Ok(exit::OK)
}

fn emit(output: WatchOutput, v: &Value) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = match output {
        WatchOutput::Json => writeln!(out, "{v}"),
        WatchOutput::Text => writeln!(out, "{}", text_line(v)),
    };
    let _ = out.flush();
}

fn text_line(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    match v["kind"].as_str() {
        Some("event") => format!(
            "{} event {} [{}] {:?}",
            s("timestamp"),
            s("reason"),
            s("source"),
            s("message")
        ),
        Some("condition") => format!(
            "{} condition {}={} reason {} [{}] {:?}",
            s("transition"),
            s("condition"),
            s("status"),
            s("reason"),
            s("source"),
            s("message")
        ),
        _ => v.to_string(),
    }
}

fn ready_json(stats: &[std::sync::Arc<MonitorStats>], skipped: &[(String, String)]) -> Value {
    json!({
        "kind": "ready",
        "monitors": stats.iter().map(|s| s.source.clone()).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(o, why)| json!({"origin": o, "why": why})).collect::<Vec<_>>(),
    })
}

/// Final counters, printed when `watch-logs` stops.
fn stats_json(stats: &[std::sync::Arc<MonitorStats>]) -> Value {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "kind": "stats",
        "monitors": stats.iter().map(|s| json!({
            "source": s.source,
            "records_read": n(&s.records_read),
            "records_lost": n(&s.records_lost),
            "overruns": n(&s.overruns),
            "matches": n(&s.matches),
            "parse_errors": n(&s.parse_errors),
            "state_errors": n(&s.state_errors),
            "read_errors": n(&s.read_errors),
        })).collect::<Vec<_>>(),
    })
}

fn oom_json(o: &OomKill) -> Value {
    json!({
        "pod_uid": o.pod_uid,
        "container_id": o.container_id,
        "task": o.task,
        "pid": o.pid,
        "memcg": o.memcg,
    })
}

fn oom_text(o: &OomKill) -> String {
    format!(
        " oom: task={} pid={} pod_uid={} container_id={} memcg={}",
        o.task,
        o.pid,
        o.pod_uid.as_deref().unwrap_or("-"),
        o.container_id.as_deref().unwrap_or("-"),
        o.memcg
    )
}

/// A finding as one JSON object.
pub fn finding_json(f: &LogFinding) -> Value {
    match f {
        LogFinding::Event(e) => json!({
            "kind": "event",
            "source": e.source,
            "reason": e.reason,
            "message": e.message,
            "timestamp": probes::timefmt::rfc3339_millis(e.timestamp),
            "timestamp_unix_ms": unix_ms(e.timestamp),
            "oom": e.oom.as_ref().map(oom_json),
        }),
        LogFinding::Condition(c) => json!({
            "kind": "condition",
            "source": c.source,
            "condition": c.condition,
            "status": c.status.as_str(),
            "reason": c.reason,
            "message": c.message,
            "transition": probes::timefmt::rfc3339_millis(c.transition),
            "transition_unix_ms": unix_ms(c.transition),
        }),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<ReplayLine> {
        LossyLines::new(input, max).map(Result::unwrap).collect()
    }

    fn texts(input: &[u8]) -> Vec<String> {
        lines(input, MAX_LINE).into_iter().map(|l| l.text).collect()
    }

    fn kernel_rules() -> Vec<MonitorConfig> {
        vec![MonitorConfig::defaults().unwrap().remove(0)]
    }

    fn replay_json(input: &[u8], format: LogFormat) -> Value {
        let mut out = Vec::new();
        replay(
            kernel_rules(),
            LossyLines::new(input, MAX_LINE),
            format,
            WatchOutput::Json,
            &mut out,
        )
        .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    /// The issue's file: one line with `\xff\xfe`, one TaskHung line (was: exit 64,
    /// "stream did not contain valid UTF-8", nothing reported).
    #[test]
    fn mixed_file_with_invalid_utf8_still_finds_task_hung() {
        let mixed = b"Nov 27 07:15:14 node1 kernel: usb 1-1: bad descriptor \xff\xfe\n\
            Nov 27 07:15:15 node1 kernel: INFO: task kworker/0:1:42 blocked for more than 120 seconds.\n";
        let v = replay_json(mixed, LogFormat::Syslog);
        assert_eq!(v["lines"], 2, "{v:#}");
        assert_eq!(v["counts"]["TaskHung"], 1, "{v:#}");
        assert_eq!(v["matches"][0]["line"], 2, "{v:#}");
        assert_eq!(
            v["matches"][0]["message"],
            "INFO: task kworker/0:1:42 blocked for more than 120 seconds."
        );
        assert_eq!(v["repaired"]["invalid_utf8_lines"], 1, "{v:#}");
        assert_eq!(v["repaired"]["notes"][0]["line"], 1, "{v:#}");

        let mut out = Vec::new();
        replay(
            kernel_rules(),
            LossyLines::new(&mixed[..], MAX_LINE),
            LogFormat::Syslog,
            WatchOutput::Text,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("line 1: note: invalid UTF-8 replaced with U+FFFD"),
            "{text}"
        );
        assert!(text.contains("line 2: TaskHung (temporary)"), "{text}");
        assert!(text.contains("TaskHung: 1"), "{text}");
    }

    #[test]
    fn crlf_nul_and_missing_final_newline() {
        assert_eq!(texts(b""), Vec::<String>::new());
        assert_eq!(texts(b"\n"), vec![""]);
        assert_eq!(texts(b"a\r\nb\r\n"), vec!["a", "b"]);
        assert_eq!(texts(b"a\nb"), vec!["a", "b"]);
        assert_eq!(texts(b"a\rb\n"), vec!["a\rb"], "a lone CR is kept");
        assert_eq!(texts(b"last\r"), vec!["last"]);
        // a zero-filled block left by a crash, glued to the next line
        let l = lines(b"\0\0\0\0Nov 27 07:15:15 node1 kernel: x\n", MAX_LINE);
        assert_eq!(l[0].text, "Nov 27 07:15:15 node1 kernel: x");
        assert_eq!(l[0].nul_bytes, 4);
        assert_eq!(l[0].note().unwrap(), "4 NUL bytes removed");
        // the syslog header is then recognised
        let v = replay_json(
            b"\0\0Nov 27 07:15:15 node1 kernel: INFO: task a:1 blocked for more than 5 seconds.\r\n",
            LogFormat::Syslog,
        );
        assert_eq!(v["counts"]["TaskHung"], 1, "{v:#}");
        assert_eq!(v["repaired"]["nul_bytes"], 2, "{v:#}");
    }

    #[test]
    fn line_numbers_count_every_newline() {
        let l = lines(b"\xff\n\n\x00\nx\r\n\xc3\n", MAX_LINE);
        let n: Vec<(u64, &str, bool)> = l
            .iter()
            .map(|l| (l.number, l.text.as_str(), l.invalid_utf8))
            .collect();
        assert_eq!(
            n,
            vec![
                (1, "\u{fffd}", true),
                (2, "", false),
                (3, "", false),
                (4, "x", false),
                (5, "\u{fffd}", true)
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary_with_a_note() {
        // a limit of 5 bytes would split 'é' (2 bytes) after "aaaa"
        let l = lines("aaaaébc\nnext\n".as_bytes(), 5);
        assert_eq!(l[0].text, "aaaa");
        assert_eq!(l[0].cut, Some((8, 4)));
        assert!(!l[0].invalid_utf8);
        assert_eq!(l[0].note().unwrap(), "cut to its first 4 of 8 bytes");
        assert_eq!((l[1].number, l[1].text.as_str()), (2, "next"));
        // a line far longer than the read buffer, bounded memory
        let mut big = vec![b'x'; 3 * MAX_LINE];
        big.extend_from_slice(b"\nINFO: task a:1 blocked for more than 5 seconds.\n");
        let v = replay_json(&big, LogFormat::Plain);
        assert_eq!(v["lines"], 2, "{v:#}");
        assert_eq!(v["repaired"]["cut_lines"], 1, "{v:#}");
        assert_eq!(v["matches"][0]["line"], 2, "{v:#}");
        assert_eq!(utf8_boundary(b"ab\xe2\x82"), 2);
        assert_eq!(utf8_boundary(b"ab\xe2\x82\xac"), 5);
        assert_eq!(utf8_boundary(b"\x80\x80\x80\x80\x80"), 5);
    }

    #[test]
    fn nonsense_kernel_timestamps_do_not_panic() {
        for line in [
            "[inf] task a:1 blocked for more than 5 seconds.",
            "[1e300] x",
            "[-5] x",
            "[NaN] x",
            "[18446744073709551615.9] x",
        ] {
            let (_, at) = message_of(line, LogFormat::Kmsg, SystemTime::UNIX_EPOCH);
            assert!(at >= SystemTime::UNIX_EPOCH, "{line}");
        }
    }

    #[test]
    fn notes_are_listed_up_to_a_bound_and_all_counted() {
        let input = b"\xff\n".repeat(MAX_LISTED_NOTES + 5);
        let v = replay_json(&input, LogFormat::Plain);
        assert_eq!(
            v["repaired"]["invalid_utf8_lines"],
            (MAX_LISTED_NOTES + 5) as u64
        );
        assert_eq!(
            v["repaired"]["notes"].as_array().unwrap().len(),
            MAX_LISTED_NOTES
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(
            probes::timefmt::rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            probes::timefmt::rfc3339_millis(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_763_715_123)
            ),
            "2026-11-27T07:15:15.123Z"
        );
        assert_eq!(
            probes::timefmt::rfc3339_millis(
                SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)
            ),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
