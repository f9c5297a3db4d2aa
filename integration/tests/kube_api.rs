//! The built binary in daemon mode against a REAL kube-apiserver (v1.20.2, RBAC and Node
//! authorization on; `env/kube-start.sh`), authenticated as the ServiceAccount of
//! `deploy/base` with a token from the TokenRequest API — so the ClusterRole shipped in
//! `deploy/base/rbac.yaml` is what the real authorizer enforces. The fake API server
//! (`agent*.rs`) keeps the fault injection (5xx, hangs, restarts).
//!
//! The agent reads the real kernel log; every test holds the kmsg lock and scopes the
//! default rules to its own marker.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::{Path, PathBuf};
use std::sync::MutexGuard;
use std::time::Duration;

use nodeprobe_integration::agent::{sample, scrape, Agent};
use nodeprobe_integration::kmsg::{
    default_kernel_rules, kmsg_lock, kmsg_ok, kmsg_write, scoped_rules, task_hung,
};
use nodeprobe_integration::kube::{poll, Cluster, TestNode};
use nodeprobe_integration::oom::{oom_ok, PodCgroup};
use nodeprobe_integration::unique;
use serde_json::{json, Value};

/// Log monitors plus two probes that decide on any machine.
const PROBES: &[&str] = &["--probes", "inodes,pid-pressure"];
/// Log monitors only.
const NO_PROBES: &[&str] = &[
    "--disable-probes",
    "inodes,pid-pressure,fd-pressure,psi,readonly-mounts,hung-tasks,systemd,ntp,runtime,kubelet,spot,network",
];

struct Setup {
    cluster: Cluster,
    /// Kubeconfig of deploy/base's ServiceAccount (kube-system/nodeprobe).
    sa: PathBuf,
    m: String,
    tmp: tempfile::TempDir,
    _kmsg: MutexGuard<'static, ()>,
}

fn setup(tag: &str) -> Option<Setup> {
    if !kmsg_ok() {
        return None;
    }
    let cluster = Cluster::from_env()?;
    let kmsg = kmsg_lock();
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-kube-")
        .tempdir()
        .unwrap();
    cluster.apply_base_rbac();
    let sa = cluster.service_account_kubeconfig("kube-system", "nodeprobe", tmp.path());
    Some(Setup {
        cluster,
        sa,
        m: unique(tag),
        tmp,
        _kmsg: kmsg,
    })
}

fn start(s: &Setup, node: &str, rules: &Path, extra: &[&str]) -> Agent {
    let agent = Agent::start_with_kubeconfig(&s.sa, node, rules, s.tmp.path(), extra);
    agent.wait_for_kmsg_monitor();
    agent
}

/// Events in `default` about `node` whose message mentions `marker`: (reason, message, count).
fn marked(c: &Cluster, node: &str, marker: &str) -> Vec<(String, String, u64)> {
    let mut v: Vec<(String, String, u64)> = c
        .events_about("default", node)
        .iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.contains(marker)))
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
                e["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    v.sort();
    v
}

fn kubelet_conditions(node: &TestNode) -> Vec<Value> {
    node.conditions()
        .into_iter()
        .filter(|c| {
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
                .contains(&c["type"].as_str().unwrap_or(""))
        })
        .collect()
}

