//! The DaemonSet's container under a real runtime — containerd 1.6 and runc, which apply
//! what `chroot` cannot: the default device cgroup allowlist (no `/dev/kmsg`), dropped
//! capabilities, the default seccomp profile, no-new-privileges, a read-only root — started
//! with exactly the settings of `kubectl kustomize deploy/base` (mapped onto `ctr run` flags by
//! [`RenderedContainer`]; the CRI plugin behind a real kubelet is in `kubelet.rs`). The image
//! is deploy/Dockerfile's final stage, written from `$NODEPROBE_STATIC_BIN` and imported.
//!
//! Also measured here, for the README's "what the deployment needs and why": which of the
//! manifest's settings the probes really need (host PID namespace, socket access as uid 0
//! without DAC capabilities).

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nodeprobe_integration::agent::{free_port, get_text, sample, scrape};
use nodeprobe_integration::kmsg::{kmsg_lock, kmsg_ok, kmsg_write, scoped_rules, task_hung};
use nodeprobe_integration::kube::{
    assert_host_read_only, base_daemonset, deploy_dir, kustomize, poll, strip_ansi,
};
use nodeprobe_integration::runtimes::{have, PrivateContainerd};
use nodeprobe_integration::{oci, require, unique, Run};

/// Every Linux capability: `drop: [ALL]` in the manifest (ctr takes no `ALL`).
const ALL_CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The rendered DaemonSet's container as `ctr run` flags. Host paths of volumes can be
/// redirected (`state` and the rules ConfigMap live in the test's temp dir).
struct RenderedContainer {
    flags: Vec<String>,
    args: Vec<String>,
}

impl RenderedContainer {
    /// `host_pid`: keep (true) or leave out (false) the manifest's `hostPID` (a measurement).
    fn new(volumes: &[(&str, &Path)], host_pid: bool) -> Self {
        let ds = base_daemonset();
        let pod = &ds["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let sc = &c["securityContext"];
        let mut flags: Vec<String> = Vec::new();
        let mut f = |s: String| flags.push(s);
        assert_eq!(sc["privileged"], false, "a privileged container: {sc}");
        assert_eq!(sc["runAsUser"], 0, "the image's user is 0:0");
        if sc["readOnlyRootFilesystem"] == true {
            f("--read-only".into());
        }
        if sc["allowPrivilegeEscalation"] != false {
            f("--allow-new-privs".into());
        }
        // As the CRI plugin does: drop, then add (`add` wins over `drop: [ALL]`; ctr applies
        // its --cap-drop after --cap-add, so an added capability is not dropped here).
        let caps = &sc["capabilities"];
        let added: Vec<&str> = caps["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .collect();
        for d in caps["drop"].as_array().into_iter().flatten() {
            let d = d.as_str().unwrap();
            let list: Vec<&str> = if d == "ALL" {
                ALL_CAPS.to_vec()
            } else {
                vec![d]
            };
            for cap in list.into_iter().filter(|c| !added.contains(c)) {
                f(format!("--cap-drop=CAP_{cap}"));
            }
        }
        for a in &added {
            f(format!("--cap-add=CAP_{a}"));
        }
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "containerd's default profile is the RuntimeDefault of its CRI plugin"
        );
        f("--seccomp".into());
        if pod["hostNetwork"] == true {
            f("--net-host".into());
        }
        if pod["hostPID"] == true && host_pid {
            f(format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id()));
        }
        if let Some(mem) = c["resources"]["limits"]["memory"].as_str() {
            let mib: u64 = mem.trim_end_matches("Mi").parse().expect("a limit in Mi");
            f(format!("--memory-limit={}", mib << 20));
        }
        // Volumes: hostPath as bind mounts (CRI: rbind, ro when readOnly), ConfigMaps from
        // the test's directories.
        let vols = pod["volumes"].as_array().unwrap();
        for m in c["volumeMounts"].as_array().unwrap() {
            let name = m["name"].as_str().unwrap();
            let v = vols.iter().find(|v| v["name"] == name).unwrap();
            let src: PathBuf = match volumes.iter().find(|(n, _)| *n == name) {
                Some((_, p)) => p.to_path_buf(),
                None => PathBuf::from(
                    v["hostPath"]["path"]
                        .as_str()
                        .unwrap_or_else(|| panic!("volume {name}: give the test a directory")),
                ),
            };
            let ro = if m["readOnly"] == true { "ro" } else { "rw" };
            f(format!(
                "--mount=type=bind,src={},dst={},options=rbind:{ro}:rprivate",
                src.display(),
                m["mountPath"].as_str().unwrap()
            ));
        }
        // Environment: the downward API's NODE_NAME, then the ConfigMap's keys.
        let host = nodeprobe_integration::sh("hostname", &[])
            .trim()
            .to_string();
        f(format!("--env=NODE_NAME={host}"));
        let cm = kustomize(&deploy_dir().join("base"))
            .into_iter()
            .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "nodeprobe-config")
            .expect("ConfigMap nodeprobe-config");
        for (k, v) in cm["data"].as_object().unwrap() {
            f(format!("--env={k}={}", v.as_str().unwrap()));
        }
        let args = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        RenderedContainer { flags, args }
    }
}

