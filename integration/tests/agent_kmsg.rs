//! The built binary in daemon mode, reading the REAL kernel log, against the fake API
//! server: injected kmsg lines and a real memcg OOM kill become Node conditions and Events.
//!
//! Every test here holds the kmsg lock (the ring is global), writes each line on a fresh fd
//! with a unique marker and a few lines at most. Tests that inject lines use the default
//! kernel rules with every pattern scoped to the test's marker (`<marker>: .*(?:<default
//! pattern>)`), so kernel lines other tests or processes write meanwhile can neither spend
//! the agent's event budget nor set its conditions; the OOM test uses the default rules
//! unchanged (the kernel writes those lines), with `lookback` 0.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nodeprobe_integration::agent::{events_for, marked, wait_for, Agent, NODE, NODE_UID};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::kmsg::{
    default_kernel_rules, kmsg_setup, kmsg_write, scoped_rules, task_hung, KmsgSetup, NO_PROBES,
};
use nodeprobe_integration::oom::{oom_ok, PodCgroup};
use serde_json::Value;

/// The default kernel rules with `lookback` 0, patterns unchanged.
fn default_rules(dir: &Path) -> PathBuf {
    let path = dir.join("kernel-monitor.json");
    std::fs::write(&path, default_kernel_rules("0")).unwrap();
    path
}

/// Start an agent on `rules` and wait until its kernel log monitor reads.
fn start(api: &FakeApi, rules: &Path, work: &Path, extra: &[&str]) -> Agent {
    let args: Vec<&str> = NO_PROBES.iter().chain(extra).copied().collect();
    let agent = Agent::start_with_logs(api, rules, work, &args);
    agent.wait_for_kmsg_monitor();
    agent
}

/// Write a TaskHung line of its own and wait for its Event: Events go out in order, so
/// anything the agent sent before it is at the API server by then. Returns its message.
fn sentinel(api: &FakeApi, agent: &Agent, marker: &str, tag: &str) -> String {
    let line = task_hung(marker, &format!("sentinel-{tag}"));
    kmsg_write(3, &line);
    wait_for("the sentinel event", Duration::from_secs(10), agent, || {
        events_for(api, "TaskHung", &line).into_iter().next()
    });
    line
}

fn remount_line(marker: &str) -> String {
    format!("{marker}: EXT4-fs (sda1): Remounting filesystem read-only")
}

/// Write a remount line; wait for ReadonlyFilesystem True (the rule's reason, the line as
/// message) and its transition Event. Returns both.
fn remount_read_only(api: &FakeApi, agent: &Agent, line: &str) -> (Value, Value) {
    kmsg_write(2, line);
    let c = wait_for(
        "ReadonlyFilesystem True",
        Duration::from_secs(10),
        agent,
        || {
            api.condition(NODE, "ReadonlyFilesystem")
                .filter(|c| c["status"] == "True")
        },
    );
    assert_eq!(c["reason"], "FilesystemIsReadOnly");
    assert_eq!(c["message"], line);
    let message = format!("Node condition ReadonlyFilesystem is now: True, reason: FilesystemIsReadOnly, message: \"{line}\"");
    let e = wait_for("transition event", Duration::from_secs(10), agent, || {
        events_for(api, "FilesystemIsReadOnly", &message)
            .into_iter()
            .next()
    });
    (c, e)
}

fn assert_on_node(e: &Value) {
    assert_eq!(e["metadata"]["namespace"], "default", "{e:#}");
    assert_eq!(e["involvedObject"]["kind"], "Node", "{e:#}");
    assert_eq!(e["involvedObject"]["apiVersion"], "v1", "{e:#}");
    assert_eq!(e["involvedObject"]["name"], NODE, "{e:#}");
    assert_eq!(e["involvedObject"]["uid"], NODE_UID, "{e:#}");
    assert_eq!(e["source"]["component"], "kernel-monitor", "{e:#}");
    assert_eq!(e["source"]["host"], NODE, "{e:#}");
}