#[test]
fn conditions_merge_with_the_kubelets_events_show_in_describe_and_restart_sends_no_duplicates() {
    let Some(s) = setup("merge") else {
        return;
    };
    let c = &s.cluster;
    let node = TestNode::create(c, &unique("node"));
    let kubelet = kubelet_conditions(&node);
    assert_eq!(kubelet.len(), 4, "{kubelet:#?}");
    // lookback 5m: without its cursor in --state-dir a restarted agent would read again.
    let rules = scoped_rules(s.tmp.path(), &s.m, "5m");
    let mut first = start(&s, &node.name, &rules, PROBES);
    let logs = |a: &Agent| a.logs();

    // Strategic merge by type: nodeprobe's conditions appear, the kubelet's stay as they were.
    for t in [
        "InodesPressure",
        "PidPressure",
        "KernelDeadlock",
        "ReadonlyFilesystem",
    ] {
        let cond = poll(
            &format!("{t} on the Node"),
            Duration::from_secs(30),
            || logs(&first),
            || c.node_condition(&node.name, t),
        );
        assert_eq!(cond["status"], "False", "{cond:#}");
    }
    assert_eq!(kubelet_conditions(&node), kubelet);
    assert_eq!(first.get(first.status_port, "/readyz").0, 200);

    // A kernel line → an Event on the Node that `kubectl describe node` lists.
    let a = task_hung(&s.m, "line-a");
    kmsg_write(3, &a);
    let ev = poll(
        "TaskHung event",
        Duration::from_secs(20),
        || logs(&first),
        || {
            c.events_about("default", &node.name)
                .into_iter()
                .find(|e| e["reason"] == "TaskHung" && e["message"] == a.as_str())
        },
    );
    assert_eq!(ev["type"], "Warning", "{ev:#}");
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    assert_eq!(ev["involvedObject"]["uid"], node.uid.as_str());
    assert_eq!(ev["source"]["component"], "kernel-monitor");
    assert_eq!(ev["source"]["host"], node.name.as_str());
    let describe = c.kubectl(&["describe", "node", &node.name]);
    let events = describe
        .split("\nEvents:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Events section:\n{describe}"));
    let row = events
        .lines()
        .find(|l| l.contains(&a))
        .unwrap_or_else(|| panic!("the event is not in `kubectl describe node`:\n{describe}"));
    for col in ["Warning", "TaskHung", "kernel-monitor"] {
        assert!(row.contains(col), "{col} missing from {row:?}");
    }
    for t in ["InodesPressure", "KernelDeadlock", "Ready"] {
        assert!(
            describe.lines().any(|l| l.trim_start().starts_with(t)),
            "condition {t} missing from describe:\n{describe}"
        );
    }

    // A condition from the kernel log, then a restart: nothing twice, transitions kept.
    let ro = format!("{}: EXT4-fs (sda1): Remounting filesystem read-only", s.m);
    kmsg_write(2, &ro);
    let c1 = poll(
        "ReadonlyFilesystem True",
        Duration::from_secs(20),
        || logs(&first),
        || {
            c.node_condition(&node.name, "ReadonlyFilesystem")
                .filter(|x| x["status"] == "True")
        },
    );
    assert_eq!(c1["reason"], "FilesystemIsReadOnly");
    assert_eq!(c1["message"], ro.as_str());
    let ro_event = format!("Node condition ReadonlyFilesystem is now: True, reason: FilesystemIsReadOnly, message: \"{ro}\"");
    poll(
        "FilesystemIsReadOnly event",
        Duration::from_secs(20),
        || logs(&first),
        || {
            marked(c, &node.name, &s.m)
                .into_iter()
                .find(|e| e.1 == ro_event)
        },
    );
    assert_eq!(first.terminate().0, Some(0), "{}", first.logs());

    let b = task_hung(&s.m, "line-b"); // written while the agent is down
    kmsg_write(3, &b);
    let mut second = start(&s, &node.name, &rules, PROBES);
    let d = task_hung(&s.m, "line-d");
    kmsg_write(3, &d);
    let hung = |l: &String| ("TaskHung".to_string(), l.clone(), 1);
    let mut want = vec![
        ("FilesystemIsReadOnly".to_string(), ro_event.clone(), 1),
        hung(&a),
        hung(&b),
        hung(&d),
    ];
    want.sort();
    poll(
        "events of both runs",
        Duration::from_secs(20),
        || format!("{:#?}\n{}", marked(c, &node.name, &s.m), logs(&second)),
        || (marked(c, &node.name, &s.m).len() >= want.len()).then_some(()),
    );
    // Let a duplicate, if the restart were to send one, arrive.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(marked(c, &node.name, &s.m), want);
    let c2 = c.node_condition(&node.name, "ReadonlyFilesystem").unwrap();
    assert_eq!(c2["status"], "True");
    assert_eq!(c2["lastTransitionTime"], c1["lastTransitionTime"], "{c2:#}");
    assert_eq!(kubelet_conditions(&node), kubelet);
    assert_eq!(second.terminate().0, Some(0), "{}", second.logs());
}

