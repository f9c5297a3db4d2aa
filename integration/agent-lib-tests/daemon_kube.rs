//! The daemon's state keeper and Kubernetes reporters at library level, against the fake API
//! server: log findings (as the kmsg monitors will produce them) and a scripted probe in,
//! Node conditions and Events out.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nodeprobe::daemon::{self, DaemonConfig, KubeSettings};
use nodeprobe::report::metrics::Metrics;
use nodeprobe::state::StateConfig;
use nodeprobe_integration::fakeapi::FakeApi;
use probes::findings::{ConditionUpdate, LogFinding, LogItem, MonitorEvent, OomKill};
use probes::{ConditionSpec, ConditionStatus, FnProbe, Outcome, Probe, ProbeDecl};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

const SPEC: ConditionSpec = ConditionSpec::new(
    "ScriptedProblem",
    "NoScriptedProblem",
    "scripted probe is fine",
    "HasScriptedProblem",
);

const DECL: ProbeDecl = ProbeDecl {
    name: "scripted",
    source: "scripted-custom-plugin-monitor",
    conditions: &[SPEC],
};

/// A probe whose outcome the test sets.
fn scripted(outcome: Arc<Mutex<Outcome>>) -> Box<dyn Probe> {
    Box::new(FnProbe {
        decl: &DECL,
        timeout: Duration::from_secs(1),
        interval: Duration::from_millis(100),
        check: Box::new(move || {
            let o = outcome.lock().unwrap().clone();
            Box::pin(async move { probes::single(SPEC, o) })
        }),
    })
}

struct Agent {
    logs: mpsc::Sender<LogItem>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    metrics: Arc<Metrics>,
}

impl Agent {
    fn start(api: &FakeApi, dir: &std::path::Path, probes: Vec<Box<dyn Probe>>) -> Agent {
        let kubeconfig = api.write_kubeconfig(dir);
        let config = DaemonConfig {
            node: "n1".into(),
            probes,
            kube: Some(KubeSettings {
                kubeconfig: Some(kubeconfig),
                server: Default::default(),
                event_namespace: "default".into(),
                heartbeat: Duration::from_secs(300),
                wait_timeout: Duration::from_secs(10),
                remove_stale: false,
                spool: Some(dir.join("state").join("events-spool.json")),
            }),
            status_addr: None,
            metrics_addr: None,
            state: StateConfig::default(),
            stale_types: vec![],
            log_types: vec!["ReadonlyFilesystem".into()],
            shutdown_grace: Duration::from_secs(3),
        };
        let (tx, rx) = daemon::log_channel();
        let (stop, stop_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::new());
        let m = metrics.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(daemon::run(config, Some(rx), m, stop_rx))
                .expect("daemon run");
        });
        Agent {
            logs: tx,
            stop,
            thread: Some(thread),
            metrics,
        }
    }

    fn send(&self, f: LogFinding) {
        self.logs
            .blocking_send(LogItem::Finding(f))
            .expect("agent is running");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn node_with_kubelet_conditions(api: &FakeApi) {
    api.add_node(
        "n1",
        "uid-n1",
        json!([
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}
        ]),
    );
}

fn event(reason: &str, message: &str, oom: Option<OomKill>) -> LogFinding {
    LogFinding::Event(MonitorEvent {
        source: "kernel-monitor".into(),
        reason: reason.into(),
        message: message.into(),
        timestamp: SystemTime::now(),
        oom,
    })
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn find_event(api: &FakeApi, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    api.events(None).into_iter().find(|e| pred(e))
}

#[test]
fn log_findings_become_deduplicated_verbatim_events_on_the_node() {
    let api = FakeApi::start();
    node_with_kubelet_conditions(&api);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&api, dir.path(), vec![]);
    let msg = "INFO: task foo:123 blocked for more than 120 seconds. 100% %s %d";
    for _ in 0..10 {
        agent.send(event("TaskHung", msg, None));
    }
    let ev = wait_for("count 10", Duration::from_secs(10), || {
        find_event(&api, |e| e["reason"] == "TaskHung" && e["count"] == 10)
    });
    let all: Vec<Value> = api
        .events(None)
        .into_iter()
        .filter(|e| e["reason"] == "TaskHung")
        .collect();
    assert_eq!(all.len(), 1, "one Event for ten identical lines: {all:#?}");
    assert_eq!(ev["message"], msg);
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["metadata"]["namespace"], "default");
    assert_eq!(
        ev["involvedObject"],
        json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1"})
    );
    assert_eq!(
        ev["source"],
        json!({"component": "kernel-monitor", "host": "n1"})
    );
    assert!(agent
        .metrics
        .render()
        .contains("nodeprobe_events_deduplicated_total 9"));
    assert!(agent
        .metrics
        .render()
        .contains("problem_counter{reason=\"TaskHung\"} 10"));
}