#[test]
fn task_hung_line_is_one_warning_event_and_repeats_count_up() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("hung") else {
        return;
    };
    let mut agent = start(&api, &scoped_rules(tmp.path(), &m, "0"), tmp.path(), &[]);
    let line = task_hung(&m, &m);
    kmsg_write(3, &line);
    let e = wait_for("TaskHung event", Duration::from_secs(10), &agent, || {
        events_for(&api, "TaskHung", &line).into_iter().next()
    });
    assert_eq!(e["type"], "Warning");
    assert_on_node(&e);
    assert_eq!(e["count"], 1);
    let s1 = sentinel(&api, &agent, &m, "1");
    let only_line = |api: &FakeApi| -> Vec<Value> {
        marked(api, &m)
            .into_iter()
            .filter(|e| !e["message"].as_str().unwrap_or("").contains("sentinel-"))
            .collect()
    };
    assert_eq!(only_line(&api).len(), 1, "{:#?}", marked(&api, &m));
    assert!(!events_for(&api, "TaskHung", &s1).is_empty());

    // Nine more identical lines: still one Event, its count 10.
    for _ in 0..9 {
        kmsg_write(3, &line);
    }
    let e = wait_for("count 10", Duration::from_secs(10), &agent, || {
        events_for(&api, "TaskHung", &line)
            .into_iter()
            .find(|e| e["count"] == 10)
    });
    assert_on_node(&e);
    sentinel(&api, &agent, &m, "2");
    let all = only_line(&api);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["count"], 10);
    assert!(all[0]["lastTimestamp"].as_str() >= all[0]["firstTimestamp"].as_str());
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn readonly_remount_sets_the_condition_once_and_leaves_kubelet_conditions() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("ro") else {
        return;
    };
    let kubelet = |api: &FakeApi| {
        ["Ready", "MemoryPressure"].map(|t| api.condition(NODE, t).expect("kubelet condition"))
    };
    let before = kubelet(&api);
    // heartbeats every second: a later write of the whole set shows what the agent holds
    let mut agent = start(
        &api,
        &scoped_rules(tmp.path(), &m, "0"),
        tmp.path(),
        &["--k8s-exporter-heartbeat-period", "1s"],
    );
    let init = wait_for(
        "initial ReadonlyFilesystem",
        Duration::from_secs(10),
        &agent,
        || api.condition(NODE, "ReadonlyFilesystem"),
    );
    assert_eq!(init["status"], "False", "{init:#}");
    assert_eq!(init["reason"], "FilesystemIsNotReadOnly");
    assert_eq!(init["message"], "Filesystem is not read-only");
    let deadlock = api
        .condition(NODE, "KernelDeadlock")
        .expect("KernelDeadlock");
    assert_eq!(deadlock["status"], "False");

    let line = remount_line(&m);
    let (c, warn) = remount_read_only(&api, &agent, &line);
    let transition = c["lastTransitionTime"].clone();
    assert!(transition.is_string(), "{c:#}");
    assert_eq!(warn["type"], "Warning");
    assert_on_node(&warn);

    // The same line again, a second later (timestamps have second precision), then a
    // TaskHung line: once its Event is there, the repeat has been read too.
    std::thread::sleep(Duration::from_millis(1100));
    kmsg_write(2, &line);
    let after = task_hung(&m, "after-remount");
    kmsg_write(3, &after);
    wait_for("the line after", Duration::from_secs(10), &agent, || {
        events_for(&api, "TaskHung", &after).into_iter().next()
    });
    let hb = api.condition(NODE, "ReadonlyFilesystem").unwrap()["lastHeartbeatTime"].clone();
    let c2 = wait_for("a later write", Duration::from_secs(5), &agent, || {
        api.condition(NODE, "ReadonlyFilesystem")
            .filter(|c| c["lastHeartbeatTime"] != hb)
    });
    assert_eq!(c2["status"], "True");
    assert_eq!(c2["lastTransitionTime"], transition, "{c2:#}");
    assert_eq!(c2["message"], line.as_str());
    let transitions: Vec<Value> = api
        .events(None)
        .into_iter()
        .filter(|e| e["reason"] == "FilesystemIsReadOnly")
        .collect();
    assert_eq!(transitions.len(), 1, "{transitions:#?}");
    assert_eq!(transitions[0]["count"], 1);
    assert_eq!(
        api.condition(NODE, "KernelDeadlock").unwrap()["lastTransitionTime"],
        deadlock["lastTransitionTime"]
    );
    assert_eq!(kubelet(&api), before);
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn percent_signs_arrive_verbatim() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("pct") else {
        return;
    };
    let mut agent = start(&api, &scoped_rules(tmp.path(), &m, "0"), tmp.path(), &[]);
    // Printf verbs and a literal `%%`: NPD passed the message as a format string.
    let line = task_hung(&m, "worker 100%d %s %v %% %!x(MISSING) 50%");
    kmsg_write(3, &line);
    let e = wait_for("TaskHung event", Duration::from_secs(10), &agent, || {
        api.events(None)
            .into_iter()
            .find(|e| e["reason"] == "TaskHung")
    });
    assert_eq!(e["message"], line.as_str(), "{e:#}");
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn restart_sends_no_duplicates_delivers_lines_from_downtime_and_keeps_transitions() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("restart") else {
        return;
    };
    // lookback 5m: without the cursor in --state-dir the restarted agent would read the
    // lines of its first run again.
    let rules = scoped_rules(tmp.path(), &m, "5m");
    let mut first = start(&api, &rules, tmp.path(), &[]);
    let a = task_hung(&m, "line-a");
    let ro = remount_line(&m);
    kmsg_write(3, &a);
    wait_for("event A", Duration::from_secs(10), &first, || {
        events_for(&api, "TaskHung", &a).into_iter().next()
    });
    let (c1, _) = remount_read_only(&api, &first, &ro);
    let deadlock1 = api.condition(NODE, "KernelDeadlock").unwrap();
    assert_eq!(first.terminate().0, Some(0), "{}", first.logs());
    let events_before = api.events(None);

    // Written while the agent is down; a reset transition time would show a second later.
    let b = task_hung(&m, "line-b");
    kmsg_write(3, &b);
    std::thread::sleep(Duration::from_millis(1100));
    let status_writes = |api: &FakeApi| {
        api.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status") && r.status == 200)
            .count()
    };
    let writes_before = status_writes(&api);
    let mut second = start(
        &api,
        &rules,
        tmp.path(),
        &["--k8s-exporter-heartbeat-period", "1s"],
    );
    let c = task_hung(&m, "line-c");
    kmsg_write(3, &c);
    wait_for(
        "event B (written while down)",
        Duration::from_secs(10),
        &second,
        || events_for(&api, "TaskHung", &b).into_iter().next(),
    );
    wait_for("event C", Duration::from_secs(10), &second, || {
        events_for(&api, "TaskHung", &c).into_iter().next()
    });
    wait_for(
        "a condition write",
        Duration::from_secs(10),
        &second,
        || (status_writes(&api) > writes_before).then_some(()),
    );
    // The restored conditions are kept fresh (a heartbeat writes the whole set again: what
    // it holds is what the agent has)...
    let hb = api.condition(NODE, "ReadonlyFilesystem").unwrap()["lastHeartbeatTime"].clone();
    let c2 = wait_for("a heartbeat", Duration::from_secs(5), &second, || {
        api.condition(NODE, "ReadonlyFilesystem")
            .filter(|c| c["lastHeartbeatTime"] != hb)
    });
    // ...with the transitions of the first run.
    assert_eq!(c2["status"], "True");
    assert_eq!(c2["reason"], "FilesystemIsReadOnly");
    assert_eq!(c2["lastTransitionTime"], c1["lastTransitionTime"], "{c2:#}");
    assert_eq!(
        api.condition(NODE, "KernelDeadlock").unwrap()["lastTransitionTime"],
        deadlock1["lastTransitionTime"]
    );
    assert_eq!(second.get(second.status_port, "/readyz").0, 200);
    // The events of the first run are untouched and nothing was sent twice.
    let after = api.events(None);
    assert_eq!(&after[..events_before.len()], &events_before[..]);
    let mut got: Vec<(String, String, u64)> = marked(&api, &m)
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("reason"), s("message"), e["count"].as_u64().unwrap())
        })
        .collect();
    got.sort();
    let hung = |l: &String| ("TaskHung".to_string(), l.clone(), 1);
    let mut want = vec![
        (
            "FilesystemIsReadOnly".to_string(),
            format!("Node condition ReadonlyFilesystem is now: True, reason: FilesystemIsReadOnly, message: \"{ro}\""),
            1,
        ),
        hung(&a),
        hung(&b),
        hung(&c),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(second.terminate().0, Some(0));
}