/// A container in a private containerd, killed and removed on drop.
struct Container<'a> {
    ctrd: &'a PrivateContainerd,
    id: String,
    log: PathBuf,
}

impl<'a> Container<'a> {
    fn ctr(ctrd: &PrivateContainerd, args: &[&str]) -> std::process::Output {
        Command::new("timeout")
            .args(["60", "ctr", "--address"])
            .arg(ctrd.socket())
            .args(["-n", "nodeprobe-it"])
            .args(args)
            .output()
            .expect("run ctr")
    }

    /// `ctr run -d` of the image with the rendered settings and `args` after the image's
    /// entrypoint; the container's output goes to `log`.
    fn run(
        ctrd: &'a PrivateContainerd,
        image: &str,
        c: &RenderedContainer,
        args: &[String],
        log: &Path,
    ) -> Self {
        let id = unique("ctr");
        let log_uri = format!("file://{}", log.display());
        // A top-level cgroup of its own, removed with the container (ctr's default parent
        // /<namespace> would stay behind).
        let cgroup = format!("--cgroup=/{id}");
        let mut a: Vec<&str> = vec!["run", "-d", "--log-uri", &log_uri, &cgroup];
        a.extend(c.flags.iter().map(String::as_str));
        a.extend([image, &id, "/nodeprobe"]);
        a.extend(args.iter().map(String::as_str));
        let o = Self::ctr(ctrd, &a);
        assert!(
            o.status.success(),
            "ctr run: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Container {
            ctrd,
            id,
            log: log.to_path_buf(),
        }
    }

    /// (pid, status) of the task, e.g. (1234, "RUNNING").
    fn task(&self) -> Option<(u32, String)> {
        let o = Self::ctr(self.ctrd, &["tasks", "ls"]);
        String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&self.id.as_str()))
                .then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
        })
    }

    fn logs(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Self::ctr(self.ctrd, &["tasks", "kill", "-s", "KILL", &self.id]);
        for _ in 0..50 {
            if Self::ctr(self.ctrd, &["tasks", "delete", &self.id])
                .status
                .success()
                || self.task().is_none()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Self::ctr(self.ctrd, &["containers", "delete", &self.id]);
    }
}

/// `ctr run --rm` of the image with the rendered settings: one `nodeprobe` run to its end.
fn run_once(ctrd: &PrivateContainerd, image: &str, c: &RenderedContainer, args: &[&str]) -> Run {
    let id = unique("once");
    let cgroup = format!("--cgroup=/{id}");
    let mut a: Vec<&str> = vec!["run", "--rm", &cgroup];
    a.extend(c.flags.iter().map(String::as_str));
    a.extend([image, &id, "/nodeprobe"]);
    a.extend(args);
    Run::from_output(Container::ctr(ctrd, &a))
}

struct Setup {
    ctrd: PrivateContainerd,
    image: String,
    tmp: tempfile::TempDir,
}

fn setup() -> Option<Setup> {
    if !PrivateContainerd::available() || !require(have("kubectl"), "kubectl (kustomize)") {
        return None;
    }
    let bin = oci::static_binary()?;
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-container-")
        .tempdir()
        .unwrap();
    let ctrd = PrivateContainerd::start();
    let image = format!("nodeprobe-it.local/nodeprobe:{}", std::process::id());
    let archive = tmp.path().join("image.tar");
    oci::write_image(&bin, &image, &archive);
    oci::import(ctrd.socket(), "nodeprobe-it", &archive);
    Some(Setup { ctrd, image, tmp })
}