#[test]
fn readonly_filesystem_condition_keeps_kubelet_conditions_and_its_transition_time() {
    let api = FakeApi::start();
    node_with_kubelet_conditions(&api);
    let dir = tempfile::tempdir().unwrap();
    let before = api.node("n1").unwrap()["status"]["conditions"].clone();
    let agent = Agent::start(&api, dir.path(), vec![]);
    let update = |at: SystemTime| {
        LogFinding::Condition(ConditionUpdate {
            source: "kernel-monitor".into(),
            condition: "ReadonlyFilesystem".into(),
            status: ConditionStatus::True,
            reason: "FilesystemIsReadOnly".into(),
            message: "EXT4-fs (sda1): Remounting filesystem read-only".into(),
            transition: at,
        })
    };
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    agent.send(update(first));
    let c = wait_for("ReadonlyFilesystem", Duration::from_secs(5), || {
        api.condition("n1", "ReadonlyFilesystem")
    });
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "FilesystemIsReadOnly");
    assert_eq!(c["lastTransitionTime"], "2027-01-15T08:00:00Z");
    // A repeat with a later time changes nothing: a change of another condition after it
    // writes the whole set, so once that is there, so would be any change of this one.
    agent.send(update(first + Duration::from_secs(60)));
    agent.send(LogFinding::Condition(ConditionUpdate {
        source: "kernel-monitor".into(),
        condition: "KernelDeadlock".into(),
        status: ConditionStatus::True,
        reason: "DockerHung".into(),
        message: "sentinel".into(),
        transition: first,
    }));
    wait_for("the sentinel condition", Duration::from_secs(5), || {
        api.condition("n1", "KernelDeadlock")
    });
    let c = api.condition("n1", "ReadonlyFilesystem").unwrap();
    assert_eq!(c["lastTransitionTime"], "2027-01-15T08:00:00Z");
    let warnings: Vec<Value> = api
        .events(None)
        .into_iter()
        .filter(|e| e["reason"] == "FilesystemIsReadOnly")
        .collect();
    assert_eq!(warnings.len(), 1);
    // Every write is recorded under nodeprobe's field manager (managedFields).
    let writes: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" || r.method == "POST")
        .collect();
    assert!(!writes.is_empty());
    for r in &writes {
        assert!(
            r.query.contains("fieldManager=nodeprobe"),
            "{} {} ?{}",
            r.method,
            r.path,
            r.query
        );
    }
    assert_eq!(
        warnings[0]["message"],
        "Node condition ReadonlyFilesystem is now: True, reason: FilesystemIsReadOnly, message: \"EXT4-fs (sda1): Remounting filesystem read-only\""
    );
    // Kubelet's conditions are untouched.
    let after = api.node("n1").unwrap()["status"]["conditions"].clone();
    for (i, kubelet) in before.as_array().unwrap().iter().enumerate() {
        assert_eq!(&after[i], kubelet);
    }
    // Every node status write was a strategic merge patch.
    assert!(api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/status"))
        .all(|r| r.content_type == "application/strategic-merge-patch+json"));
}

