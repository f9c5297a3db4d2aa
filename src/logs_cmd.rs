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
    let now = SystemTime::now();
    let mut matchers: Vec<Matcher> = configs
        .into_iter()
        .map(|c| {
            let stats = std::sync::Arc::new(MonitorStats::new(c.source.clone()));
            Matcher::new(c, stats, now)
        })
        .collect();
    let input: Box<dyn Iterator<Item = std::io::Result<String>>> = if !lines.is_empty() {
        Box::new(lines.iter().cloned().map(Ok))
    } else {
        match log {
            Some(p) if p.as_os_str() != "-" => {
                let f = std::fs::File::open(p).map_err(|source| LogsCmdError::Io {
                    what: format!("cannot open {}", p.display()),
                    source,
                })?;
                Box::new(std::io::BufReader::new(f).lines())
            }
            _ => Box::new(std::io::stdin().lock().lines()),
        }
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut found = Vec::new();
    let mut total = 0u64;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (i, line) in input.enumerate() {
        let line = line.map_err(|source| LogsCmdError::Io {
            what: "reading the log".to_string(),
            source,
        })?;
        total += 1;
        let (message, secs) = match format {
            LogFormat::Plain => (line, None),
            LogFormat::Kmsg => logs::parse_kernel_log_line(&line),
            LogFormat::Syslog => (logs::strip_syslog_header(&line).to_string(), None),
        };
        let at = secs
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s.max(0.0)))
            .unwrap_or(now);
        for m in &mut matchers {
            let (_, matches) = m.push(&message, at);
            for rm in matches {
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
                            i + 1,
                            rule.reason,
                            m.config().source,
                            rm.message,
                            oom.as_ref().map(oom_text).unwrap_or_default()
                        );
                    }
                    WatchOutput::Json => found.push(json!({
                        "line": i + 1,
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
    match output {
        WatchOutput::Text => {
            let _ = writeln!(out, "{total} lines read");
            for (reason, n) in &counts {
                let _ = writeln!(out, "{reason}: {n}");
            }
        }
        WatchOutput::Json => {
            let _ = writeln!(
                out,
                "{}",
                json!({"lines": total, "matches": found, "counts": counts})
            );
        }
    }
    Ok(exit::OK)
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
