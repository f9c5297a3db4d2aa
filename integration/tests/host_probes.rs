//! The host-state probes end to end on the real thing: `fd-pressure` against this machine's
//! `fs.file-nr` while the test holds thousands of real file descriptors, `psi` on the real
//! `/proc/pressure` and a real cgroup v2 child loaded by real spinning processes,
//! `readonly-mounts` on a tmpfs remounted read-only in a private mount namespace,
//! `hung-tasks` on a process stuck in `D` writing to a frozen ext4, `kubelet` against a real
//! kubelet v1.20.2 (and a local server for 500, a hang and a refused port), and the NVIDIA Xid
//! rules through `nodeprobe rules test` on real-format driver lines.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodeprobe_integration::kube::{Cluster, KubeNode};
use nodeprobe_integration::{
    is_root, nodeprobe, nodeprobe_env, require, sh, unique, FreezableExt4, Run,
};

/// A child process killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn oneshot(probe: &str, extra: &[&str]) -> Run {
    let args = [
        &[
            "--oneshot",
            "--oneshot-logs=false",
            "--output",
            "json",
            "--probes",
            probe,
        ][..],
        extra,
    ]
    .concat();
    nodeprobe(&args)
}

fn message(r: &serde_json::Value) -> String {
    r["message"].as_str().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------- fd-pressure

fn file_nr() -> (u64, u64) {
    let t = std::fs::read_to_string("/proc/sys/fs/file-nr").unwrap();
    let v: Vec<u64> = t
        .split_ascii_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0] - v[1], v[2])
}

#[test]
fn fd_pressure_follows_real_open_files() {
    // Hold up to 20,000 more file handles (system-wide count) than when the threshold is
    // chosen: as many as the hard RLIMIT_NOFILE allows (raising it needs CAP_SYS_RESOURCE,
    // which a CI container may lack), and at least 5,000, so the swing stays far above what
    // other processes open and close meanwhile.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    let hold = lim.rlim_cur.saturating_sub(512).min(20_000);
    if !require(raised && hold >= 5_000, "RLIMIT_NOFILE of 5,500 or more") {
        return;
    }
    let (used, max) = file_nr();
    // Half way between now and now + hold, in percent of fs.file-max.
    let threshold = (used as f64 + hold as f64 / 2.0) * 100.0 / max as f64;
    let t = format!("{threshold:.6}");

    let healthy = oneshot("fd-pressure", &["--fd-pressure-threshold", &t]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    let r = healthy.result("FDPressure");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "NodeHasNoFDPressure");
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("fs.file-max {max}")),
        "{r}"
    );

    // Each open() is a file handle of its own (a dup() would share one).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, b"").unwrap();
    let held: Vec<std::fs::File> = (0..hold)
        .map(|_| std::fs::File::open(&path).unwrap())
        .collect();
    let pressed = nodeprobe_env(
        &[
            "--oneshot",
            "--oneshot-logs=false",
            "--output",
            "json",
            "--probes",
            "fd-pressure",
        ],
        &[("NODEPROBE_FD_PRESSURE_THRESHOLD", &t)],
    );
    assert_eq!(pressed.code, 1, "{pressed:?}");
    let r = pressed.result("FDPressure");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "NodeHasFDPressure");
    assert!(
        message(&r).starts_with("file descriptor pressure: ")
            && message(&r).contains(&format!("of fs.file-max {max}")),
        "{r}"
    );
    drop(held);
    let relieved = oneshot("fd-pressure", &["--fd-pressure-threshold", &t]);
    assert_eq!(relieved.code, 0, "{relieved:?}");
}

// ---------------------------------------------------------------- psi

const UNIFIED: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// The cgroup v2 hierarchy's mount point, when there is one (hybrid or unified).
fn cgroup2_root() -> Option<PathBuf> {
    UNIFIED
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cpu.pressure").exists())
}

/// A cgroup v2 child, removed on drop (after its processes are gone).
struct Cgroup2(PathBuf, Vec<Proc>);

