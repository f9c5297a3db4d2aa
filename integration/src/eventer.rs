//! Harness of the eventer's tests: the `nodeprobe eventer` process (killed on drop), its
//! metrics, and a small client for the API server the tests use (the real kube-apiserver
//! of `NODEPROBE_IT_KUBECONFIG`, or the fake one) to write Events, ConfigMaps and
//! namespaces.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

/// The real API server's admin kubeconfig, if the environment has one.
pub fn real_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("NODEPROBE_IT_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// A client for the real API server; without one `None`, after [`crate::require`] (which
/// fails the test in CI).
pub fn real_kube() -> Option<Kube> {
    let kc = real_kubeconfig();
    if !crate::require(
        kc.is_some(),
        "NODEPROBE_IT_KUBECONFIG (a real kube-apiserver)",
    ) {
        return None;
    }
    Some(Kube::new(&kc.unwrap_or_default()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A GET on 127.0.0.1 (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
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
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A running `nodeprobe eventer`.
pub struct Eventer {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Eventer {
    /// Start with `args` after `eventer` (plus --kubeconfig and the endpoint address) and
    /// wait for /readyz.
    pub fn start(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Eventer {
        let dir = tempfile::Builder::new()
            .prefix("nodeprobe-it-eventer-")
            .tempdir()
            .expect("tempdir");
        let port = free_port();
        let log = dir.path().join("eventer.log");
        let out = dir.path().join("eventer.out");
        let mut cmd = Command::new(crate::binary());
        cmd.args(["--log-level", "info", "eventer", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--healthz-ip",
                "127.0.0.1",
                "--healthz-port",
                &port.to_string(),
            ])
            .args(args)
            .args(if args.contains(&"--lease-name") {
                vec![]
            } else {
                // Each eventer its own progress record unless the test shares one.
                vec!["--lease-name".to_string(), crate::unique("lease")]
            })
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(&log).expect("log"));
        for (k, _) in std::env::vars() {
            if k.starts_with("NODEPROBE_") && k != "NODEPROBE_BIN" {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("KUBECONFIG");
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().expect("start nodeprobe eventer");
        let mut e = Eventer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http_get(e.addr, "/readyz").0 == 200 {
                break;
            }
            if let Ok(Some(st)) = e.child.try_wait() {
                panic!("eventer exited {st}: {}", e.logs());
            }
            assert!(Instant::now() < deadline, "eventer not ready: {}", e.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("eventer.out")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").1
    }

    /// The value of one series (`name{labels}` exactly as exported), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Wait until `series` reaches `at_least` (panics after `limit`).
    pub fn wait_metric(&self, series: &str, at_least: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.metric(series);
            if v >= at_least {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{series} = {v}, want >= {at_least}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL (no chance to store anything).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit code, when it exits by itself within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The exit status after SIGTERM.
    pub fn stop(&mut self) -> Option<i32> {
        #[allow(unsafe_code)]
        // SAFETY: kill(2) on our own child's PID, which we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Eventer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A synchronous client of the tests' API server.
pub struct Kube {
    rt: tokio::runtime::Runtime,
    pub client: Client,
    pub kubeconfig: PathBuf,
}

/// An Event to write.
#[derive(Debug, Clone)]
pub struct Ev<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub obj: &'a str,
    pub obj_ns: Option<&'a str>,
    pub type_: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

impl Kube {
    pub fn new(kubeconfig: &Path) -> Kube {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let kc = kubeconfig.to_path_buf();
        let client = rt.block_on(async {
            let k = kube::config::Kubeconfig::read_from(&kc).expect("kubeconfig");
            let cfg = kube::Config::from_custom_kubeconfig(k, &Default::default())
                .await
                .expect("config");
            Client::try_from(cfg).expect("client")
        });
        Kube {
            rt,
            client,
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// The Event object the API would get (count 1, times now).
    pub fn event_json(e: &Ev) -> Value {
        let now = probes::timefmt::rfc3339(std::time::SystemTime::now());
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": e.name, "namespace": e.ns},
            "involvedObject": {"kind": e.kind, "name": e.obj, "namespace": e.obj_ns, "uid": format!("{}-uid", e.obj)},
            "reason": e.reason, "message": e.message, "type": e.type_, "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "nodeprobe-it", "host": e.obj}
        })
    }

    pub fn create_event(&self, e: &Ev) -> Event {
        let api: Api<Event> = Api::namespaced(self.client.clone(), e.ns);
        let ev: Event = serde_json::from_value(Self::event_json(e)).expect("event");
        self.block(api.create(&PostParams::default(), &ev))
            .expect("create event")
    }

    /// `count` = n and lastTimestamp = now, as client-go's event dedup PATCH does.
    pub fn bump_event(&self, ns: &str, name: &str, count: i32) {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let now = probes::timefmt::rfc3339(std::time::SystemTime::now());
        let p = json!({"count": count, "lastTimestamp": now});
        self.block(api.patch(name, &PatchParams::default(), &Patch::Merge(&p)))
            .expect("patch event");
    }

    pub fn create_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
        self.block(api.create(&PostParams::default(), &ns))
            .expect("create namespace");
    }

    pub fn delete_namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let _ = self.block(api.delete(name, &DeleteParams::default()));
    }

    /// Create or replace a ConfigMap with `data`.
    pub fn put_configmap(&self, ns: &str, name: &str, data: Value) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data});
        let pp = PatchParams::apply("nodeprobe-it").force();
        self.block(api.patch(name, &pp, &Patch::Apply(&cm)))
            .expect("apply configmap");
    }
}

/// A namespace for one test, deleted on drop.
pub struct TestNamespace<'a> {
    pub name: String,
    kube: &'a Kube,
}

impl<'a> TestNamespace<'a> {
    pub fn new(kube: &'a Kube, tag: &str) -> Self {
        let name = crate::unique(tag).to_lowercase();
        kube.create_namespace(&name);
        TestNamespace { name, kube }
    }
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        self.kube.delete_namespace(&self.name);
    }
}
