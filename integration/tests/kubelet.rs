//! `kubectl apply -k` of deploy/base (through a test overlay) against the REAL API server,
//! with a REAL kubelet v1.20.2 registered as a Node of this machine (containerd 1.6 CRI,
//! runc), a real kube-controller-manager (DaemonSet and ServiceAccount token controllers)
//! and kube-scheduler: the DaemonSet controller creates the pod, the scheduler binds it, the
//! kubelet runs the image built from deploy/Dockerfile's final stage (imported, no registry)
//! with exactly the manifest's security settings, mounts the ServiceAccount token, and
//! probes it. The overlay only adapts the environment: the image name, the API server's
//! loopback address (no kube-proxy), free ports (and the test kubelet's healthz port for the
//! kubelet probe), a private state dir, the node it runs on, rules scoped to the test's
//! marker, and no `recursiveReadOnly` (a field newer than 1.20).

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::Path;
use std::time::{Duration, Instant};

use nodeprobe_integration::agent::{free_port, get_text, sample, scrape};
use nodeprobe_integration::kmsg::{kmsg_lock, kmsg_ok, kmsg_write, scoped_rules, task_hung};
use nodeprobe_integration::kube::{assert_host_read_only, deploy_dir, poll, Cluster, KubeNode};
use nodeprobe_integration::{oci, unique};
use serde_json::{json, Value};

/// The kubelet's conditions, which must survive nodeprobe's patches.
const KUBELET: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];
/// Conditions of nodeprobe's probes and kernel monitor that decide on any machine
/// (KubeletUnhealthy: this node's real kubelet, through the pod's host network).
const NODEPROBE: [&str; 6] = [
    "PidPressure",
    "KernelDeadlock",
    "ReadonlyFilesystem",
    "FDPressure",
    "ReadonlyMount",
    "KubeletUnhealthy",
];

/// The host-global sysctls a kubelet writes at start unless kept away from them.
const SYSCTLS: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

fn sysctls() -> Vec<String> {
    SYSCTLS
        .iter()
        .map(|s| std::fs::read_to_string(Path::new("/proc/sys").join(s)).unwrap_or_default())
        .collect()
}

/// The overlay: deploy/base plus what this environment needs. Returns its directory.
fn write_overlay(
    dir: &Path,
    base_ds: &Value,
    image: (&str, &str),
    cluster: &Cluster,
    node: &KubeNode,
    ports: (u16, u16),
    marker: &str,
) {
    // the test kubelet's healthz port (a node's is 10248)
    let kubelet_healthz_port =
        std::fs::read_to_string(node.dir.join("healthz-port")).expect("the kubelet's healthz port");
    let kubelet_healthz_port = kubelet_healthz_port.trim();
    let c = &base_ds["spec"]["template"]["spec"]["containers"][0];
    let idx = |list: &Value, key: &str, val: &str| {
        list.as_array()
            .and_then(|a| a.iter().position(|x| x[key] == val))
            .unwrap_or_else(|| panic!("{key}={val} not in {list}"))
    };
    let host_mount = idx(&c["volumeMounts"], "mountPath", "/host");
    let state_vol = idx(
        &base_ds["spec"]["template"]["spec"]["volumes"],
        "name",
        "state",
    );
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.split_once('=') {
                Some(("--port", _)) => format!("--port={}", ports.0),
                Some(("--prometheus-port", _)) => format!("--prometheus-port={}", ports.1),
                _ => a.to_string(),
            }
        })
        .collect();
    let ct = "/spec/template/spec/containers/0";
    let mut ops = vec![
        json!({"op": "add", "path": "/spec/template/spec/nodeSelector",
               "value": {"kubernetes.io/hostname": node.name}}),
        json!({"op": "replace", "path": format!("{ct}/args"), "value": args}),
        json!({"op": "replace", "path": format!("{ct}/livenessProbe/httpGet/port"), "value": ports.0}),
        json!({"op": "replace", "path": format!("{ct}/readinessProbe/httpGet/port"), "value": ports.0}),
        json!({"op": "add", "path": format!("{ct}/env/-"),
               "value": {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"}}),
        json!({"op": "add", "path": format!("{ct}/env/-"),
               "value": {"name": "KUBERNETES_SERVICE_PORT", "value": cluster.port().to_string()}}),
        json!({"op": "add", "path": format!("{ct}/env/-"),
               "value": {"name": "NODEPROBE_KUBELET_PORT", "value": kubelet_healthz_port}}),
        json!({"op": "replace", "path": format!("/spec/template/spec/volumes/{state_vol}/hostPath/path"),
               "value": dir.join("state").display().to_string()}),
    ];
    if c["volumeMounts"][host_mount]
        .get("recursiveReadOnly")
        .is_some()
    {
        ops.push(json!({"op": "remove",
                        "path": format!("{ct}/volumeMounts/{host_mount}/recursiveReadOnly")}));
    }
    std::fs::write(
        dir.join("daemonset-patch.json"),
        serde_json::to_string_pretty(&ops).unwrap(),
    )
    .unwrap();
    scoped_rules(dir, marker, "0");
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [relative_to(dir, &deploy_dir().join("base"))],
        "images": [{"name": "nodeprobe", "newName": image.0, "newTag": image.1}],
        "configMapGenerator": [{"name": "nodeprobe-rules", "namespace": "kube-system",
                                "behavior": "replace", "files": ["kernel-monitor.json"],
                                "options": {"disableNameSuffixHash": true}}],
        "patches": [{"path": "daemonset-patch.json",
                     "target": {"kind": "DaemonSet", "name": "nodeprobe"}}],
    });
    // kustomization.yaml: JSON is YAML.
    std::fs::write(dir.join("kustomization.yaml"), kustomization.to_string()).unwrap();
}

