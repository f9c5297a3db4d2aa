//! `--oneshot`: run the probes once, concurrently, each under its own deadline, and (on
//! by default) the log monitors' rules over what the kernel log still holds within their
//! `lookback`, on a thread of its own meanwhile; render the result as a table or as the JSON
//! object later tools rely on.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use probes::findings::OomKill;
use probes::logs::oom::PodRef;
use probes::logs::scan::{self, MonitorScan, ScanOptions};
use probes::logs::{LogMonitorArgs, MonitorConfig};
use probes::timefmt::rfc3339;
use probes::{ConditionStatus, Outcome, Probe, ProbeRun};
use serde::Serialize;

use crate::exit;

/// One condition's line of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResultLine {
    /// The probe, or for a log condition the log monitor's `source` (`kernel-monitor`).
    pub probe: String,
    pub condition: String,
    /// `True` (problem), `False` (healthy) or `Unknown`.
    pub status: &'static str,
    pub reason: String,
    /// The condition message as it would be written to the Node.
    pub message: String,
    /// What the probe measured, for humans (healthy results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Log conditions that are `True`: when the first matching line was written (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub duration_ms: u64,
}

/// One temporary finding of a log monitor (a line a `temporary` rule matched).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogFindingLine {
    /// The monitor's `source` (`kernel-monitor`).
    pub source: String,
    pub reason: String,
    /// When the (first) matched line was written, RFC 3339 with milliseconds.
    pub time: String,
    /// The matched line(s), verbatim.
    pub message: String,
    /// OOM kills: the killed task and the pod UID and container ID from its memory cgroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<OomKill>,
    /// OOM kills: the pod's namespace and name, when the kubelet's pod log directory on the
    /// node names its UID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
}

/// What one log monitor read for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogSourceLine {
    pub source: String,
    /// The rule file (`builtin:…` for the defaults).
    pub rules: String,
    /// `kmsg`, `syslog` (the ring through syslog(2)), `journald`, or `none` (not read).
    pub read: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Start of the window (now minus `lookback`); absent for a monitor without `lookback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Records within the window.
    pub records: u64,
    /// Records read (for the kernel log: all the ring holds, within the window or not).
    pub records_read: u64,
    /// Records that could not be parsed or were overwritten while being read.
    pub unreadable_records: u64,
    /// Temporary findings not listed in `log_findings` (the oldest, beyond the limit).
    pub findings_omitted: u64,
    /// Why the log could not be read (its conditions are then `Unknown`), or was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub duration_ms: u64,
}

/// A condition that does not apply on this machine (nothing would be written).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotApplicableLine {
    pub probe: String,
    pub condition: String,
    pub message: String,
}

/// The whole `--oneshot` report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub node: String,
    pub results: Vec<ResultLine>,
    pub not_applicable: Vec<NotApplicableLine>,
    /// Recent temporary log findings (OOM kills, hung tasks, …), oldest first; absent with
    /// `--oneshot-logs=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_findings: Option<Vec<LogFindingLine>>,
    /// What each log monitor read; absent with `--oneshot-logs=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_sources: Option<Vec<LogSourceLine>>,
}

