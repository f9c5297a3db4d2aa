//! A real kube-apiserver (v1.20.2, RBAC on) from the test environment: `services-start.sh`
//! starts it with `env/kube-start.sh` and writes `NODEPROBE_IT_KUBECONFIG` (admin),
//! `NODEPROBE_IT_KUBE_SERVER`, `NODEPROBE_IT_KUBE_BIN` and `NODEPROBE_IT_KUBE_DIR` (its
//! credentials) to services.env. The tests drive it with `kubectl` (the one on PATH, whose
//! kustomize understands `deploy/`), as an operator would; objects they create carry unique
//! `nodeprobe-it-` names and are deleted by guards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::runtimes::have;
use crate::{is_root, require};

/// The repository's `deploy/` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The objects of `kubectl kustomize <dir>` (no API server needed), one JSON value per
/// document. Panics with kubectl's output when it fails.
pub fn kustomize(dir: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let out = crate::sh("kubectl", &["kustomize", dir.to_str().expect("utf-8 path")]);
    serde_yaml::Deserializer::from_str(&out)
        .map(|d| Value::deserialize(d).expect("kustomize output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The DaemonSet of `kubectl kustomize deploy/base`.
pub fn base_daemonset() -> Value {
    kustomize(&deploy_dir().join("base"))
        .into_iter()
        .find(|o| o["kind"] == "DaemonSet")
        .expect("a DaemonSet in deploy/base")
}

/// `text` without ANSI colour sequences (`ESC [ … m`), which the agent writes to its log
/// even when it is not a terminal.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' && it.peek() == Some(&'[') {
            for d in it.by_ref() {
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

/// Mount points at or below `prefix` in process `pid`'s view, each with whether it is
/// read-only. Where mounts are stacked on one point, the topmost (the one a path lookup
/// reaches: the last in mountinfo) counts.
pub fn mounts_below(pid: u32, prefix: &str) -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let mut out: Vec<(String, bool)> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let (Some(point), Some(opts)) = (f.get(4), f.get(5)) else {
            continue;
        };
        if *point == prefix || point.starts_with(&format!("{prefix}/")) {
            let ro = opts.split(',').any(|o| o == "ro");
            out.retain(|(p, _)| p != point);
            out.push((point.to_string(), ro));
        }
    }
    out
}

/// Assert that every `readOnly` volume mount of the DaemonSet `ds` at or below `/host` is a
/// read-only mount in container process `pid`; returns the mount points below `/host` that
/// are writable all the same (submounts a non-recursive read-only bind leaves writable).
pub fn assert_host_read_only(pid: u32, ds: &Value) -> Vec<String> {
    let mounts = mounts_below(pid, "/host");
    let read_only: Vec<&str> = ds["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .filter(|m| m["readOnly"] == true)
        .filter_map(|m| m["mountPath"].as_str())
        .filter(|p| *p == "/host" || p.starts_with("/host/"))
        .collect();
    assert!(read_only.len() > 1, "{read_only:?}");
    for p in read_only {
        let m = mounts.iter().find(|(point, _)| point == p);
        assert!(
            m.is_some_and(|(_, ro)| *ro),
            "{p} is not a read-only mount in the container: {mounts:#?}"
        );
    }
    mounts
        .into_iter()
        .filter(|(_, ro)| !ro)
        .map(|(p, _)| p)
        .collect()
}

/// The test environment's API server.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Admin kubeconfig (a system:masters token).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// The cache's bin directory (kube-apiserver, kubelet, …).
    pub bin: PathBuf,
    /// The control plane's directory (`pki/ca.crt`, `pki/ca.key`, `pki/sa.key`, kubeconfigs).
    pub dir: PathBuf,
}

impl Cluster {
    /// The API server of services.env; `None` (skip, or fail in CI) when it is not running
    /// or `kubectl` is missing.
    pub fn from_env() -> Option<Cluster> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let got = (
            var("NODEPROBE_IT_KUBECONFIG"),
            var("NODEPROBE_IT_KUBE_SERVER"),
            var("NODEPROBE_IT_KUBE_BIN"),
            var("NODEPROBE_IT_KUBE_DIR"),
        );
        let ok = require(
            matches!(got, (Some(_), Some(_), Some(_), Some(_))),
            "a real kube-apiserver (NODEPROBE_IT_KUBECONFIG etc. from services.env)",
        ) && require(have("kubectl"), "kubectl on PATH")
            && require(is_root(), "root");
        let (Some(k), Some(s), Some(b), Some(d)) = got else {
            return None;
        };
        ok.then(|| Cluster {
            kubeconfig: k.into(),
            server: s,
            bin: b.into(),
            dir: d.into(),
        })
    }

    /// The CA that signed the API server's certificate (and verifies client certificates).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("pki/ca.crt")
    }

    /// The API server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in NODEPROBE_IT_KUBE_SERVER")
    }

    /// Run `kubectl` as the admin with `stdin`.
    pub fn kubectl_in(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--request-timeout", "30s"])
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        child.wait_with_output().expect("wait for kubectl")
    }

    /// Run `kubectl` as the admin; its stdout. Panics with its output when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, "")
    }

    /// [`Cluster::kubectl`] with `stdin` (e.g. `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let o = self.kubectl_in(args, stdin);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kubectl get … -o json`, parsed; `None` when it does not exist (or kubectl fails).
    pub fn get(&self, args: &[&str]) -> Option<Value> {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let o = self.kubectl_in(&a, "");
        if !o.status.success() {
            return None;
        }
        serde_json::from_slice(&o.stdout).ok()
    }

    /// `kubectl apply -f -` of objects (JSON or YAML documents).
    pub fn apply(&self, objects: &str) -> String {
        self.kubectl_stdin(&["apply", "-f", "-"], objects)
    }

    /// The objects of `kubectl kustomize <dir>` (one JSON value per document).
    pub fn kustomize(&self, dir: &Path) -> Vec<Value> {
        kustomize(dir)
    }

    /// Apply the ServiceAccount, ClusterRole and ClusterRoleBinding of `deploy/base` exactly
    /// as kustomize renders them (not the DaemonSet: nothing here runs it).
    pub fn apply_base_rbac(&self) {
        let objs: Vec<Value> = self
            .kustomize(&deploy_dir().join("base"))
            .into_iter()
            .filter(|o| {
                ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
                    .contains(&o["kind"].as_str().unwrap_or(""))
            })
            .collect();
        assert_eq!(objs.len(), 3, "deploy/base's RBAC objects: {objs:#?}");
        self.apply(&json!({"apiVersion": "v1", "kind": "List", "items": objs}).to_string());
    }

    /// A kubeconfig for ServiceAccount `ns/sa` with a token from the TokenRequest API
    /// (`kubectl create token`), written to `dir/<sa>.kubeconfig`.
    pub fn service_account_kubeconfig(&self, ns: &str, sa: &str, dir: &Path) -> PathBuf {
        let token = self.kubectl(&["-n", ns, "create", "token", sa, "--duration", "2h"]);
        let path = dir.join(format!("{sa}.kubeconfig"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: it\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: {sa}\n  user:\n    token: {}\n\
             contexts:\n- name: {sa}\n  context:\n    cluster: it\n    user: {sa}\n\
             current-context: {sa}\n",
            self.server,
            self.ca().display(),
            token.trim()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Events in `ns` about the object named `name` (`involvedObject.name`).
    pub fn events_about(&self, ns: &str, name: &str) -> Vec<Value> {
        let sel = format!("involvedObject.name={name}");
        self.get(&["events", "-n", ns, "--field-selector", &sel])
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
    }

    /// One condition of a Node.
    pub fn node_condition(&self, node: &str, type_: &str) -> Option<Value> {
        self.get(&["node", node])?["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }
}

/// Poll `f` every 200 ms until it yields a value; panics naming `what` and `context()` after
/// `timeout`.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    context: impl FnMut() -> String,
    f: impl FnMut() -> Option<T>,
) -> T {
    crate::poll_every(Duration::from_millis(200), what, timeout, context, f)
}

/// A Node object with kubelet-style conditions (no kubelet behind it), deleted on drop.
pub struct TestNode<'a> {
    cluster: &'a Cluster,
    pub name: String,
    pub uid: String,
}

impl<'a> TestNode<'a> {
    /// Create Node `name` and give it the four conditions a kubelet posts.
    pub fn create(cluster: &'a Cluster, name: &str) -> Self {
        cluster.apply(
            &json!({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
            .to_string(),
        );
        let t = "2026-01-01T00:00:00Z";
        let cond = |type_: &str, status: &str, reason: &str, message: &str| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": t, "lastHeartbeatTime": t})
        };
        let patch = json!({"status": {"conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]}});
        cluster.kubectl(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=strategic",
            "-p",
            &patch.to_string(),
        ]);
        let uid = cluster.get(&["node", name]).expect("node")["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_string();
        TestNode {
            cluster,
            name: name.to_string(),
            uid,
        }
    }

    /// The Node's conditions.
    pub fn conditions(&self) -> Vec<Value> {
        self.cluster
            .get(&["node", &self.name])
            .and_then(|n| n["status"]["conditions"].as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for TestNode<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl_in(&["delete", "node", &self.name, "--wait=false"], "");
    }
}

/// A real node on [`Cluster`] (`env/kube-node-start.sh`): kube-controller-manager (DaemonSet
/// and ServiceAccount token controllers), kube-scheduler, and a kubelet registered as Node
/// `name` with a private containerd, in a private mount namespace and cgroup root. Stopped,
/// with its pods, cgroups and directory, on drop.
pub struct KubeNode {
    pub name: String,
    pub dir: PathBuf,
    /// The kubelet's containerd (its images live in namespace `k8s.io`).
    pub containerd: PathBuf,
    running: bool,
}

impl KubeNode {
    /// Start one and wait until the Node is Ready; panics with the start script's output.
    pub fn start(cluster: &Cluster, name: &str) -> KubeNode {
        let dir = std::env::temp_dir().join(crate::unique("kubelet"));
        let o = Command::new("bash")
            .arg(crate::runtimes::env_script("kube-node-start.sh"))
            .arg(&dir)
            .arg(name)
            .env("NODEPROBE_IT_KUBE_DIR", &cluster.dir)
            .env("NODEPROBE_IT_KUBE_BIN", &cluster.bin)
            .env("NODEPROBE_IT_KUBE_SERVER", &cluster.server)
            .output()
            .expect("run kube-node-start.sh");
        let mut node = KubeNode {
            name: name.to_string(),
            dir,
            containerd: PathBuf::new(),
            running: true,
        };
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "kube-node-start.sh failed: {out}{err}");
        eprint!("{err}");
        node.containerd = PathBuf::from(out.lines().last().unwrap_or("").trim());
        node
    }

    /// `ctr` against the kubelet's containerd in namespace `k8s.io`.
    pub fn ctr(&self, args: &[&str]) -> String {
        let mut a = vec![
            "--address",
            self.containerd.to_str().expect("utf-8"),
            "-n",
            "k8s.io",
        ];
        a.extend_from_slice(args);
        crate::sh("timeout", &[&["120", "ctr"][..], &a].concat())
    }

    /// The kubelet's log so far.
    pub fn kubelet_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kubelet.log")).unwrap_or_default()
    }

    /// What the kubelet's pods logged: the container log files (`/var/log/pods`, private to
    /// the kubelet here) of the pod with this UID, the newest last.
    pub fn pod_logs(&self, uid: &str) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log/pods"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(uid))
            .flat_map(|pod| {
                std::fs::read_dir(pod.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .flat_map(|c| std::fs::read_dir(c.path()).into_iter().flatten().flatten())
            .map(|f| f.path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                format!(
                    "--- {}\n{}",
                    f.display(),
                    strip_ansi(&std::fs::read_to_string(f).unwrap_or_default())
                )
            })
            .collect()
    }

    /// Stop it now.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            let _ = Command::new("bash")
                .arg(crate::runtimes::env_script("kube-node-stop.sh"))
                .arg(&self.dir)
                .status();
        }
    }
}

impl Drop for KubeNode {
    fn drop(&mut self) {
        self.stop();
    }
}