#[test]
fn the_daemonset_container_stays_up_and_counts_a_fresh_kernel_line() {
    if !kmsg_ok() {
        return;
    }
    let Some(s) = setup() else {
        return;
    };
    let _kmsg = kmsg_lock();
    let m = unique("ctr");
    let rules = s.tmp.path().join("rules");
    let state = s.tmp.path().join("state");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    scoped_rules(&rules, &m, "0");
    let c = RenderedContainer::new(&[("rules", &rules), ("state", &state)], true);
    let (status, metrics) = (free_port(), free_port());
    // The manifest's arguments, with free ports; no API server here (kubelet.rs has one).
    let mut args: Vec<String> = c
        .args
        .iter()
        .map(|a| match a.split_once('=') {
            Some(("--port", _)) => format!("--port={status}"),
            Some(("--prometheus-port", _)) => format!("--prometheus-port={metrics}"),
            _ => a.clone(),
        })
        .collect();
    args.push("--enable-k8s-exporter=false".into());
    let log = s.tmp.path().join("container.log");
    let ctr = Container::run(&s.ctrd, &s.image, &c, &args, &log);
    let ctx = || format!("task: {:?}\ncontainer log:\n{}", ctr.task(), ctr.logs());
    poll(
        "the kernel log monitor to start",
        Duration::from_secs(30),
        ctx,
        || {
            let st = ctr.task().map(|t| t.1);
            assert_eq!(
                st.as_deref(),
                Some("RUNNING"),
                "the container stopped:\n{}",
                ctx()
            );
            ctr.logs()
                .contains("kernel log monitor started")
                .then_some(())
        },
    );
    // The device cgroup denies /dev/kmsg: the agent reads the ring through syslog(2).
    assert!(ctr.logs().contains("backend=\"syslog\""), "{}", ctx());

    let line = task_hung(&m, "in-a-container");
    kmsg_write(3, &line);
    let text = poll("the line counted", Duration::from_secs(20), ctx, || {
        let t = scrape(metrics);
        (sample(&t, "problem_counter{reason=\"TaskHung\"}") == Some(1.0)).then_some(t)
    });
    assert_eq!(
        sample(&text, "nodeprobe_log_source_up{source=\"kernel-monitor\"}"),
        Some(1.0),
        "{text}"
    );
    let get = |p: &str| get_text(status, p).0;
    assert_eq!(get("/livez"), 200);
    assert_eq!(get("/readyz"), 200);
    let (pid, st) = ctr.task().expect("the task");
    assert_eq!(st, "RUNNING", "{}", ctx());

    // The host is read-only below /host where the manifest says so: the host's root and
    // the file systems a uid-0 process could otherwise write without capabilities (sysctls,
    // sysrq, cgroup limits, device nodes, the runtime's sockets), each its own read-only mount.
    let writable = assert_host_read_only(pid, &base_daemonset());
    eprintln!("writable mounts below /host without recursive read-only mounts: {writable:?}");
}

#[test]
fn what_the_probes_need_host_pid_and_sockets_as_uid_0_without_dac_capabilities() {
    let Some(s) = setup() else {
        return;
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(sock), Some(bus)) = (
        env("NODEPROBE_IT_CONTAINERD_SOCK"),
        env("NODEPROBE_IT_SYSTEMD_BUS"),
    ) else {
        require(false, "services.env (containerd and systemd sockets)");
        return;
    };
    let rules = s.tmp.path().join("rules");
    let state = s.tmp.path().join("state");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let vols: [(&str, &Path); 2] = [("rules", &rules), ("state", &state)];
    let bus_path = bus.trim_start_matches("unix:path=");
    let containerd = format!("--containerd-socket=/host{sock}");
    let args = [
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--host-root",
        "/host",
        "--probes",
        "pid-pressure,runtime,systemd,fd-pressure,psi,readonly-mounts,hung-tasks",
        &containerd,
    ];
    // The services' sockets through the read-only host mount; the system bus address as the
    // DaemonSet's environment would give it.
    let mut c = RenderedContainer::new(&vols, true);
    c.flags.push(format!(
        "--env=DBUS_SYSTEM_BUS_ADDRESS=unix:path=/host{bus_path}"
    ));
    let run = run_once(&s.ctrd, &s.image, &c, &args);
    // Socket access as uid 0 with every DAC capability dropped (the sockets are 0660
    // root:root; the owner needs no capability).
    let rt = run.result("RuntimeOffline");
    assert_eq!(rt["status"], "False", "{run:?}");
    let sd = run.result("SystemdCheck");
    assert_ne!(sd["status"], "Unknown", "{run:?}");
    // The host-state probes read the host's procfs through /host/proc with every capability
    // but SYSLOG dropped: the host's file-nr, pressure files, init's mount table (the host's
    // mounts: "/" is writable here) and every host thread's stat.
    for (t, want) in [
        ("FDPressure", Some("False")),
        ("ReadonlyMount", Some("False")),
    ] {
        assert_eq!(run.result(t)["status"].as_str(), want, "{t}: {run:?}");
    }
    for t in ["MemoryStall", "IOStall", "HungTasks"] {
        assert_ne!(run.result(t)["status"], "Unknown", "{t}: {run:?}");
    }
    // hostPID: pid_max is per PID namespace (Linux >= 6.14); only the host's namespace reads
    // the host's limit.
    let host_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .to_string();
    let detail = |r: &Run| {
        r.result("PidPressure")["detail"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert!(
        detail(&run).contains(&format!("pid_max {host_max}")),
        "with hostPID the probe reads the host's pid_max {host_max}: {}",
        detail(&run)
    );
    let fresh_ns_max = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "cat",
            "/proc/sys/kernel/pid_max",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let without = run_once(
        &s.ctrd,
        &s.image,
        &RenderedContainer::new(&vols, false),
        &args,
    );
    eprintln!(
        "pid_max: host {host_max}, a new PID namespace {fresh_ns_max}; PidPressure with hostPID: {} / without: {}",
        detail(&run),
        detail(&without)
    );
    if fresh_ns_max != host_max {
        assert!(
            !detail(&without).contains(&format!("pid_max {host_max}")),
            "without hostPID the container reads its own namespace's pid_max: {}",
            detail(&without)
        );
    }
}
