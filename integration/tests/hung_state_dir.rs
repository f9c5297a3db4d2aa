//! A state directory whose writes hang (an ext4 on a loop device frozen with `fsfreeze`, as
//! a disk that stopped answering): nothing the agent's one runtime thread does waits on it.
//! Probes keep running, condition and event writes keep reaching the API server, and the
//! status endpoints answer, `/healthz` naming the stuck writes; once thawed, all is well.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::time::Duration;

use nodeprobe_integration::agent::{events_for, wait_for, Agent, NODE};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::kmsg::{kmsg_setup, kmsg_write, scoped_rules, task_hung, KmsgSetup};
use nodeprobe_integration::FreezableExt4;

#[test]
fn a_frozen_state_directory_stops_nothing_but_its_own_writes() {
    if !FreezableExt4::available() {
        return;
    }
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("frozen") else {
        return;
    };
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mounted = FreezableExt4::mount(&state);
    let rules = scoped_rules(tmp.path(), &m, "0");
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
    let hung = |task: &str| task_hung(&m, task);
    let before = hung("before-freeze");
    kmsg_write(3, &before);
    let event = |line: &str, what: &str| {
        wait_for(what, Duration::from_secs(10), &agent, || {
            events_for(&api, "TaskHung", line).into_iter().next()
        })
    };
    event(&before, "an event before the freeze");

    fs.freeze();
    // A finding now needs the spool and the monitor's state file: both hang.
    let during = hung("during-freeze");
    kmsg_write(3, &during);
    // Events are still delivered (from memory)...
    event(&during, "an event while frozen");
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
        assert_eq!(events_for(&api, "TaskHung", line).len(), 1, "{line}");
    }
}
