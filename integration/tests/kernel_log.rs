//! Log sources that cannot be read. The kernel log where `/dev/kmsg` cannot be read, as
//! inside a container: the agent reads the ring through syslog(2) where the device is denied
//! (a devices cgroup, exactly what a runtime's device allowlist does), and without
//! CAP_SYSLOG it keeps running its probes with the kernel monitor's conditions `Unknown`,
//! one event, a metric and a failing `/healthz`; a journal that cannot be opened is the
//! same kind of outage, never a monitor that looks healthy. Everything against the real
//! kernel log and the fake API server.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::Path;
use std::time::Duration;

use nodeprobe_integration::agent::{events_for, events_with, kubelet_node, wait_for, Agent, NODE};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::kmsg::{
    default_kernel_rules, kmsg_setup, kmsg_write, scoped_rules, task_hung, KmsgDeniedCgroup,
    KmsgSetup, NO_PROBES,
};
use nodeprobe_integration::{is_root, require};
use serde_json::Value;

fn hung_event(api: &FakeApi, line: &str) -> Option<Value> {
    events_for(api, "TaskHung", line).into_iter().next()
}

/// The agent's log without colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

const UP: &str = "nodeprobe_log_source_up{source=\"kernel-monitor\"}";

#[test]
fn a_denied_kmsg_device_falls_back_to_the_ring_through_syslog() {
    if !KmsgDeniedCgroup::available() {
        return;
    }
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("ring") else {
        return;
    };
    // lookback 5m: without its cursor the restarted agent would deliver line A again
    let rules = scoped_rules(tmp.path(), &m, "5m");
    let cg = KmsgDeniedCgroup::create();
    let wrapper = cg.wrapper();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let start = || {
        let a = Agent::start_with_logs_via(&api, &rules, tmp.path(), NO_PROBES, &wrapper);
        a.wait_for_kmsg_monitor();
        a
    };
    let mut agent = start();
    let logs = strip_ansi(&agent.logs());
    assert!(
        logs.contains("cannot open the kernel log device")
            && logs.contains("Operation not permitted"),
        "{logs}"
    );
    assert!(logs.contains("backend=\"syslog\""), "{logs}");

    let a = task_hung(&m, "ring-a");
    kmsg_write(3, &a);
    let e = wait_for(
        "TaskHung from the ring",
        Duration::from_secs(10),
        &agent,
        || hung_event(&api, &a),
    );
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["involvedObject"]["name"], NODE);
    assert_eq!(e["source"]["component"], "kernel-monitor");
    // a multi-line write: the ring gives each line with the record's prefix
    let two = format!("{m}: first half\n{}", task_hung(&m, "ring-second-line"));
    kmsg_write(3, &two);
    wait_for(
        "the second line's event",
        Duration::from_secs(10),
        &agent,
        || hung_event(&api, &task_hung(&m, "ring-second-line")),
    );
    assert_eq!(agent.metric(UP), Some(1.0));
    let read = "nodeprobe_log_records_read_total{source=\"kernel-monitor\"}";
    assert!(agent.metric(read).unwrap_or(0.0) >= 3.0);
    assert_eq!(
        agent.get_text(agent.status_port, "/healthz"),
        (200, "ok".into())
    );
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());

    // Written while the agent is down: delivered after the restart, nothing twice.
    let b = task_hung(&m, "ring-b");
    kmsg_write(3, &b);
    let mut agent = start();
    let c = task_hung(&m, "ring-c");
    kmsg_write(3, &c);
    wait_for(
        "event B (written while down)",
        Duration::from_secs(10),
        &agent,
        || hung_event(&api, &b),
    );
    wait_for("event C", Duration::from_secs(10), &agent, || {
        hung_event(&api, &c)
    });
    let marked: Vec<Value> = api
        .events(None)
        .into_iter()
        .filter(|e| e["message"].as_str().is_some_and(|s| s.contains(&m)))
        .collect();
    assert_eq!(marked.len(), 4, "{marked:#?}");
    assert!(marked.iter().all(|e| e["count"] == 1), "{marked:#?}");
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn without_cap_syslog_the_agent_runs_on_and_says_what_is_missing() {
    if !require(
        is_root() && Path::new("/usr/bin/setpriv").exists(),
        "root and setpriv (util-linux)",
    ) {
        return;
    }
    let api = FakeApi::start();
    kubelet_node(&api);
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("kernel-monitor.json");
    std::fs::write(&rules, default_kernel_rules("0")).unwrap();
    // Neither /dev/kmsg nor syslog(2): both need CAP_SYSLOG (or CAP_SYS_ADMIN) here.
    let wrapper = [
        "setpriv",
        "--inh-caps=-syslog,-sys_admin",
        "--bounding-set=-syslog,-sys_admin",
        "--",
    ];
    let mut agent =
        Agent::start_with_logs_via(&api, &rules, tmp.path(), &["--probes", "inodes"], &wrapper);
    // The kernel monitor's conditions: Unknown, naming the source, the cause, the grant.
    for ty in ["KernelDeadlock", "ReadonlyFilesystem"] {
        let c = wait_for(ty, Duration::from_secs(10), &agent, || {
            api.condition(NODE, ty).filter(|c| c["status"] == "Unknown")
        });
        assert_eq!(c["reason"], "LogSourceUnavailable", "{c:#}");
        let msg = c["message"].as_str().unwrap();
        for needle in [
            "/dev/kmsg",
            "Operation not permitted",
            "syslog(2)",
            "CAP_SYSLOG",
        ] {
            assert!(msg.contains(needle), "{needle} not in {msg}");
        }
    }
    // The probes run on.
    let inodes = wait_for("InodesPressure", Duration::from_secs(10), &agent, || {
        api.condition(NODE, "InodesPressure")
    });
    assert_eq!(inodes["status"], "False", "{inodes:#}");
    assert!(agent.running(), "{}", agent.logs());
    // One Warning event on the Node...
    let ev = wait_for(
        "LogSourceUnavailable",
        Duration::from_secs(10),
        &agent,
        || events_with(&api, "LogSourceUnavailable").into_iter().next(),
    );
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    assert_eq!(ev["involvedObject"]["name"], NODE);
    assert!(
        ev["message"].as_str().unwrap().contains("CAP_SYSLOG"),
        "{ev:#}"
    );
    // ...and only one for the outage, after the monitor tried again (a read error counted).
    let errors = "nodeprobe_log_read_errors_total{source=\"kernel-monitor\"}";
    wait_for("a second try", Duration::from_secs(30), &agent, || {
        agent.metric(errors).filter(|n| *n >= 2.0)
    });
    assert_eq!(events_with(&api, "LogSourceUnavailable").len(), 1);
    assert_eq!(events_with(&api, "LogSourceUnavailable")[0]["count"], 1);
    // Metric, endpoints.
    assert_eq!(agent.metric(UP), Some(0.0));
    let (code, body) = agent.get_text(agent.status_port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("log source kernel-monitor never readable") && body.contains("CAP_SYSLOG"),
        "{body}"
    );
    assert_eq!(
        agent.get_text(agent.status_port, "/livez"),
        (200, "ok".into())
    );
    assert_eq!(agent.get_text(agent.status_port, "/readyz").0, 200);
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());
}

