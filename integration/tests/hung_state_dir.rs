//! A state directory whose writes hang (an ext4 on a loop device frozen with `fsfreeze`, as
//! a disk that stopped answering): nothing the agent's one runtime thread does waits on it.
//! Probes keep running, condition and event writes keep reaching the API server, and the
//! status endpoints answer, `/healthz` naming the stuck writes; once thawed, all is well.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::time::Duration;

use nodeprobe_integration::agent::{events_with, kubelet_node, wait_for, Agent, NODE};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::kmsg::{default_kernel_rules, kmsg_lock, kmsg_ok, kmsg_write};
use nodeprobe_integration::{unique, FreezableExt4};
use serde_json::Value;

#[test]
fn a_frozen_state_directory_stops_nothing_but_its_own_writes() {
    if !kmsg_ok() || !FreezableExt4::available() {
        return;
    }
    let _g = kmsg_lock();
    let api = FakeApi::start();
    kubelet_node(&api);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mounted = FreezableExt4::mount(&state);
    let m = unique("frozen");
    let mut v: Value = serde_json::from_str(&default_kernel_rules("0")).unwrap();
    for r in v["rules"].as_array_mut().unwrap() {
        let p = r["pattern"].as_str().unwrap().to_string();
        r["pattern"] = Value::String(format!("{m}: .*(?:{p})"));
    }
    let rules = tmp.path().join("kernel-monitor.json");
    std::fs::write(&rules, v.to_string()).unwrap();
    let mut agent = Agent::start_with_logs(
        &api,
        &rules,
        tmp.path(),
        &[
            "--probes",
            "inodes",
            "--inodes-interval",
            "1s",
            "--k8s-exporter-heartbeat-period",
            "1s",
        ],
    );
    // Declared after the agent, so dropped (thawed) before it: a process stuck on the
    // frozen file system can only be reaped once it is thawed.
    let mut fs = mounted;
    agent.wait_for_kmsg_monitor();
    let hung = |task: &str| format!("{m}: INFO: task {task}:1 blocked for more than 120 seconds.");
    let before = hung("before-freeze");
    kmsg_write(3, &before);
    wait_for(
        "an event before the freeze",
        Duration::from_secs(10),
        &agent,
        || {
            events_with(&api, "TaskHung")
                .into_iter()
                .find(|e| e["message"] == before.as_str())
        },
    );

    fs.freeze();
    // A finding now needs the spool and the monitor's state file: both hang.
    let during = hung("during-freeze");
    kmsg_write(3, &during);
    // Events are still delivered (from memory)...
    wait_for(
        "an event while frozen",
        Duration::from_secs(10),
        &agent,
        || {
            events_with(&api, "TaskHung")
                .into_iter()
                .find(|e| e["message"] == during.as_str())
        },
    );
    // ...condition writes go on (heartbeats every second)...
    let hb = |api: &FakeApi| {
        api.condition(NODE, "InodesPressure")
            .map(|c| c["lastHeartbeatTime"].clone())
    };
    let first = wait_for("InodesPressure", Duration::from_secs(10), &agent, || {
        hb(&api)
    });
    wait_for("a newer heartbeat", Duration::from_secs(10), &agent, || {
        hb(&api).filter(|h| *h != first)
    });
    // ...the probe runs on...
    let runs = "nodeprobe_probe_runs_total{probe=\"inodes\",status=\"ok\"}";
    let n = agent.metric(runs).unwrap_or(0.0);
    wait_for(
        "another inodes run",
        Duration::from_secs(10),
        &agent,
        || agent.metric(runs).filter(|r| *r > n),
    );
    // ...and the endpoints answer: alive, not healthy, naming the stuck writes.
    let (code, body) = wait_for(
        "/healthz naming the stuck writes",
        Duration::from_secs(60),
        &agent,
        || {
            Some(agent.get_text(agent.status_port, "/healthz"))
                .filter(|(_, b)| b.contains("has not returned"))
        },
    );
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("state directory"), "{body}");
    assert_eq!(
        agent.get_text(agent.status_port, "/livez"),
        (200, "ok".into())
    );
    assert_eq!(agent.get_text(agent.status_port, "/readyz").0, 200);

    fs.thaw();
    wait_for(
        "/healthz ok once thawed",
        Duration::from_secs(20),
        &agent,
        || (agent.get_text(agent.status_port, "/healthz") == (200, "ok".to_string())).then_some(()),
    );
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());
    // each event once
    for line in [&before, &during] {
        let n = events_with(&api, "TaskHung")
            .into_iter()
            .filter(|e| e["message"] == line.as_str())
            .count();
        assert_eq!(n, 1, "{line}");
    }
}