#[test]
fn oom_kills_name_the_pod_or_its_uid() {
    let api = FakeApi::start();
    node_with_kubelet_conditions(&api);
    let cid = "a".repeat(64);
    api.add_pod(
        "shop",
        "cart-7d9",
        "1f2e3d4c-0000-4000-8000-000000000001",
        "n1",
        &[("cart", &format!("containerd://{cid}"))],
    );
    api.add_pod("other", "elsewhere", "uid-elsewhere", "n2", &[]);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&api, dir.path(), vec![]);
    let oom = |uid: &str, pid| OomKill {
        pod_uid: Some(uid.into()),
        container_id: Some(cid.clone()),
        task: "java".into(),
        pid,
        memcg: format!("/kubepods/burstable/pod{uid}/{cid}"),
    };
    agent.send(event(
        "PodOOMKilling",
        "Memory cgroup out of memory: Killed process 4242 (java)",
        Some(oom("1f2e3d4c-0000-4000-8000-000000000001", 4242)),
    ));
    let pod_ev = wait_for("pod event", Duration::from_secs(5), || {
        api.events(Some("shop")).into_iter().next()
    });
    let text = "container cart of pod shop/cart-7d9 was OOM-killed: task java, pid 4242";
    assert_eq!(pod_ev["message"], text);
    assert_eq!(pod_ev["involvedObject"]["kind"], "Pod");
    assert_eq!(pod_ev["involvedObject"]["name"], "cart-7d9");
    assert_eq!(
        pod_ev["involvedObject"]["uid"],
        "1f2e3d4c-0000-4000-8000-000000000001"
    );
    let node_ev = wait_for("node event", Duration::from_secs(5), || {
        find_event(&api, |e| {
            e["involvedObject"]["kind"] == "Node" && e["reason"] == "PodOOMKilling"
        })
    });
    assert_eq!(node_ev["message"], text);
    // A pod the API server does not know: the Node event carries the UID.
    agent.send(event(
        "PodOOMKilling",
        "Memory cgroup out of memory: Killed process 99 (java)",
        Some(oom("uid-gone", 99)),
    ));
    let ev = wait_for("unresolved event", Duration::from_secs(8), || {
        find_event(&api, |e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("uid-gone"))
        })
    });
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    // The pod list was asked with the node's field selector.
    assert!(api
        .requests()
        .iter()
        .any(|r| r.path == "/api/v1/pods" && r.query.contains("fieldSelector=spec.nodeName%3Dn1")));
}

#[test]
fn api_outage_converges_and_events_are_delivered() {
    let api = FakeApi::start();
    node_with_kubelet_conditions(&api);
    let dir = tempfile::tempdir().unwrap();
    let outcome = Arc::new(Mutex::new(Outcome::ok()));
    let agent = Agent::start(&api, dir.path(), vec![scripted(outcome.clone())]);
    wait_for("first sync", Duration::from_secs(5), || {
        api.condition("n1", "ScriptedProblem")
    });
    api.fail_for(Duration::from_secs(600), 500);
    *outcome.lock().unwrap() = Outcome::problem("HasScriptedProblem", "broken 50%");
    agent.send(event("KernelOops", "oops during the outage", None));
    // the outage lasts until both writers have been refused
    let refused = |path: &str| {
        api.requests()
            .iter()
            .any(|r| r.status == 500 && r.path.ends_with(path))
    };
    wait_for("refused writes", Duration::from_secs(10), || {
        (refused("/status") && refused("/events")).then_some(())
    });
    api.fail_for(Duration::ZERO, 500);
    let c = wait_for("convergence", Duration::from_secs(10), || {
        api.condition("n1", "ScriptedProblem")
            .filter(|c| c["status"] == "True")
    });
    assert_eq!(c["message"], "broken 50%");
    wait_for("outage event", Duration::from_secs(10), || {
        find_event(&api, |e| e["reason"] == "KernelOops")
    });
    wait_for("transition event", Duration::from_secs(10), || {
        find_event(&api, |e| e["reason"] == "HasScriptedProblem")
    });
    assert!(agent
        .metrics
        .render()
        .contains("nodeprobe_api_request_errors_total{request=\"patch_node_status\"}"));
}

#[test]
fn detection_latency_finding_to_event() {
    let api = FakeApi::start();
    node_with_kubelet_conditions(&api);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&api, dir.path(), vec![]);
    // Warm up the connection.
    agent.send(event("Warmup", "warm", None));
    wait_for("warm-up", Duration::from_secs(5), || {
        find_event(&api, |e| e["reason"] == "Warmup")
    });
    let mut samples = Vec::new();
    for i in 0..50 {
        let reason = format!("Latency{i}");
        let t0 = Instant::now();
        agent.send(event(&reason, "x", None));
        let at = wait_for("event", Duration::from_secs(5), || {
            api.requests()
                .iter()
                .rev()
                .find(|r| r.method == "POST" && r.at >= t0 && r.status == 201)
                .map(|r| r.at)
        });
        samples.push(at - t0);
    }
    samples.sort();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];
    eprintln!("finding -> Event at the fake API: p50 {p50:?}, p99 {p99:?}");
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}");
}
