//! deploy/monitoring against a real Prometheus (Debian's 2.42) scraping a real nodeprobe
//! agent (real probes, the real kernel log, real OOM kills; the fake API server for the Node,
//! the pods and fault injection), and the eventer when this build has it:
//!
//! - real problems make the shipped alerts go firing, with the labels and annotations the
//!   runbooks name (the rules are the shipped file with every `for:` cut to 1s; thresholds
//!   and windows unchanged);
//! - every series a rule or a dashboard query selects exists, and carries every label the
//!   expression groups or matches by;
//! - every dashboard query is accepted by the server and returns data.
//!
//! Series from the kubelet's cAdvisor (the footprint panels) have no source here: those
//! queries are evaluated (so they parse) but not required to return data.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

mod monitoring_common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use monitoring_common::*;
use nodeprobe_integration::agent::{free_port, kubelet_node, wait_for, Agent, NODE};
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::kmsg::{default_kernel_rules, kmsg_lock, kmsg_ok, kmsg_write};
use nodeprobe_integration::oom::{oom_ok, PodCgroup};
use nodeprobe_integration::prometheus::{prometheus_ok, Prometheus};
use nodeprobe_integration::{binary, is_root, require, unique, Tmpfs};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// The shipped rule file with every `for:` set to 1s (nothing else changed).
fn rules_with_short_for() -> String {
    let mut rules = yaml(&rules_path());
    for g in rules["groups"].as_sequence_mut().unwrap() {
        for r in g["rules"].as_sequence_mut().unwrap() {
            if let Some(f) = r.get_mut("for") {
                *f = serde_yaml::Value::from("1s");
            }
        }
    }
    serde_yaml::to_string(&rules).unwrap()
}