/// At-least-once: an event found while the API server is down survives a SIGKILL (it is in
/// the spool in the state directory before the kernel log position moves past its line) and
/// arrives after the restart, once.
#[test]
fn events_found_during_an_api_outage_survive_sigkill() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("sigkill") else {
        return;
    };
    let rules = scoped_rules(tmp.path(), &m, "0");
    let mut first = start(&api, &rules, tmp.path(), &[]);
    wait_for(
        "startup condition write",
        Duration::from_secs(10),
        &first,
        || api.condition(NODE, "ReadonlyFilesystem"),
    );
    api.fail_for(Duration::from_secs(600), 503);
    let line = task_hung(&m, "during-outage");
    kmsg_write(3, &line);
    let spool = tmp.path().join("state/events-spool.json");
    wait_for(
        "the event in the spool",
        Duration::from_secs(10),
        &first,
        || {
            std::fs::read_to_string(&spool)
                .ok()
                .filter(|s| s.contains(&line))
        },
    );
    assert!(events_for(&api, "TaskHung", &line).is_empty());
    first.kill();

    api.fail_for(Duration::ZERO, 503);
    let mut second = start(&api, &rules, tmp.path(), &[]);
    let e = wait_for(
        "the spooled event",
        Duration::from_secs(15),
        &second,
        || events_for(&api, "TaskHung", &line).into_iter().next(),
    );
    assert_on_node(&e);
    // A later line shows the restarted monitor read past the first one without sending it
    // again (its position was saved only once the event was in the spool).
    let after = task_hung(&m, "after-restart");
    kmsg_write(3, &after);
    wait_for("the next event", Duration::from_secs(10), &second, || {
        events_for(&api, "TaskHung", &after).into_iter().next()
    });
    let all = marked(&api, &m);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().all(|e| e["count"] == 1), "{all:#?}");
    assert_eq!(second.terminate().0, Some(0));
}