fn records(n: u64) -> String {
    match n {
        1 => "1 record".to_string(),
        n => format!("{n} records"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2026-11-27T07:15:15.123Z`.
fn time_ms(t: SystemTime) -> String {
    probes::timefmt::rfc3339_millis(t)
}

impl Report {
    pub fn from_runs(node: String, runs: &[ProbeRun]) -> Self {
        let mut results = Vec::new();
        let mut not_applicable = Vec::new();
        for run in runs {
            let duration_ms = millis(run.duration);
            for f in &run.findings {
                let (reason, message) = f.outcome.reason_message(&f.spec);
                let Some(status) = f.outcome.status() else {
                    not_applicable.push(NotApplicableLine {
                        probe: run.probe.to_string(),
                        condition: f.spec.condition.to_string(),
                        message,
                    });
                    continue;
                };
                let detail = match &f.outcome {
                    Outcome::Ok { detail } => detail.clone(),
                    _ => None,
                };
                results.push(ResultLine {
                    probe: run.probe.to_string(),
                    condition: f.spec.condition.to_string(),
                    status: status.as_str(),
                    reason,
                    message,
                    detail,
                    since: None,
                    duration_ms,
                });
            }
        }
        Report {
            node,
            results,
            not_applicable,
            log_findings: None,
            log_sources: None,
        }
    }

    /// Add the log monitors' passes: their conditions next to the probes' (so the exit
    /// code counts them), their temporary findings, and what each read.
    pub fn add_logs(&mut self, scans: &[MonitorScan]) {
        let mut findings = Vec::new();
        let mut sources = Vec::new();
        for s in scans {
            let duration_ms = millis(s.duration);
            let window = match s.since {
                Some(t) => format!(
                    "since {} ({} via {})",
                    rfc3339(t),
                    records(s.result.records),
                    s.backend.as_str()
                ),
                None => "the rule file has no lookback: nothing to read".to_string(),
            };
            for c in s.result.conditions.iter().filter(|_| s.skipped) {
                self.not_applicable.push(NotApplicableLine {
                    probe: s.source.clone(),
                    condition: c.condition.clone(),
                    message: s.problem.clone().unwrap_or_default(),
                });
            }
            for c in s.result.conditions.iter().filter(|_| !s.skipped) {
                let (detail, since) = match c.status {
                    ConditionStatus::False => (Some(format!("no match {window}")), None),
                    ConditionStatus::True => (None, Some(rfc3339(c.transition))),
                    ConditionStatus::Unknown => (None, None),
                };
                self.results.push(ResultLine {
                    probe: s.source.clone(),
                    condition: c.condition.clone(),
                    status: c.status.as_str(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    detail,
                    since,
                    duration_ms,
                });
            }
            findings.extend(s.result.events.iter().map(|e| {
                LogFindingLine {
                    source: e.source.clone(),
                    reason: e.reason.clone(),
                    time: time_ms(e.timestamp),
                    message: e.message.clone(),
                    oom: e.oom.clone(),
                    pod: e
                        .oom
                        .as_ref()
                        .and_then(|o| o.pod_uid.as_ref())
                        .and_then(|uid| s.pods.get(uid))
                        .cloned(),
                }
            }));
            sources.push(LogSourceLine {
                source: s.source.clone(),
                rules: s.origin.clone(),
                read: s.backend.as_str(),
                location: s.location.clone(),
                since: s.since.map(rfc3339),
                records: s.result.records,
                records_read: s.records_read,
                unreadable_records: s.unreadable_records,
                findings_omitted: s.result.events_omitted,
                problem: s.problem.clone(),
                duration_ms,
            });
        }
        findings.sort_by(|a, b| a.time.cmp(&b.time));
        self.log_findings = Some(findings);
        self.log_sources = Some(sources);
    }

    /// NPD's plugin protocol: 1 if any problem, else 2 if any Unknown, else 0.
    pub fn exit_code(&self) -> i32 {
        let has = |s: ConditionStatus| self.results.iter().any(|r| r.status == s.as_str());
        if has(ConditionStatus::True) {
            exit::PROBLEM
        } else if has(ConditionStatus::Unknown) {
            exit::UNKNOWN
        } else {
            exit::OK
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "PROBE".into(),
            "CONDITION".into(),
            "STATUS".into(),
            "REASON".into(),
            "TIME".into(),
            "MESSAGE".into(),
        ]];
        for r in &self.results {
            let mut message = r.detail.clone().unwrap_or_else(|| r.message.clone());
            if let Some(since) = &r.since {
                message = format!("since {since}: {message}");
            }
            rows.push([
                r.probe.clone(),
                r.condition.clone(),
                r.status.into(),
                r.reason.clone(),
                format!("{}ms", r.duration_ms),
                message,
            ]);
        }
        for n in &self.not_applicable {
            rows.push([
                n.probe.clone(),
                n.condition.clone(),
                "n/a".into(),
                "-".into(),
                "-".into(),
                n.message.clone(),
            ]);
        }
        let mut widths = [0usize; 5];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = format!("node: {}\n", self.node);
        for row in &rows {
            for (w, cell) in widths.iter().zip(row.iter()) {
                out.push_str(&format!("{cell:<w$}  ", w = *w));
            }
            out.push_str(&row[5].replace('\n', " "));
            out.push('\n');
        }
        if let Some(sources) = &self.log_sources {
            out.push_str(&self.log_table(sources));
        }
        out
    }

    /// The log part of the table: what each monitor read, then the recent findings.
    fn log_table(&self, sources: &[LogSourceLine]) -> String {
        let mut out = String::new();
        for s in sources {
            let what = match (&s.problem, &s.since) {
                (Some(p), _) => format!("not read: {p}"),
                (None, None) => "no lookback in its rules: nothing read".to_string(),
                (None, Some(since)) => {
                    let mut w = format!(
                        "{} since {since} from {} ({} read, {}ms)",
                        records(s.records),
                        s.location,
                        s.records_read,
                        s.duration_ms
                    );
                    if s.unreadable_records > 0 {
                        w.push_str(&format!(", {} unreadable", s.unreadable_records));
                    }
                    w
                }
            };
            out.push_str(&format!("log {}: {what}\n", s.source));
        }
        let findings = self.log_findings.as_deref().unwrap_or_default();
        let omitted: u64 = sources.iter().map(|s| s.findings_omitted).sum();
        if findings.is_empty() {
            out.push_str("log findings: none\n");
            return out;
        }
        out.push_str(&format!("log findings ({}", findings.len()));
        if omitted > 0 {
            out.push_str(&format!(", {omitted} older ones not listed"));
        }
        out.push_str("):\n");
        let mut rows: Vec<[String; 4]> = vec![[
            "TIME".into(),
            "SOURCE".into(),
            "REASON".into(),
            "MESSAGE".into(),
        ]];
        for f in findings {
            let message = match &f.oom {
                Some(o) => oom_summary(o, f.pod.as_ref()),
                None => f.message.replace('\n', " | "),
            };
            rows.push([f.time.clone(), f.source.clone(), f.reason.clone(), message]);
        }
        let mut widths = [0usize; 3];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in &rows {
            for (w, cell) in widths.iter().zip(row.iter()) {
                out.push_str(&format!("{cell:<w$}  ", w = *w));
            }
            out.push_str(&row[3]);
            out.push('\n');
        }
        out
    }
}

/// `pod <ns>/<name> (<uid>) container <id>: task <comm> (pid <n>) OOM-killed`, with what the
/// memcg path and the pod log directories named.
fn oom_summary(o: &OomKill, pod: Option<&PodRef>) -> String {
    let mut s = String::new();
    match (&o.pod_uid, pod) {
        (Some(uid), Some(p)) => s.push_str(&format!("pod {}/{} ({uid})", p.namespace, p.name)),
        (Some(uid), None) => s.push_str(&format!("pod {uid}")),
        (None, _) => s.push_str(&format!("memcg {}", o.memcg)),
    }
    if let Some(c) = &o.container_id {
        s.push_str(&format!(" container {}", &c[..c.len().min(12)]));
    }
    s.push_str(&format!(": task {} (pid {}) OOM-killed", o.task, o.pid));
    s
}

/// Run every log monitor's pass, one after the other, on the calling thread (blocking).
pub fn scan_logs(configs: &[MonitorConfig], options: &ScanOptions) -> Vec<MonitorScan> {
    configs
        .iter()
        .map(|c| scan::scan_monitor(c, options))
        .collect()
}

/// Why `--oneshot` could not read the logs.
#[derive(Debug, thiserror::Error)]
pub enum OneshotLogsError {
    /// A rule file does not load (a usage error, exit 64).
    #[error(transparent)]
    Rules(#[from] probes::logs::RulesError),
    /// The log thread died (a bug).
    #[error("the log scan crashed: {0}")]
    Crashed(String),
}

/// Run the probes and, on a blocking thread meanwhile, load the rule files and run the log
/// monitors' passes (`logs: None`: the probes only). Loading compiles every rule's pattern,
/// the largest part of the logs' cost, so it overlaps the probes too. A rule file that does
/// not load ends the run at once, with no result: nothing is reported, the error is.
pub async fn run_with_logs(
    probes: Vec<Box<dyn Probe>>,
    logs: Option<LogMonitorArgs>,
    options: ScanOptions,
) -> Result<(Vec<ProbeRun>, Option<Vec<MonitorScan>>), OneshotLogsError> {
    let Some(args) = logs else {
        return Ok((run_all(probes).await, None));
    };
    let mut logs = tokio::task::spawn_blocking(move || {
        let configs = args.load_configs()?;
        Ok::<_, OneshotLogsError>(scan_logs(&configs, &options))
    });
    let probes = run_all(probes);
    tokio::pin!(probes);
    let joined = |r: Result<Result<Vec<MonitorScan>, OneshotLogsError>, tokio::task::JoinError>| {
        r.map_err(|e| OneshotLogsError::Crashed(e.to_string()))?
    };
    tokio::select! {
        scans = &mut logs => {
            let scans = joined(scans)?;
            Ok((probes.await, Some(scans)))
        }
        runs = &mut probes => Ok((runs, Some(joined(logs.await)?))),
    }
}

/// Run every probe once, concurrently; results come back in the probes' order.
pub async fn run_all(probes: Vec<Box<dyn Probe>>) -> Vec<ProbeRun> {
    let handles: Vec<_> = probes
        .into_iter()
        .map(|p| {
            let p: Arc<dyn Probe> = Arc::from(p);
            let decl = p.decl();
            let handle = tokio::spawn(async move { probes::run_probe(p.as_ref()).await });
            (decl, handle)
        })
        .collect();
    let mut runs = Vec::with_capacity(handles.len());
    for (decl, handle) in handles {
        let name = decl.name;
        runs.push(match handle.await {
            Ok(run) => run,
            Err(e) => ProbeRun {
                probe: name,
                source: decl.source,
                findings: decl
                    .conditions
                    .iter()
                    .copied()
                    .map(|spec| probes::Finding {
                        spec,
                        outcome: Outcome::unknown(format!("{name} check crashed: {e}")),
                    })
                    .collect(),
                duration: std::time::Duration::ZERO,
            },
        });
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use probes::{inodes, Finding};
    use std::time::Duration;

    fn run(outcome: Outcome) -> ProbeRun {
        ProbeRun {
            probe: "inodes",
            source: "inodes-custom-plugin-monitor",
            findings: vec![Finding {
                spec: inodes::CONDITION,
                outcome,
            }],
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn json_shape_is_the_documented_one() {
        let r = Report::from_runs(
            "n1".into(),
            &[run(Outcome::problem("NodeHasInodesPressure", "90% used"))],
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "node": "n1",
                "results": [{"probe": "inodes", "condition": "InodesPressure", "status": "True",
                  "reason": "NodeHasInodesPressure", "message": "90% used", "duration_ms": 3}],
                "not_applicable": []
            })
        );
        assert_eq!(r.exit_code(), exit::PROBLEM);
    }

    #[test]
    fn exit_codes_follow_the_plugin_protocol() {
        let ok = Report::from_runs("n".into(), &[run(Outcome::ok())]);
        assert_eq!(ok.exit_code(), exit::OK);
        assert_eq!(ok.results[0].message, "node has no inodes pressure");
        let unk = Report::from_runs(
            "n".into(),
            &[run(Outcome::ok()), run(Outcome::unknown("x"))],
        );
        assert_eq!(unk.exit_code(), exit::UNKNOWN);
        let both = Report::from_runs(
            "n".into(),
            &[run(Outcome::unknown("x")), run(Outcome::problem("R", "m"))],
        );
        assert_eq!(both.exit_code(), exit::PROBLEM);
        let na = Report::from_runs("n".into(), &[run(Outcome::not_applicable("no cloud"))]);
        assert_eq!(na.exit_code(), exit::OK);
        assert!(na.results.is_empty());
        assert_eq!(na.not_applicable[0].message, "no cloud");
    }

    fn log_scan(status: ConditionStatus) -> MonitorScan {
        use probes::findings::{ConditionUpdate, MonitorEvent};
        use probes::logs::scan::ScanResult;
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_918_000 + s);
        let uid = "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab";
        let (reason, message) = match status {
            ConditionStatus::True => (
                "DockerHung",
                "task docker:7 blocked for more than 120 seconds.",
            ),
            _ => ("KernelHasNoDeadlock", "kernel has no deadlock"),
        };
        MonitorScan {
            source: "kernel-monitor".into(),
            origin: "builtin:kernel-monitor.json".into(),
            backend: probes::logs::Backend::Kmsg,
            location: "/dev/kmsg".into(),
            since: Some(at(0)),
            problem: None,
            skipped: false,
            unreadable_records: 0,
            records_read: 3,
            result: ScanResult {
                conditions: vec![ConditionUpdate {
                    source: "kernel-monitor".into(),
                    condition: "KernelDeadlock".into(),
                    status,
                    reason: reason.into(),
                    message: message.into(),
                    transition: at(10),
                }],
                events: vec![MonitorEvent {
                    source: "kernel-monitor".into(),
                    reason: "PodOOMKilling".into(),
                    message: "oom-kill:...".into(),
                    timestamp: at(20),
                    oom: Some(OomKill {
                        pod_uid: Some(uid.into()),
                        container_id: Some("ab".repeat(32)),
                        task: "python3".into(),
                        pid: 4242,
                        memcg: format!("/kubepods/burstable/pod{uid}/{}", "ab".repeat(32)),
                    }),
                }],
                events_omitted: 0,
                records: 1,
            },
            pods: Default::default(),
            duration: Duration::from_millis(1),
        }
    }

    #[test]
    fn log_conditions_count_in_the_exit_code_and_findings_are_listed() {
        let mut r = Report::from_runs("n1".into(), &[run(Outcome::ok())]);
        r.add_logs(&[log_scan(ConditionStatus::True)]);
        assert_eq!(r.exit_code(), exit::PROBLEM);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            v["results"][1],
            serde_json::json!({"probe": "kernel-monitor", "condition": "KernelDeadlock",
                "status": "True", "reason": "DockerHung",
                "message": "task docker:7 blocked for more than 120 seconds.",
                "since": "2025-12-05T07:00:10Z", "duration_ms": 1})
        );
        assert_eq!(
            v["log_findings"],
            serde_json::json!([{"source": "kernel-monitor", "reason": "PodOOMKilling",
                "time": "2025-12-05T07:00:20.000Z", "message": "oom-kill:...",
                "oom": {"pod_uid": "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab",
                        "container_id": "ab".repeat(32), "task": "python3", "pid": 4242,
                        "memcg": format!("/kubepods/burstable/pod3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab/{}", "ab".repeat(32))}}])
        );
        assert_eq!(v["log_sources"][0]["read"], "kmsg");
        assert_eq!(v["log_sources"][0]["records_read"], 3);
        assert_eq!(v["log_sources"][0]["since"], "2025-12-05T07:00:00Z");
        let t = r.to_table();
        assert!(
            t.contains("since 2025-12-05T07:00:10Z: task docker:7 blocked"),
            "{t}"
        );
        assert!(
            t.contains("log kernel-monitor: 1 record since 2025-12-05T07:00:00Z from /dev/kmsg"),
            "{t}"
        );
        assert!(
            t.contains("2025-12-05T07:00:20.000Z  kernel-monitor  PodOOMKilling  pod 3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab container abababababab: task python3 (pid 4242) OOM-killed"),
            "{t}"
        );

        // the pod named by the kubelet's pod log directory
        let mut named = log_scan(ConditionStatus::False);
        named.pods.insert(
            "3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab".into(),
            PodRef {
                namespace: "team-a".into(),
                name: "api-5f6d".into(),
            },
        );
        let mut r = Report::from_runs("n1".into(), &[run(Outcome::ok())]);
        r.add_logs(&[named]);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(
            v["log_findings"][0]["pod"],
            serde_json::json!({"namespace": "team-a", "name": "api-5f6d"})
        );
        let t = r.to_table();
        assert!(
            t.contains("PodOOMKilling  pod team-a/api-5f6d (3f9c2a1e-7b4d-4e8a-9c1f-0123456789ab) container abababababab: task python3 (pid 4242) OOM-killed"),
            "{t}"
        );

        let mut healthy = Report::from_runs("n1".into(), &[run(Outcome::ok())]);
        healthy.add_logs(&[log_scan(ConditionStatus::False)]);
        assert_eq!(
            healthy.exit_code(),
            exit::OK,
            "findings alone are no problem"
        );
        let t = healthy.to_table();
        let row = t
            .lines()
            .find(|l| l.contains("KernelHasNoDeadlock"))
            .unwrap();
        assert!(
            row.ends_with("1ms   no match since 2025-12-05T07:00:00Z (1 record via kmsg)"),
            "{t}"
        );
        let mut unknown = Report::from_runs("n1".into(), &[run(Outcome::ok())]);
        unknown.add_logs(&[log_scan(ConditionStatus::Unknown)]);
        assert_eq!(unknown.exit_code(), exit::UNKNOWN);
    }

    #[test]
    fn without_logs_the_json_has_no_log_fields() {
        let r = Report::from_runs("n1".into(), &[run(Outcome::ok())]);
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v.get("log_findings").is_none() && v.get("log_sources").is_none());
        assert!(!r.to_table().contains("log "));
    }

    #[test]
    fn table_has_a_row_per_condition() {
        let r = Report::from_runs("n1".into(), &[run(Outcome::ok_with("2.4% on /"))]);
        let t = r.to_table();
        assert!(t.starts_with("node: n1\nPROBE"), "{t}");
        assert!(
            t.contains("InodesPressure") && t.contains("2.4% on /"),
            "{t}"
        );
    }
}