/// `target` as a path relative to `dir` (kustomize takes no absolute base).
fn relative_to(dir: &Path, target: &Path) -> String {
    let dir = dir.canonicalize().unwrap();
    let target = target.canonicalize().unwrap();
    let up = "../".repeat(dir.components().count() - 1);
    format!("{up}{}", target.strip_prefix("/").unwrap().display())
}

fn conditions(cluster: &Cluster, node: &str) -> Vec<Value> {
    cluster
        .get(&["node", node])
        .and_then(|n| n["status"]["conditions"].as_array().cloned())
        .unwrap_or_default()
}

fn find<'a>(conds: &'a [Value], t: &str) -> Option<&'a Value> {
    conds.iter().find(|c| c["type"] == t)
}

#[test]
fn daemonset_pod_on_a_real_kubelet_reports_and_stays_up() {
    if !kmsg_ok() {
        return;
    }
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let Some(bin) = oci::static_binary() else {
        return;
    };
    let _kmsg = kmsg_lock();
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-kubelet-")
        .tempdir()
        .unwrap();
    let m = unique("ds");
    let node_name = unique("node");
    let host_sysctls = sysctls();

    let t0 = Instant::now();
    let node = KubeNode::start(&cluster, &node_name);
    eprintln!("kubelet: Node {node_name} Ready after {:?}", t0.elapsed());
    assert_eq!(
        sysctls(),
        host_sysctls,
        "the kubelet changed host sysctls {SYSCTLS:?}"
    );

    // The image of deploy/Dockerfile's final stage, imported into the kubelet's containerd.
    let tag = format!("it-{}", std::process::id());
    let repo = "nodeprobe-it.local/nodeprobe";
    let archive = tmp.path().join("image.tar");
    oci::write_image(&bin, &format!("{repo}:{tag}"), &archive);
    oci::import(&node.containerd, "k8s.io", &archive);

    let base = cluster.kustomize(&deploy_dir().join("base"));
    let ds = base
        .iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("DaemonSet in deploy/base");
    let ports = (free_port(), free_port());
    write_overlay(tmp.path(), ds, (repo, &tag), &cluster, &node, ports, &m);
    let overlay = tmp.path().to_str().unwrap();
    let applied = Instant::now();
    cluster.kubectl(&["apply", "-k", overlay]);
    let cleanup = Cleanup {
        cluster: &cluster,
        overlay: overlay.to_string(),
        node: node_name.clone(),
    };

    // The DaemonSet controller's pod, bound by the scheduler, started by the kubelet, Ready
    // through its /readyz probe.
    let sel = format!("spec.nodeName={node_name}");
    let pod_now = || -> Option<Value> {
        cluster
            .get(&[
                "-n",
                "kube-system",
                "pods",
                "-l",
                "app=nodeprobe",
                "--field-selector",
                &sel,
            ])
            .and_then(|l| l["items"].as_array().and_then(|a| a.first().cloned()))
    };
    let context = || {
        let pod = pod_now().unwrap_or(Value::Null);
        format!(
            "pod status: {:#}\ncontainer logs:\n{}\nkubelet log (tail):\n{}",
            pod["status"],
            tail(
                &node.pod_logs(pod["metadata"]["uid"].as_str().unwrap_or("-")),
                20
            ),
            tail(&node.kubelet_log(), 10)
        )
    };
    let pod = poll("the pod Ready", Duration::from_secs(180), context, || {
        pod_now().filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
    });
    let ready_at = Instant::now();
    let ready_after = applied.elapsed();
    eprintln!("kubelet: pod Ready {ready_after:?} after `kubectl apply -k`");
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["kind"], "DaemonSet",
        "{pod:#}"
    );
    assert_eq!(get_text(ports.0, "/readyz").0, 200);
    assert_eq!(get_text(ports.0, "/livez").0, 200, "liveness endpoint");

    // What the runtime really applied (the CRI plugin's OCI spec of the container).
    let cid = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_string();
    let info: Value = serde_json::from_str(&node.ctr(&["containers", "info", &cid])).unwrap();
    let spec = &info["Spec"];
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(
            spec["process"]["capabilities"][set],
            json!(["CAP_SYSLOG"]),
            "{set} capabilities"
        );
    }
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["root"]["readonly"], true);
    assert!(
        spec["linux"]["seccomp"]["syscalls"].is_array(),
        "RuntimeDefault seccomp"
    );
    let host = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/host")
        .expect("/host mount");
    assert_eq!(host["source"], "/");
    assert!(
        host["options"].as_array().unwrap().contains(&json!("ro")),
        "{host}"
    );
    let pid: u32 = node
        .ctr(&["tasks", "ls"])
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&cid.as_str())).then(|| f[1].parse().ok())?
        })
        .expect("the container's task");
    // Host PID and network namespaces: the container's are this machine's.
    for ns in ["pid", "net"] {
        let of = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).ok();
        assert_eq!(
            of(&pid.to_string()),
            of("self"),
            "{ns} namespace of the container"
        );
    }
    let writable = assert_host_read_only(pid, ds);
    eprintln!("kubelet: writable mounts below /host (no recursive read-only in containerd 1.6): {writable:?}");

    // The pod's conditions on the Node, next to the kubelet's.
    let conds = poll(
        "nodeprobe's conditions on the Node",
        Duration::from_secs(30),
        || format!("{:#?}", conditions(&cluster, &node_name)),
        || {
            let c = conditions(&cluster, &node_name);
            NODEPROBE.iter().all(|t| find(&c, t).is_some()).then_some(c)
        },
    );
    for t in NODEPROBE {
        assert_eq!(find(&conds, t).unwrap()["status"], "False", "{conds:#?}");
    }
    let kubelet_hb = find(&conds, "Ready").unwrap()["lastHeartbeatTime"].clone();

    // A TaskHung line written on the host → an Event on the Node from the pod.
    let line = task_hung(&m, "kubelet-test");
    kmsg_write(3, &line);
    let ev = poll(
        "the TaskHung event",
        Duration::from_secs(30),
        || format!("{:#?}", cluster.events_about("default", &node_name)),
        || {
            cluster
                .events_about("default", &node_name)
                .into_iter()
                .find(|e| e["reason"] == "TaskHung" && e["message"] == line.as_str())
        },
    );
    assert_eq!(ev["source"]["component"], "kernel-monitor");
    assert_eq!(ev["source"]["host"], node_name.as_str());
    assert_eq!(ev["involvedObject"]["kind"], "Node");
    let metrics = scrape(ports.1);
    assert_eq!(
        sample(&metrics, "problem_counter{reason=\"TaskHung\"}"),
        Some(1.0),
        "{metrics}"
    );

    // A minute on a heartbeating kubelet: both writers' conditions stay, the pod never
    // restarts.
    while ready_at.elapsed() < Duration::from_secs(60) {
        let c = conditions(&cluster, &node_name);
        for t in KUBELET.iter().chain(NODEPROBE.iter()) {
            assert!(find(&c, t).is_some(), "{t} missing: {c:#?}");
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    let c = conditions(&cluster, &node_name);
    assert_eq!(find(&c, "Ready").unwrap()["status"], "True", "{c:#?}");
    assert_ne!(
        find(&c, "Ready").unwrap()["lastHeartbeatTime"],
        kubelet_hb,
        "the kubelet wrote its status meanwhile"
    );
    for t in KUBELET.iter().filter(|t| **t != "Ready") {
        assert_eq!(find(&c, t).unwrap()["status"], "False", "{c:#?}");
    }
    let pod = pod_now().expect("the pod");
    assert_eq!(pod["metadata"]["name"], pod_name.as_str());
    let st = &pod["status"]["containerStatuses"][0];
    assert_eq!(st["restartCount"], 0, "{pod:#}");
    assert_eq!(st["ready"], true, "{pod:#}");
    assert_eq!(
        sysctls(),
        host_sysctls,
        "the kubelet changed host sysctls {SYSCTLS:?}"
    );
    drop(cleanup);
    drop(node);
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Deletes what the overlay created and the Node, before the kubelet stops.
struct Cleanup<'a> {
    cluster: &'a Cluster,
    overlay: String,
    node: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl_in(&["delete", "-k", &self.overlay, "--wait=false"], "");
        // No garbage collector runs here: the DaemonSet's pod goes explicitly.
        let sel = format!("spec.nodeName={}", self.node);
        let _ = self.cluster.kubectl_in(
            &[
                "-n",
                "kube-system",
                "delete",
                "pods",
                "--field-selector",
                &sel,
                "--grace-period=0",
                "--force",
            ],
            "",
        );
        let _ = self
            .cluster
            .kubectl_in(&["delete", "node", &self.node, "--wait=false"], "");
    }
}