#[test]
fn real_oom_kill_names_the_pod_on_pod_and_node_events() {
    if !oom_ok() {
        return;
    }
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("oom") else {
        return;
    };
    let cg = PodCgroup::create(20);
    let (ns, pod) = (format!("{m}-ns"), format!("{m}-pod"));
    api.add_pod(
        &ns,
        &pod,
        &cg.uid,
        NODE,
        &[
            ("sidecar", "containerd://0123456789abcdef"),
            ("app", &format!("containerd://{}", cg.container_id)),
        ],
    );
    let mut agent = start(&api, &default_rules(tmp.path()), tmp.path(), &[]);
    cg.oom_kill();

    let on_pod = wait_for("Event on the Pod", Duration::from_secs(15), &agent, || {
        api.events(Some(&ns)).into_iter().next()
    });
    assert_eq!(on_pod["reason"], "PodOOMKilling", "{on_pod:#}");
    assert_eq!(on_pod["type"], "Warning");
    assert_eq!(on_pod["involvedObject"]["kind"], "Pod");
    assert_eq!(on_pod["involvedObject"]["namespace"], ns.as_str());
    assert_eq!(on_pod["involvedObject"]["name"], pod.as_str());
    assert_eq!(on_pod["involvedObject"]["uid"], cg.uid.as_str());
    assert_eq!(on_pod["source"]["component"], "kernel-monitor");
    let msg = on_pod["message"].as_str().unwrap();
    let prefix = format!("container app of pod {ns}/{pod} was OOM-killed: task python3, pid ");
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(msg[prefix.len()..].parse::<u32>().is_ok(), "{msg}");

    let on_node = wait_for("Event on the Node", Duration::from_secs(10), &agent, || {
        api.events(Some("default"))
            .into_iter()
            .find(|e| e["reason"] == "PodOOMKilling" && e["message"] == msg)
    });
    assert_on_node(&on_node);
    assert_eq!(on_node["type"], "Warning");
    // The pod list was asked for this node only.
    assert!(api.requests().iter().any(|r| r.method == "GET"
        && r.path == "/api/v1/pods"
        && r.query.contains("fieldSelector=spec.nodeName%3Dn1")));
    assert_eq!(
        api.events(Some(&ns)).len(),
        1,
        "{:#?}",
        api.events(Some(&ns))
    );
    assert_eq!(agent.terminate().0, Some(0));
    drop(cg);
}

/// Detection latency, kmsg write → Event received by the fake API server (benchmark, run
/// on demand; prints p50/p99, asserts only that every line arrived):
///
/// ```text
/// cargo build --release && NODEPROBE_BIN=$PWD/target/release/nodeprobe \
///   cargo test -p nodeprobe-integration --test agent_kmsg -- --ignored --nocapture latency
/// ```
///
/// `NODEPROBE_LATENCY_LINES` (default 50) distinct TaskHung lines, one at a time, 20 ms apart.
#[test]
#[ignore = "benchmark: run with --ignored"]
fn kmsg_to_event_latency() {
    let Some(KmsgSetup { api, m, tmp, _kmsg }) = kmsg_setup("latency") else {
        return;
    };
    let n: usize = std::env::var("NODEPROBE_LATENCY_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut agent = start(
        &api,
        &scoped_rules(tmp.path(), &m, "0"),
        tmp.path(),
        &["--event-budget-burst", "100000"],
    );
    // Let the startup writes settle.
    wait_for(
        "first condition write",
        Duration::from_secs(10),
        &agent,
        || api.condition(NODE, "ReadonlyFilesystem"),
    );
    let creates = |api: &FakeApi| {
        api.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/events") && r.status == 201)
            .collect::<Vec<_>>()
    };
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let before = creates(&api).len();
        let t0 = Instant::now();
        kmsg_write(3, &task_hung(&m, &format!("bench-{i}")));
        let at = wait_for("the event", Duration::from_secs(10), &agent, || {
            creates(&api).get(before).map(|r| r.at)
        });
        lat.push(at.duration_since(t0));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(marked(&api, &m).len(), n);
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    eprintln!(
        "kmsg → Event latency over {n} lines ({}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        nodeprobe_integration::binary().display(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );
    assert_eq!(agent.terminate().0, Some(0));
}