impl Drop for Cgroup2 {
    fn drop(&mut self) {
        self.1.clear();
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn psi_on_the_real_kernel_and_a_cgroup_v2_child() {
    if !require(
        Path::new("/proc/pressure/memory").exists(),
        "a kernel with PSI (/proc/pressure)",
    ) {
        return;
    }
    // Defaults: CPU thresholds off (no CPUStall), memory and I/O judged on the node.
    let run = oneshot("psi", &[]);
    assert_ne!(run.code, 64, "{run:?}");
    let mem = run.result("MemoryStall");
    assert!(
        mem["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("memory pressure (avg60): node some "))
            || mem["status"] == "True",
        "{mem}"
    );
    assert!(run.result("IOStall")["status"] != "Unknown", "{run:?}");
    let na = run.json()["not_applicable"].to_string();
    assert!(na.contains("CPUStall"), "{na}");

    let Some(root) = cgroup2_root() else {
        require(false, "a cgroup v2 hierarchy with PSI");
        return;
    };
    if !require(is_root(), "root (create a cgroup)") {
        return;
    }
    let dir = root.join(unique("psi"));
    std::fs::create_dir(&dir).unwrap();
    let mut cg = Cgroup2(dir.clone(), Vec::new());
    let scope = dir.to_str().unwrap().to_string();
    assert!(
        dir.join("memory.pressure").exists(),
        "a memory.pressure file"
    );
    let args = |some: &str| {
        vec![
            "--psi-cgroups".to_string(),
            scope.clone(),
            "--psi-window".into(),
            "avg10".into(),
            "--psi-cpu-some".into(),
            some.into(),
            // memory judged never (the figures still shown): the machine's own memory
            // pressure cannot change what this test looks at
            "--psi-memory-some".into(),
            "off".into(),
            "--psi-memory-full".into(),
            "100".into(),
        ]
    };
    // Idle and empty: its figures are read and shown, its CPU some is 0.
    let a = args("99.99");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let idle = oneshot("psi", &a);
    let m = idle.result("MemoryStall");
    assert!(
        m["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("{scope} some 0.00% full 0.00%"))),
        "the child's memory.pressure is read: {m}"
    );
    // Four busy loops per CPU in it: its tasks wait for a CPU nearly all the time.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..cpus * 2 {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        cg.1.push(Proc(child));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let stalled = loop {
        let run = oneshot(
            "psi",
            &args("20").iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let c = run.result("CPUStall");
        if message(&c).contains(&format!("on {scope} (threshold 20%)")) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU stall seen in {scope}: {run:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(stalled["status"], "True");
    assert_eq!(stalled["reason"], "NodeHasCPUStall");
    assert!(
        message(&stalled).starts_with("cpu pressure stall: "),
        "{stalled}"
    );
    drop(cg);
}

// ---------------------------------------------------------------- readonly-mounts

#[test]
fn readonly_mounts_sees_a_tmpfs_remounted_read_only_in_a_private_namespace() {
    if !require(is_root(), "root (unshare -m, mount)") {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("nodeprobe-it-ro-")
        .tempdir()
        .unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let flag = work.path().join("remount");
    let ready = work.path().join("ready");
    let name = unique("rotmpfs");
    // A private mount namespace: the tmpfs and its remounts are invisible to the host.
    // It remounts read-only when `remount` says "ro", read-write when it says "rw".
    let script = format!(
        "mount -t tmpfs {name} {d} && touch {r}; while :; do \
           if [ -f {f} ]; then mount -o remount,$(cat {f}) {d} && rm -f {f} && touch {r}; fi; \
           sleep 0.1; done",
        d = data.display(),
        f = flag.display(),
        r = ready.display()
    );
    let ns = Proc(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .spawn()
            .unwrap(),
    );
    let wait_ready = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the namespace did not (re)mount");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::remove_file(&ready).unwrap();
    };
    wait_ready();
    // The host root the probe reads: its proc/1 is the namespace's process.
    let root = work.path().join("host");
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::os::unix::fs::symlink(format!("/proc/{}", ns.0.id()), root.join("proc/1")).unwrap();
    let watched = format!("/,{}/kubelet", data.display());
    let args = [
        "--host-root",
        root.to_str().unwrap(),
        "--readonly-mounts-paths",
        &watched,
    ];
    let rw = oneshot("readonly-mounts", &args);
    assert_eq!(rw.code, 0, "{rw:?}");
    assert_eq!(rw.result("ReadonlyMount")["reason"], "NoReadonlyMount");

    std::fs::write(&flag, "ro").unwrap();
    wait_ready();
    let ro = oneshot("readonly-mounts", &args);
    assert_eq!(ro.code, 1, "{ro:?}");
    let r = ro.result("ReadonlyMount");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "MountIsReadOnly");
    assert_eq!(
        message(&r),
        format!(
            "read-only now: {d}/kubelet (file system read-only: tmpfs {name} on {d})",
            d = data.display()
        )
    );
    // The host's own mount table is untouched: the path is writable here.
    std::fs::write(data.join("probe"), b"x").unwrap();

    std::fs::write(&flag, "rw").unwrap();
    wait_ready();
    let again = oneshot("readonly-mounts", &args);
    assert_eq!(again.code, 0, "it clears: {again:?}");

    // Read-only at the mount only (a read-only bind remount), the file system writable.
    std::fs::write(&flag, "bind,ro").unwrap();
    wait_ready();
    let bind = oneshot("readonly-mounts", &args);
    assert_eq!(bind.code, 1, "{bind:?}");
    assert!(
        message(&bind.result("ReadonlyMount")).contains("(mounted read-only: tmpfs "),
        "{bind:?}"
    );
    std::fs::write(&flag, "bind,rw").unwrap();
    wait_ready();
    assert_eq!(oneshot("readonly-mounts", &args).code, 0);
    drop(ns);
}

// ---------------------------------------------------------------- hung-tasks

#[test]
fn hung_tasks_names_a_writer_stuck_on_a_frozen_file_system() {
    if !FreezableExt4::available() {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("nodeprobe-it-hung-")
        .tempdir()
        .unwrap();
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut fs = FreezableExt4::mount(&mnt);
    fs.freeze();
    // A writer that blocks in D (sb_start_write waits uninterruptibly while frozen).
    let mut writer = Proc(
        Command::new("sh")
            .args(["-c", &format!("echo x > {}/f", mnt.display())])
            .spawn()
            .unwrap(),
    );
    let pid = writer.0.id();
    let state = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
            .flatten()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while state() != Some('D') {
        assert!(
            Instant::now() < deadline,
            "the writer never blocked: {:?}",
            state()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    // every task over the threshold named: other tests may leave tasks in D meanwhile
    let all = ["--hung-tasks-top", "1000"];
    let run = oneshot(
        "hung-tasks",
        &[&["--hung-tasks-threshold", "2s"][..], &all].concat(),
    );
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.result("HungTasks");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "TasksHung");
    let m = message(&r);
    assert!(
        m.contains("tasks in uninterruptible sleep (D) longer than 2s: ")
            && m.contains(&format!("(pid {pid}) ")),
        "{m}"
    );
    // A threshold it has not reached yet: not named.
    let lenient = oneshot("hung-tasks", &["--hung-tasks-threshold", "1h"]);
    assert!(
        !lenient.stdout.contains(&format!("(pid {pid})")),
        "{lenient:?}"
    );
    fs.thaw();
    let status = writer.0.wait().unwrap();
    assert!(status.success(), "the write completes once thawed");
    let after = oneshot(
        "hung-tasks",
        &[&["--hung-tasks-threshold", "2s"][..], &all].concat(),
    );
    assert!(!after.stdout.contains(&format!("(pid {pid})")), "{after:?}");
    drop(fs);
}

// ---------------------------------------------------------------- kubelet

/// A loopback HTTP server answering every request with `answer` (None: reads and never
/// answers). Returns its port; the thread lives as long as the test process.
fn http_server(answer: Option<String>) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            match &answer {
                Some(a) => {
                    let _ = s.write_all(a.as_bytes());
                }
                None => held.push(s),
            }
        }
    });
    port
}

#[test]
fn kubelet_answers_500_hang_and_refused() {
    let body = "[-]syncloop failed: reason withheld\nhealthz check failed\n";
    let bad = http_server(Some(format!(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )));
    let run = oneshot("kubelet", &["--kubelet-port", &bad.to_string()]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.result("KubeletUnhealthy");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "KubeletUnhealthy");
    assert!(
        message(&r).starts_with(&format!(
            "kubelet 127.0.0.1:{bad}/healthz answered 500: [-]syncloop failed"
        )),
        "{r}"
    );
    assert_eq!(run.json()["results"][0]["probe"], "kubelet");

    let hung = http_server(None);
    let t0 = Instant::now();
    let run = oneshot(
        "kubelet",
        &[
            "--kubelet-healthz-url",
            &format!("http://127.0.0.1:{hung}/healthz"),
            "--kubelet-timeout",
            "1s",
        ],
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "bounded by the deadline"
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        message(&run.result("KubeletUnhealthy")).contains("no complete answer"),
        "{run:?}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let run = nodeprobe_env(
        &[
            "--oneshot",
            "--oneshot-logs=false",
            "--output",
            "json",
            "--probes",
            "kubelet",
        ],
        &[("NODEPROBE_KUBELET_PORT", &port.to_string())],
    );
    assert_eq!(run.code, 2, "Unknown, not a problem: {run:?}");
    let r = run.result("KubeletUnhealthy");
    assert_eq!(r["status"], "Unknown");
    assert_eq!(
        message(&r),
        format!("no kubelet listening on 127.0.0.1:{port} (connection refused)")
    );

    let bad_url = oneshot("kubelet", &["--kubelet-healthz-url", "https://x/healthz"]);
    assert_eq!(bad_url.code, 64, "{bad_url:?}");
    assert!(bad_url.stderr.contains("only http://"), "{bad_url:?}");
}

#[test]
fn kubelet_healthy_against_a_real_kubelet() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let name = unique("kubelet-probe");
    let mut node = KubeNode::start(&cluster, &name);
    let port = std::fs::read_to_string(node.dir.join("healthz-port"))
        .unwrap()
        .trim()
        .to_string();
    let run = oneshot("kubelet", &["--kubelet-port", &port]);
    assert_eq!(run.code, 0, "{run:?}\n{}", node.kubelet_log());
    let r = run.result("KubeletUnhealthy");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "KubeletIsHealthy");
    assert_eq!(
        r["detail"],
        format!("kubelet 127.0.0.1:{port}/healthz: 200 ok")
    );
    node.stop();
    let run = oneshot("kubelet", &["--kubelet-port", &port]);
    assert_eq!(run.code, 2, "a stopped kubelet refuses: Unknown {run:?}");
    let _ = sh(
        "kubectl",
        &[
            "--kubeconfig",
            cluster.kubeconfig.to_str().unwrap(),
            "delete",
            "node",
            &name,
            "--ignore-not-found",
        ],
    );
}

// ---------------------------------------------------------------- NVIDIA Xid rules

#[test]
fn nvidia_xid_rules_on_real_format_driver_lines() {
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/rules/nvidia-xid-monitor.json");
    let log = "\
[ 1234.567890] NVRM: GPU at PCI:0000:3b:00: GPU-5c2d8b7e-1a2b-4c3d-9e8f-0a1b2c3d4e5f
[ 1234.567901] NVRM: Xid (PCI:0000:3b:00): 79, pid=1957, name=python3, GPU has fallen off the bus.
[ 1300.000001] NVRM: Xid (PCI:0000:00:1e): 13, pid=2911, name=train, Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address
[ 1300.000002] NVRM: Xid (PCI:0000:b7:00): 119, pid=8812, name=nvidia-smi, Timeout after 6s of waiting for RPC response from GPU1 GSP! Expected function 76 (GSP_RM_CONTROL) (0x2080014b 0x5).
[ 1300.000003] NVRM: Xid (PCI:0000:18:00): 317, pid=1, name=x, an Xid newer than this file
[ 1300.000004] EXT4-fs (sda1): mounted filesystem with ordered data mode
";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kern.log");
    std::fs::write(&path, log).unwrap();
    let run = nodeprobe(&[
        "rules",
        "test",
        rules.to_str().unwrap(),
        path.to_str().unwrap(),
        "--format",
        "kmsg",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = &run.stdout;
    for want in [
        "line 2: NvidiaXID79Error (permanent -> NvidiaGPUProblem=True) [nvidia-xid-monitor] \"NVRM: Xid (PCI:0000:3b:00): 79, pid=1957, name=python3, GPU has fallen off the bus.\"",
        "line 3: NvidiaXID13Warning (temporary) [nvidia-xid-monitor]",
        "line 4: NvidiaXID119Error (permanent -> NvidiaGPUProblem=True)",
        "line 5: NvidiaXIDWarning (temporary)",
        "NvidiaXID79Error: 1",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(
        !out.contains("line 1:") && !out.contains("line 6:"),
        "{out}"
    );
    let check = nodeprobe(&["rules", "check", rules.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("200 rules (200 single-line, 0 multi-line), 1 conditions"),
        "{check:?}"
    );
}

// ---------------------------------------------------------------- daemon mode

/// The new probes and the Xid rules in daemon mode against the real kube-apiserver, as the
/// ServiceAccount of deploy/base: their conditions on the Node, the Xid event and condition
/// from a real kernel log line, and their series in /metrics.
#[test]
fn daemon_writes_the_new_conditions_and_xid_findings_to_a_real_api_server() {
    use nodeprobe_integration::agent::Agent;
    use nodeprobe_integration::kmsg::{kmsg_lock, kmsg_ok, kmsg_write, scoped_rules};
    use nodeprobe_integration::kube::{poll, TestNode};
    if !kmsg_ok() {
        return;
    }
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let _kmsg = kmsg_lock();
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-hostprobes-")
        .tempdir()
        .unwrap();
    cluster.apply_base_rbac();
    let sa = cluster.service_account_kubeconfig("kube-system", "nodeprobe", tmp.path());
    let m = unique("xid");
    let rules = scoped_rules(tmp.path(), &m, "0");
    let node = TestNode::create(&cluster, &unique("node"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let agent = Agent::start_with_kubeconfig(
        &sa,
        &node.name,
        &rules,
        tmp.path(),
        &[
            "--probes",
            "fd-pressure,psi,readonly-mounts,hung-tasks,kubelet",
            "--kubelet-port",
            &refused,
            "--nvidia-xid-rules",
        ],
    );
    agent.wait_for_kmsg_monitor();
    let cond = |t: &str| cluster.node_condition(&node.name, t);
    let want = [
        ("FDPressure", Some("False")),
        ("MemoryStall", None),
        ("IOStall", None),
        ("ReadonlyMount", Some("False")),
        ("HungTasks", None), // other tests may leave tasks in D on this machine
        ("KubeletUnhealthy", Some("Unknown")),
        ("NvidiaGPUProblem", Some("False")),
    ];
    for (t, status) in want {
        let c = poll(
            &format!("condition {t}"),
            Duration::from_secs(30),
            || agent.logs(),
            || cond(t),
        );
        if let Some(s) = status {
            assert_eq!(c["status"], s, "{t}: {c}");
        }
    }
    assert!(
        cond("CPUStall").is_none(),
        "CPU thresholds off: no condition"
    );
    assert_eq!(
        cond("NvidiaGPUProblem").unwrap()["reason"],
        "NvidiaGPUHasNoXIDError"
    );

    // Real kernel log lines in the driver's format.
    kmsg_write(
        4,
        &format!("NVRM: Xid (PCI:0000:3b:00): 13, pid=2911, name={m}, Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address"),
    );
    kmsg_write(
        3,
        &format!("NVRM: Xid (PCI:0000:3b:00): 79, pid=1957, name={m}, GPU has fallen off the bus."),
    );
    let gpu = poll(
        "NvidiaGPUProblem True",
        Duration::from_secs(30),
        || agent.logs(),
        || cond("NvidiaGPUProblem").filter(|c| c["status"] == "True"),
    );
    assert_eq!(gpu["reason"], "NvidiaXID79Error");
    assert!(gpu["message"].as_str().unwrap().contains(&m), "{gpu}");
    let ev = poll(
        "the NvidiaXID13Warning event",
        Duration::from_secs(30),
        || agent.logs(),
        || {
            cluster
                .events_about("default", &node.name)
                .into_iter()
                .find(|e| e["reason"] == "NvidiaXID13Warning")
        },
    );
    assert_eq!(ev["source"]["component"], "nvidia-xid-monitor");
    assert!(ev["message"].as_str().unwrap().contains(&m), "{ev}");

    let fd = agent
        .metric("nodeprobe_probe_runs_total{probe=\"fd-pressure\",status=\"ok\"}")
        .unwrap_or(0.0);
    assert!(fd >= 1.0, "fd-pressure runs counted");
    let metrics = nodeprobe_integration::agent::scrape(agent.metrics_port);
    for t in [
        "FDPressure",
        "ReadonlyMount",
        "KubeletUnhealthy",
        "NvidiaGPUProblem",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("nodeprobe_condition{")
                    && l.contains(&format!("type=\"{t}\""))),
            "nodeprobe_condition for {t}:\n{metrics}"
        );
    }
    assert_eq!(
        agent.metric("problem_gauge{reason=\"NvidiaXID79Error\",type=\"NvidiaGPUProblem\"}"),
        Some(1.0)
    );
}