#[test]
fn a_journal_that_cannot_be_opened_is_an_outage_not_a_silent_monitor() {
    let api = FakeApi::start();
    kubelet_node(&api);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-journal");
    let rules = tmp.path().join("journal-monitor.json");
    let text = serde_json::json!({
        "plugin": "journald",
        "pluginConfig": {"source": "dockerd"},
        "logPath": missing,
        "lookback": "5m",
        "bufferSize": 10,
        "source": "it-journal-monitor",
        "conditions": [{"type": "ItJournalProblem", "reason": "NoItJournalProblem",
                        "message": "fine"}],
        "rules": [{"type": "permanent", "condition": "ItJournalProblem",
                   "reason": "ItJournalBroken", "pattern": "broken"}]
    });
    std::fs::write(&rules, text.to_string()).unwrap();
    let mut agent = Agent::start_with_logs(&api, &rules, tmp.path(), NO_PROBES);
    let c = wait_for(
        "ItJournalProblem Unknown",
        Duration::from_secs(10),
        &agent,
        || {
            api.condition(NODE, "ItJournalProblem")
                .filter(|c| c["status"] == "Unknown")
        },
    );
    assert_eq!(c["reason"], "LogSourceUnavailable");
    assert!(
        c["message"].as_str().unwrap().contains("no-journal"),
        "{c:#}"
    );
    let ev = wait_for(
        "LogSourceUnavailable",
        Duration::from_secs(10),
        &agent,
        || events_with(&api, "LogSourceUnavailable").into_iter().next(),
    );
    assert_eq!(ev["source"]["component"], "it-journal-monitor");
    let up = "nodeprobe_log_source_up{source=\"it-journal-monitor\"}";
    assert_eq!(agent.metric(up), Some(0.0));
    let (code, body) = agent.get_text(agent.status_port, "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("it-journal-monitor") && body.contains("no-journal"),
        "{body}"
    );
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());
}
