//! `--oneshot`: run the probes once, concurrently, each under its own deadline, and render
//! the result as a table or as the JSON object later tools rely on.

use std::sync::Arc;

use probes::{ConditionStatus, Outcome, Probe, ProbeRun};
use serde::Serialize;

use crate::exit;

/// One condition's line of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResultLine {
    pub probe: &'static str,
    pub condition: &'static str,
    /// `True` (problem), `False` (healthy) or `Unknown`.
    pub status: &'static str,
    pub reason: String,
    /// The condition message as it would be written to the Node.
    pub message: String,
    /// What the probe measured, for humans (healthy results only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_ms: u64,
}

/// A condition that does not apply on this machine (nothing would be written).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NotApplicableLine {
    pub probe: &'static str,
    pub condition: &'static str,
    pub message: String,
}

/// The whole `--oneshot` report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub node: String,
    pub results: Vec<ResultLine>,
    pub not_applicable: Vec<NotApplicableLine>,
}

impl Report {
    pub fn from_runs(node: String, runs: &[ProbeRun]) -> Self {
        let mut results = Vec::new();
        let mut not_applicable = Vec::new();
        for run in runs {
            let duration_ms = u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX);
            for f in &run.findings {
                let (reason, message) = f.outcome.reason_message(&f.spec);
                let Some(status) = f.outcome.status() else {
                    not_applicable.push(NotApplicableLine {
                        probe: run.probe,
                        condition: f.spec.condition,
                        message,
                    });
                    continue;
                };
                let detail = match &f.outcome {
                    Outcome::Ok { detail } => detail.clone(),
                    _ => None,
                };
                results.push(ResultLine {
                    probe: run.probe,
                    condition: f.spec.condition,
                    status: status.as_str(),
                    reason,
                    message,
                    detail,
                    duration_ms,
                });
            }
        }
        Report {
            node,
            results,
            not_applicable,
        }
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
            rows.push([
                r.probe.into(),
                r.condition.into(),
                r.status.into(),
                r.reason.clone(),
                format!("{}ms", r.duration_ms),
                r.detail.clone().unwrap_or_else(|| r.message.clone()),
            ]);
        }
        for n in &self.not_applicable {
            rows.push([
                n.probe.into(),
                n.condition.into(),
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
        out
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