#[test]
fn real_oom_kill_event_lands_on_the_real_pod() {
    if !oom_ok() {
        return;
    }
    let Some(s) = setup("oom") else {
        return;
    };
    let c = &s.cluster;
    let node = TestNode::create(c, &unique("node"));
    let ns = s.m.clone();
    c.kubectl(&["create", "namespace", &ns]);
    // No controller manager runs here: the namespace's default ServiceAccount is made by hand.
    c.kubectl(&["-n", &ns, "create", "serviceaccount", "default"]);
    let pod_name = "oom-victim";
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": ns},
        "spec": {"nodeName": node.name, "automountServiceAccountToken": false,
                 "containers": [{"name": "sidecar", "image": "nodeprobe-it.invalid/sidecar:1"},
                                {"name": "app", "image": "nodeprobe-it.invalid/app:1"}]}});
    c.apply(&pod.to_string());
    let uid = c.get(&["-n", &ns, "pod", pod_name]).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    // What the kubelet would report for the running containers.
    let cid: String = uid
        .replace('-', "")
        .chars()
        .chain("0123456789abcdef".chars().cycle())
        .take(64)
        .collect();
    let status = |name: &str, id: &str| {
        json!({"name": name, "ready": true, "restartCount": 0, "image": format!("nodeprobe-it.invalid/{name}:1"),
               "imageID": "", "containerID": format!("containerd://{id}"),
               "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
    };
    let patch = json!({"status": {"phase": "Running", "containerStatuses": [
        status("sidecar", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        status("app", &cid)]}});
    c.kubectl(&[
        "-n",
        &ns,
        "patch",
        "pod",
        pod_name,
        "--subresource=status",
        "--type=strategic",
        "-p",
        &patch.to_string(),
    ]);
    let cg = PodCgroup::create_for(&uid, &cid, 20);
    let rules = s.tmp.path().join("kernel-monitor.json");
    std::fs::write(&rules, default_kernel_rules("0")).unwrap();
    let mut agent = start(&s, &node.name, &rules, NO_PROBES);
    cg.oom_kill();

    let on_pod = poll(
        "the OOM event on the Pod",
        Duration::from_secs(30),
        || agent.logs(),
        || c.events_about(&ns, pod_name).into_iter().next(),
    );
    assert_eq!(on_pod["reason"], "PodOOMKilling", "{on_pod:#}");
    assert_eq!(on_pod["type"], "Warning");
    assert_eq!(on_pod["involvedObject"]["kind"], "Pod");
    assert_eq!(on_pod["involvedObject"]["uid"], uid.as_str());
    let msg = on_pod["message"].as_str().unwrap().to_string();
    let prefix = format!("container app of pod {ns}/{pod_name} was OOM-killed: task python3, pid ");
    assert!(msg.starts_with(&prefix), "{msg}");
    let describe = c.kubectl(&["-n", &ns, "describe", "pod", pod_name]);
    assert!(
        describe
            .lines()
            .any(|l| l.contains("PodOOMKilling") && l.contains(&msg)),
        "the event is not in `kubectl describe pod`:\n{describe}"
    );
    poll(
        "the OOM event on the Node",
        Duration::from_secs(20),
        || agent.logs(),
        || {
            c.events_about("default", &node.name)
                .into_iter()
                .find(|e| e["reason"] == "PodOOMKilling" && e["message"] == msg.as_str())
        },
    );
    assert_eq!(c.events_about(&ns, pod_name).len(), 1);
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());
    drop(cg);
    let _ = c.kubectl_in(
        &[
            "-n",
            &ns,
            "delete",
            "pod",
            pod_name,
            "--grace-period=0",
            "--force",
        ],
        "",
    );
    let _ = c.kubectl_in(&["delete", "namespace", &ns, "--wait=false"], "");
}

/// deploy/base's ClusterRole under `name`, without `verb` on `resource`.
fn role_without(c: &Cluster, name: &str, missing: &[(&str, &str)]) -> Value {
    let mut role = c
        .kustomize(&nodeprobe_integration::kube::deploy_dir().join("base"))
        .into_iter()
        .find(|o| o["kind"] == "ClusterRole")
        .expect("ClusterRole in deploy/base");
    role["metadata"] = json!({"name": name});
    for rule in role["rules"].as_array_mut().unwrap() {
        let resources: Vec<String> = rule["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let verbs = rule["verbs"].as_array_mut().unwrap();
        for (res, verb) in missing {
            if resources.iter().any(|r| r == res) {
                verbs.retain(|v| v != verb);
            }
        }
    }
    role["rules"]
        .as_array_mut()
        .unwrap()
        .retain(|r| r["verbs"].as_array().is_some_and(|v| !v.is_empty()));
    role
}

#[test]
fn a_missing_rbac_verb_is_a_clear_error_not_a_silent_drop() {
    let Some(s) = setup("rbac") else {
        return;
    };
    let c = &s.cluster;
    let node = TestNode::create(c, &unique("node"));
    // deploy/base's role minus `patch nodes/status` and `create events`, bound to a fresh SA.
    let name = s.m.clone();
    let role = role_without(c, &name, &[("nodes/status", "patch"), ("events", "create")]);
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}]});
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": "kube-system"}});
    c.apply(&json!({"apiVersion": "v1", "kind": "List", "items": [sa, role, binding]}).to_string());
    let kubeconfig = c.service_account_kubeconfig("kube-system", &name, s.tmp.path());
    let rules = scoped_rules(s.tmp.path(), &s.m, "0");
    let mut agent =
        Agent::start_with_kubeconfig(&kubeconfig, &node.name, &rules, s.tmp.path(), PROBES);
    agent.wait_for_kmsg_monitor();
    let line = task_hung(&s.m, "forbidden");
    kmsg_write(3, &line);

    let user = format!("system:serviceaccount:kube-system:{name}");
    let denied = |verb: &str, resource: &str| {
        format!("User \\\"{user}\\\" cannot {verb} resource \\\"{resource}\\\"")
    };
    // The log names who was refused what, for both writes; the event is given up (counted),
    // not retried forever and not dropped silently; the agent stays up and not ready.
    for (verb, resource) in [("patch", "nodes/status"), ("create", "events")] {
        let want = denied(verb, resource);
        let want_plain = want.replace("\\\"", "\"");
        poll(
            &format!("a log line: {want_plain}"),
            Duration::from_secs(30),
            || agent.logs(),
            || {
                let l = agent.logs();
                (l.contains(&want) || l.contains(&want_plain)).then_some(())
            },
        );
    }
    let metrics = poll(
        "the dropped event counted",
        Duration::from_secs(10),
        || scrape(agent.metrics_port),
        || {
            let m = scrape(agent.metrics_port);
            (sample(&m, "nodeprobe_events_dropped_total{source=\"kernel-monitor\",reason=\"TaskHung\",cause=\"api\"}") == Some(1.0))
                .then_some(m)
        },
    );
    assert!(
        sample(
            &metrics,
            "nodeprobe_api_request_errors_total{request=\"patch_node_status\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(agent.logs().contains("giving up on an event"));
    assert_eq!(agent.get(agent.status_port, "/readyz").0, 503);
    assert!(agent.running(), "{}", agent.logs());
    // Nothing got through: no nodeprobe condition on the Node, no event.
    assert!(c.node_condition(&node.name, "InodesPressure").is_none());
    assert!(marked(c, &node.name, &s.m).is_empty());
    assert_eq!(agent.terminate().0, Some(0), "{}", agent.logs());
    let _ = c.kubectl_in(
        &[
            "delete",
            "clusterrolebinding,clusterrole",
            &name,
            "--wait=false",
        ],
        "",
    );
    let _ = c.kubectl_in(
        &["-n", "kube-system", "delete", "serviceaccount", &name],
        "",
    );
}