/// A scrape job of the test Prometheus: job name, (address, extra labels) per target.
struct Job {
    name: &'static str,
    targets: Vec<(String, Vec<(&'static str, String)>)>,
}

fn config(jobs: &[Job]) -> String {
    let mut s = String::from(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nrule_files: [nodeprobe.rules.yml]\nscrape_configs:\n",
    );
    for j in jobs {
        s.push_str(&format!("  - job_name: {}\n    static_configs:\n", j.name));
        for (addr, labels) in &j.targets {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
            s.push_str(&format!(
                "      - targets: [{addr:?}]\n        labels: {{{}}}\n",
                l.join(", ")
            ));
        }
    }
    s
}

/// `nodeprobe eventer` against the fake API server with a `log:` sink (delivers) and a
/// webhook sink nobody listens on (fails, retries, drops), when this build has the
/// eventer. Killed on drop.
struct EventerProcess {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for EventerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_eventer() -> bool {
    Command::new(binary())
        .args(["eventer", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn start_eventer(api: &FakeApi) -> Option<EventerProcess> {
    if !has_eventer() {
        eprintln!(
            "NOTE: this build has no `nodeprobe eventer`: the eventer's rules and panels are \
             parsed and unit-tested only (their series are checked once the eventer is built in)"
        );
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("nodeprobe-it-eventer-")
        .tempdir()
        .unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let port = free_port();
    let dead = format!("webhook:http://127.0.0.1:{}/", free_port());
    let mut cmd = Command::new(binary());
    cmd.args(["--log-level", "info", "eventer", "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            "--healthz-ip",
            "127.0.0.1",
            "--healthz-port",
            &port.to_string(),
        ])
        .args(["--sink", "log:", "--sink", &dead])
        .args([
            "--retry-max",
            "1",
            "--retry-backoff",
            "100ms",
            "--sink-timeout",
            "2s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("eventer.log")).unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("NODEPROBE_") || k == "KUBECONFIG" {
            cmd.env_remove(k);
        }
    }
    let child = cmd.spawn().expect("start nodeprobe eventer");
    Some(EventerProcess {
        child,
        port,
        _dir: dir,
    })
}

/// The firing alerts named `name` whose labels include every pair of `labels`.
fn firing(p: &Prometheus, name: &str, labels: &[(&str, &str)]) -> Option<Value> {
    p.alerts().into_iter().find(|a| {
        a["state"] == "firing"
            && a["labels"]["alertname"] == name
            && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
    })
}

fn wait_firing(p: &Prometheus, agent: &Agent, name: &str, labels: &[(&str, &str)]) -> Value {
    wait_for(&format!("{name} {labels:?} firing"), WAIT, agent, || {
        firing(p, name, labels)
    })
}

#[test]
fn real_prometheus_scrapes_the_agent_and_fires_the_shipped_alerts() {
    if !prometheus_ok() || !require(is_root(), "root (tmpfs, memcg)") || !kmsg_ok() || !oom_ok() {
        return;
    }
    let _kmsg = kmsg_lock();
    let m = unique("mon");
    let work = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    kubelet_node(&api);
    // Four pods of one namespace on this node, to be OOM-killed for real.
    let ns = format!("{m}-ns");
    let pods: Vec<PodCgroup> = (0..4).map(|_| PodCgroup::create(20)).collect();
    for (i, cg) in pods.iter().enumerate() {
        api.add_pod(
            &ns,
            &format!("{m}-pod{i}"),
            &cg.uid,
            NODE,
            &[("app", &format!("containerd://{}", cg.container_id))],
        );
    }
    let fs = Tmpfs::with_inodes(100);
    // The shipped kernel rules (from now on), and a journal monitor on a journal directory
    // without a journal (a log source that cannot be read).
    let kernel = work.path().join("kernel-monitor.json");
    std::fs::write(&kernel, default_kernel_rules("0")).unwrap();
    let journal_source = format!("{m}-journal");
    let journal = work.path().join("missing-journal.json");
    let journal_dir = work.path().join("empty-journal");
    std::fs::create_dir(&journal_dir).unwrap();
    std::fs::write(
        &journal,
        serde_json::json!({"plugin": "journald", "pluginConfig": {"source": "nodeprobe-it"},
            "logPath": journal_dir, "lookback": "0",
            "source": journal_source, "conditions": [], "rules": []})
        .to_string(),
    )
    .unwrap();
    let monitors = PathBuf::from(format!("{},{}", kernel.display(), journal.display()));
    let closed = free_port();
    let metadata = format!("http://127.0.0.1:{closed}");
    let agent = Agent::start_with_logs(
        &api,
        &monitors,
        work.path(),
        &[
            "--probes",
            "inodes,spot",
            "--inodes-mounts",
            fs.path().to_str().unwrap(),
            "--inodes-interval",
            "500ms",
            // spot can not reach its metadata service: InstanceExpired Unknown
            "--cloud",
            "aws",
            "--metadata-endpoint",
            &metadata,
            "--spot-interval",
            "1s",
            // the 6th TaskHung create within the burst is dropped (cause budget)
            "--event-budget-burst",
            "5",
        ],
    );
    agent.wait_for_kmsg_monitor();
    let eventer = start_eventer(&api);

    let mut jobs = vec![Job {
        name: "nodeprobe",
        targets: vec![
            (
                format!("127.0.0.1:{}", agent.metrics_port),
                vec![("node", NODE.to_string())],
            ),
            // an agent that is down
            (
                format!("127.0.0.1:{closed}"),
                vec![("node", format!("{m}-down"))],
            ),
        ],
    }];
    if let Some(e) = &eventer {
        jobs.push(Job {
            name: "nodeprobe-eventer",
            targets: vec![(format!("127.0.0.1:{}", e.port), vec![])],
        });
    }
    let prom = Prometheus::start(
        &config(&jobs),
        &[("nodeprobe.rules.yml", &rules_with_short_for())],
    );
    wait_for("the agent scraped", WAIT, &agent, || {
        prom.query(r#"up{job="nodeprobe",node="n1"} == 1"#)
            .ok()
            .filter(|r| !r.is_empty())
    });

    // Real problems.
    for i in 0..95 {
        std::fs::write(fs.path().join(format!("f{i}")), b"").unwrap();
    }
    kmsg_write(
        2,
        &format!("{m}: EXT4-fs (loop9): Remounting filesystem read-only"),
    );
    kmsg_write(
        1,
        &format!("{m}: BUG: kernel NULL pointer dereference, address: 0000000000000008"),
    );
    for i in 0..6 {
        kmsg_write(
            3,
            &format!(
                "{m}: INFO: task {m}-{i}:{} blocked for more than 120 seconds.",
                100 + i
            ),
        );
    }
    for cg in &pods {
        cg.oom_kill();
    }

    // The alerts, with the labels the rules promise.
    let inodes = wait_firing(
        &prom,
        &agent,
        "NodeprobeConditionTrue",
        &[
            ("node", NODE),
            ("type", "InodesPressure"),
            ("reason", "NodeHasInodesPressure"),
        ],
    );
    let message = api.condition(NODE, "InodesPressure").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("inode usage over"), "{message}");
    let desc = inodes["annotations"]["description"].as_str().unwrap();
    assert!(
        desc.ends_with(&format!("with reason NodeHasInodesPressure: {message}")),
        "the description carries the condition's message: {desc}"
    );
    assert_eq!(inodes["labels"]["severity"], "warning");
    assert_eq!(
        inodes["annotations"]["runbook_url"],
        "README.md#nodeprobeconditiontrue"
    );
    let ro = wait_firing(
        &prom,
        &agent,
        "NodeprobeReadonlyFilesystem",
        &[("node", NODE), ("reason", "FilesystemIsReadOnly")],
    );
    assert!(
        ro["annotations"]["description"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                "{m}: EXT4-fs (loop9): Remounting filesystem read-only"
            )),
        "{ro:#}"
    );
    wait_firing(
        &prom,
        &agent,
        "NodeprobeConditionUnknown",
        &[("node", NODE), ("type", "InstanceExpired")],
    );
    wait_firing(&prom, &agent, "NodeprobeTaskHung", &[("node", NODE)]);
    wait_firing(&prom, &agent, "NodeprobeKernelOops", &[("node", NODE)]);
    wait_firing(&prom, &agent, "NodeprobeOOMKillsOnNode", &[("node", NODE)]);
    wait_firing(
        &prom,
        &agent,
        "NodeprobeOOMKillsInNamespace",
        &[("pod_namespace", &ns)],
    );
    let down = format!("{m}-down");
    wait_firing(
        &prom,
        &agent,
        "NodeprobeTargetDown",
        &[("job", "nodeprobe"), ("node", &down)],
    );
    wait_firing(
        &prom,
        &agent,
        "NodeprobeLogSourceDown",
        &[("node", NODE), ("source", &journal_source)],
    );
    wait_firing(
        &prom,
        &agent,
        "NodeprobeEventsDropped",
        &[("node", NODE), ("reason", "TaskHung"), ("cause", "budget")],
    );
    // ... and not where there is no problem.
    for a in &prom.alerts() {
        let l = &a["labels"];
        assert!(
            !(l["alertname"] == "NodeprobeConditionTrue" && l["type"] == "ReadonlyFilesystem"),
            "ReadonlyFilesystem has its own alert: {a:#}"
        );
        assert!(
            !(l["alertname"] == "NodeprobeLogSourceDown" && l["source"] == "kernel-monitor"),
            "the kernel log is readable: {a:#}"
        );
        assert!(
            !(l["alertname"] == "NodeprobeTargetDown" && l["node"] == NODE),
            "the agent is up: {a:#}"
        );
    }

    // The API server fails every write for a while: a condition change cannot be written.
    api.fail_for(Duration::from_secs(10), 500);
    for i in 0..95 {
        std::fs::remove_file(fs.path().join(format!("f{i}"))).unwrap();
    }
    wait_firing(
        &prom,
        &agent,
        "NodeprobeAPIWriteErrors",
        &[("node", NODE), ("request", "patch_node_status")],
    );
    if eventer.is_some() {
        wait_firing(&prom, &agent, "NodeprobeEventerSinkFailing", &[]);
        wait_firing(&prom, &agent, "NodeprobeEventerEventsDropped", &[]);
        wait_for("the eventer delivered", WAIT, &agent, || {
            prom.query(r#"sum(nodeprobe_eventer_sink_delivered_total{sink="log"}) > 0"#)
                .ok()
                .filter(|r| !r.is_empty())
        });
    }

    // Every series the rules and the dashboard read exists, with every label they use.
    let mut exprs: Vec<(String, String)> = alerts()
        .into_iter()
        .map(|a| (format!("alert {}", a.name), a.expr))
        .collect();
    exprs.extend(
        dashboard_queries()
            .into_iter()
            .map(|q| (format!("panel {:?}", q.panel), q.expr)),
    );
    let skip = |sel: &str| from_cadvisor(sel) || (eventer.is_none() && from_eventer(sel));
    let mut checked = 0;
    for (what, expr) in &exprs {
        let u = usage(expr).unwrap();
        for sel in u.selectors.iter().filter(|s| !skip(s)) {
            let series = prom.series(sel).unwrap();
            assert!(!series.is_empty(), "{what}: no series for {sel}");
            checked += 1;
        }
        for (label, sels) in &u.grouping {
            for sel in sels.iter().filter(|s| !skip(s)) {
                for s in prom.series(sel).unwrap() {
                    assert!(
                        s[label.as_str()].as_str().is_some_and(|v| !v.is_empty()),
                        "{what}: series {s} of {sel} has no label {label:?}"
                    );
                }
            }
        }
    }
    for (sel, label) in dashboard_label_values() {
        let series = prom.series(&sel).unwrap();
        assert!(
            series.iter().any(|s| s[label.as_str()] == NODE),
            "variable label_values({sel}, {label}): {series:?}"
        );
    }
    // Every dashboard query is accepted and (but for cAdvisor's) returns data.
    for q in dashboard_queries() {
        let result = prom
            .query(&q.expr)
            .unwrap_or_else(|e| panic!("panel {:?}: {} rejected: {e}", q.panel, q.expr));
        let u = usage(&q.expr).unwrap();
        if u.selectors.iter().any(|s| skip(s)) {
            continue;
        }
        assert!(
            !result.is_empty(),
            "panel {:?}: {} returned no data",
            q.panel,
            q.expr
        );
    }
    assert!(checked >= 30, "{checked} selectors checked");
    let firing_now = prom
        .alerts()
        .iter()
        .filter(|a| a["state"] == "firing")
        .count();
    eprintln!(
        "checked {checked} selectors of {} expressions; {firing_now} alerts firing",
        exprs.len()
    );
    // Prometheus evaluated every rule without an error.
    let (_, groups) = prom.get("/api/v1/rules");
    for g in groups["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r:#}");
        }
    }
    let log = prom.log();
    assert!(
        !log.contains("level=error"),
        "prometheus logged errors:\n{log}"
    );
    drop(prom);
    drop(eventer);
    drop(agent);
    drop(pods);
}
