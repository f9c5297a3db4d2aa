//! The built binary in daemon mode against the [`FakeApi`]: a process guard with
//! start/terminate/logs, and helpers to set up the Node and wait for outcomes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary;
use crate::fakeapi::{request, FakeApi};

/// Name and uid of the Node every agent here runs as.
pub const NODE: &str = "n1";
pub const NODE_UID: &str = "uid-n1";

/// A free TCP port on 127.0.0.1 (for the agent's status and metrics endpoints).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Register [`NODE`] with kubelet-style conditions (Ready, MemoryPressure).
pub fn kubelet_node(api: &FakeApi) {
    api.add_node(
        NODE,
        NODE_UID,
        json!([
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "message": "kubelet has sufficient memory available",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}
        ]),
    );
}

/// Poll `f` every 20 ms until it yields a value; panics with the agent's log after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    agent: &Agent,
    f: impl FnMut() -> Option<T>,
) -> T {
    crate::poll_every(
        Duration::from_millis(20),
        what,
        timeout,
        || format!("agent log:\n{}", agent.logs()),
        f,
    )
}

/// Events (all namespaces) with this reason.
pub fn events_with(api: &FakeApi, reason: &str) -> Vec<Value> {
    api.events(None)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// Events (any namespace) with this reason and exactly this message.
pub fn events_for(api: &FakeApi, reason: &str, message: &str) -> Vec<Value> {
    api.events(None)
        .into_iter()
        .filter(|e| e["reason"] == reason && e["message"] == message)
        .collect()
}

/// Events whose message mentions `marker`.
pub fn marked(api: &FakeApi, marker: &str) -> Vec<Value> {
    api.events(None)
        .into_iter()
        .filter(|e| e["message"].as_str().is_some_and(|m| m.contains(marker)))
        .collect()
}

/// A running agent; killed on drop if the test did not stop it.
pub struct Agent {
    child: Option<Child>,
    stderr: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub status_port: u16,
    pub metrics_port: u16,
}

impl Agent {
    /// An agent for probe tests on `host_root`: the log monitors get a rule file with no
    /// rules and a private state dir, so kernel lines other tests wrote never show up.
    pub fn start(api: &FakeApi, host_root: &Path, extra: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let quiet = dir.path().join("quiet-kmsg.json");
        std::fs::write(
            &quiet,
            r#"{"plugin":"kmsg","lookback":"0","source":"kernel-monitor","conditions":[],"rules":[]}"#,
        )
        .expect("write rule file");
        let mut agent = Agent::spawn(api, dir.path(), host_root, &quiet, extra, &[]);
        agent._dir = Some(dir);
        agent
    }

    /// An agent with the log monitors of `rules` on the real host (`--host-root /`). Its
    /// kubeconfig (`work/kubeconfig`) and `--state-dir` (`work/state`) live in `work`, so
    /// starting again with the same `work` is a restart of the same agent.
    pub fn start_with_logs(api: &FakeApi, rules: &Path, work: &Path, extra: &[&str]) -> Agent {
        Agent::spawn(api, work, Path::new("/"), rules, extra, &[])
    }

    /// Like [`Agent::start_with_logs`], started through `wrapper` (a command that ends by
    /// exec'ing its arguments: `setpriv ... --`, a shell joining a cgroup), so the agent runs
    /// with the wrapper's restrictions under the same pid.
    pub fn start_with_logs_via(
        api: &FakeApi,
        rules: &Path,
        work: &Path,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Agent {
        Agent::spawn(api, work, Path::new("/"), rules, extra, wrapper)
    }

    fn spawn(
        api: &FakeApi,
        work: &Path,
        host_root: &Path,
        rules: &Path,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Agent {
        let kubeconfig = api.write_kubeconfig(work);
        Agent::spawn_with(&kubeconfig, NODE, work, host_root, rules, extra, wrapper)
    }

    /// An agent on the real host (`--host-root /`) with the log monitors of `rules`, as Node
    /// `node`, through the given kubeconfig (e.g. a real API server and a ServiceAccount
    /// token). Its `--state-dir` is `work/state`: starting again with the same `work` is a
    /// restart of the same agent.
    pub fn start_with_kubeconfig(
        kubeconfig: &Path,
        node: &str,
        rules: &Path,
        work: &Path,
        extra: &[&str],
    ) -> Agent {
        Agent::spawn_with(kubeconfig, node, work, Path::new("/"), rules, extra, &[])
    }

    fn spawn_with(
        kubeconfig: &Path,
        node: &str,
        work: &Path,
        host_root: &Path,
        rules: &Path,
        extra: &[&str],
        wrapper: &[&str],
    ) -> Agent {
        let stderr = work.join(format!("stderr-{}", crate::unique("agent")));
        let (status_port, metrics_port) = (free_port(), free_port());
        let state_dir = work.join("state");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        cmd.arg("--log-monitors")
            .arg(rules)
            .arg("--state-dir")
            .arg(&state_dir)
            // the machine's kernel log, whatever --host-root the test uses for the probes
            .args(["--kmsg-path", "/dev/kmsg"])
            .args(["--hostname-override", node, "--kubeconfig"])
            .arg(kubeconfig)
            .arg("--host-root")
            .arg(host_root)
            .args([
                "--port",
                &status_port.to_string(),
                "--prometheus-port",
                &metrics_port.to_string(),
                "--log-level",
                "info",
            ])
            .args(extra);
        for (k, _) in std::env::vars() {
            if k.starts_with("NODEPROBE_") || k == "KUBECONFIG" || k == "NODE_NAME" {
                cmd.env_remove(k);
            }
        }
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("create stderr file"));
        let child = cmd.spawn().expect("start nodeprobe");
        Agent {
            child: Some(child),
            stderr,
            _dir: None,
            status_port,
            metrics_port,
        }
    }

    /// What the agent logged so far (stderr).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait until every kernel log monitor reads (lines written from now on are seen).
    pub fn wait_for_kmsg_monitor(&self) {
        wait_for(
            "the kernel log monitor to start",
            Duration::from_secs(20),
            self,
            || {
                self.logs()
                    .contains("kernel log monitor started")
                    .then_some(())
            },
        );
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// GET one of the agent's endpoints: (status, body).
    pub fn get(&self, port: u16, path: &str) -> (u16, String) {
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        let (code, v) = request(addr, "GET", path, "", "");
        (code, v.to_string())
    }

    /// GET one of the agent's endpoints as text: (status, body).
    pub fn get_text(&self, port: u16, path: &str) -> (u16, String) {
        get_text(port, path)
    }

    /// One sample of the agent's metrics (`name{labels}` exactly as exported), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&scrape(self.metrics_port), series)
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL (no chance to persist anything) and reap.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// SIGTERM; returns the exit code and how long the agent took.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        let mut child = self.child.take().expect("running");
        let t0 = Instant::now();
        let ok = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = t0 + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return (st.code(), t0.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("agent ignored SIGTERM:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// GET `path` from 127.0.0.1:`port` as text: (status, body); status 0 when nothing answers.
pub fn get_text(port: u16, path: &str) -> (u16, String) {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, body.to_string())
}

/// The `/metrics` text of 127.0.0.1:`port` (any OpenMetrics endpoint).
pub fn scrape(port: u16) -> String {
    get_text(port, "/metrics").1
}

/// The value of the first sample of `metrics` whose line starts with `series` (name and
/// labels as printed, e.g. `nodeprobe_log_source_up{source="kmsg"}`).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
    })
}
