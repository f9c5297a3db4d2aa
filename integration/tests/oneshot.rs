//! `nodeprobe --oneshot` end to end: real tmpfs inode pressure, real PID pressure in a
//! private PID namespace, missing mounts, bad usage; the kernel-log rules over the real
//! `/dev/kmsg` (and the ring through syslog(2) where the device is denied), a real OOM kill.
//! Probe tests pass `--oneshot-logs=false`: lines other tests write to the shared ring must
//! not move their exit codes.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::process::Command;

use nodeprobe_integration::journal::{write_journal_at, JOURNAL_REMOTE};
use nodeprobe_integration::kmsg::{
    default_kernel_rules, kmsg_lock, kmsg_ok, kmsg_write, scoped_rules, task_hung, KmsgDeniedCgroup,
};
use nodeprobe_integration::oom::{oom_ok, PodCgroup};
use nodeprobe_integration::{binary, is_root, nodeprobe, nodeprobe_env, require, unique, Tmpfs};

fn fill(dir: &std::path::Path, n: usize) {
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i}")), b"").expect("create file");
    }
}

#[test]
fn inode_pressure_on_a_real_tmpfs_host_root() {
    if !require(is_root(), "root (mount tmpfs)") {
        return;
    }
    let fs = Tmpfs::with_inodes(100);
    let root = fs.path().to_str().unwrap();
    let args = [
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "inodes",
        "--host-root",
        root,
        "--inodes-mounts",
        "/",
    ];

    let healthy = nodeprobe(&args);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    let r = healthy.result("InodesPressure");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "NodeHasNoInodesPressure");
    assert_eq!(r["message"], "node has no inodes pressure");

    // 1 inode for the root dir + 85 files = 86 of 100.
    let data = fs.path().join("data");
    std::fs::create_dir(&data).unwrap();
    fill(&data, 84);
    let pressed = nodeprobe(&args);
    assert_eq!(pressed.code, 1, "{pressed:?}");
    let r = pressed.result("InodesPressure");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "NodeHasInodesPressure");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("/ 86/100 inodes used (86.0%)"),
        "message names mount, used/total and percent: {msg}"
    );

    // The threshold flag and its env twin move the line.
    let lenient = nodeprobe(&[&args[..], &["--inodes-threshold", "90"]].concat());
    assert_eq!(lenient.code, 0, "{lenient:?}");
    let lenient_env = nodeprobe_env(&args, &[("NODEPROBE_INODES_THRESHOLD", "90")]);
    assert_eq!(lenient_env.code, 0, "{lenient_env:?}");

    std::fs::remove_dir_all(&data).unwrap();
    let relieved = nodeprobe(&args);
    assert_eq!(relieved.code, 0, "{relieved:?}");
    assert_eq!(relieved.result("InodesPressure")["status"], "False");
}

#[test]
fn every_mount_over_threshold_is_named() {
    if !require(is_root(), "root (mount tmpfs)") {
        return;
    }
    let outer = Tmpfs::with_inodes(1000);
    let inner_dir = outer.path().join("var/lib/kubelet");
    std::fs::create_dir_all(&inner_dir).unwrap();
    let inner = Tmpfs::with_inodes(50);
    // bind the small tmpfs at <root>/var/lib/kubelet
    let st = Command::new("mount")
        .args([
            "--bind",
            inner.path().to_str().unwrap(),
            inner_dir.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    struct Unbind(std::path::PathBuf);
    impl Drop for Unbind {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unbind = Unbind(inner_dir.clone());
    fill(&inner_dir, 45);
    let run = nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "inodes",
        "--host-root",
        outer.path().to_str().unwrap(),
        "--inodes-mounts",
        "/,/var/lib/kubelet",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let msg = run.result("InodesPressure")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("/var/lib/kubelet 46/50 inodes used (92.0%)"),
        "{msg}"
    );
    assert!(
        !msg.contains("on / "),
        "the healthy root is not named: {msg}"
    );
}

#[test]
fn missing_mount_is_unknown_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "inodes",
        "--host-root",
        dir.path().to_str().unwrap(),
        "--inodes-mounts",
        "/,/var/lib/containerd",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    let r = run.result("InodesPressure");
    assert_eq!(r["status"], "Unknown");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("/var/lib/containerd") && msg.contains("does not exist"),
        "{msg}"
    );
}

/// Run the binary inside a new PID namespace whose own pid_max is `pid_max`, with `fill`
/// sleeping processes. The host's kernel.pid_max is never written.
fn in_pid_namespace(pid_max: u32, fill: u32) -> nodeprobe_integration::Run {
    let script = format!(
        "echo {pid_max} > /proc/sys/kernel/pid_max || exit 99
         for i in $(seq 1 {fill}); do sleep 600 & done
         \"$0\" --oneshot --oneshot-logs=false --output json --probes pid-pressure
         rc=$?
         kill $(jobs -p) 2>/dev/null
         exit $rc"
    );
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "/bin/bash",
            "-c",
            &script,
        ])
        .arg(binary())
        .output()
        .expect("unshare");
    nodeprobe_integration::Run::from_output(out)
}

#[test]
fn pid_pressure_in_a_private_pid_namespace() {
    if !require(is_root(), "root (PID namespace)") {
        return;
    }
    let host_pid_max =
        std::fs::read_to_string(std::path::Path::new("/").join("proc/sys/kernel/pid_max")).unwrap();
    let pressed = in_pid_namespace(400, 350);
    if pressed.code == 99 {
        require(false, "per-PID-namespace pid_max (Linux >= 6.14)");
        return;
    }
    assert_eq!(pressed.code, 1, "{pressed:?}");
    let r = pressed.result("PidPressure");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "RunningOutOfPID");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("of limit 400"), "{msg}");
    assert!(msg.contains("kernel.pid_max binds"), "{msg}");

    let calm = in_pid_namespace(400, 100);
    assert_eq!(calm.code, 0, "{calm:?}");
    assert_eq!(calm.result("PidPressure")["status"], "False");

    let after =
        std::fs::read_to_string(std::path::Path::new("/").join("proc/sys/kernel/pid_max")).unwrap();
    assert_eq!(host_pid_max, after, "host pid_max untouched");
}

#[test]
fn threads_count_not_just_processes() {
    if !require(is_root(), "root (PID namespace)") {
        return;
    }
    // One process with 345 threads (python) in a namespace with pid_max 400: a process
    // count (what check_pid_pressure.sh did) would see ~3 PIDs in use.
    // Python starts the threads, then runs the probe itself, so nothing else forks (PIDs in
    // a namespace with pid_max 400 wrap to 300 and are not reused below that).
    let script = "echo 400 > /proc/sys/kernel/pid_max || exit 99
        exec python3 -c 'import subprocess,sys,threading,time
threading.stack_size(256*1024)
ts=[threading.Thread(target=time.sleep,args=(600,),daemon=True) for _ in range(345)]
[t.start() for t in ts]
sys.exit(subprocess.run(sys.argv[1:]).returncode)' \"$0\" --oneshot --oneshot-logs=false --output json --probes pid-pressure";
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "/bin/bash", "-c", script])
        .arg(binary())
        .output()
        .expect("unshare");
    let run = nodeprobe_integration::Run::from_output(out);
    if run.code == 99 {
        require(false, "per-PID-namespace pid_max (Linux >= 6.14)");
        return;
    }
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.result("PidPressure")["status"], "True");
}

#[test]
fn bad_usage_gets_a_clear_error_and_exit_64() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["--oneshot", "--bogus"],
            &[],
            "unexpected argument '--bogus'",
        ),
        (
            &["--oneshot", "--probes", "inode"],
            &[],
            "unknown probe \"inode\" in --probes; valid probes: inodes, pid-pressure",
        ),
        (
            &["--oneshot", "--disable-probes", "nope"],
            &[],
            "unknown probe \"nope\" in --disable-probes",
        ),
        (
            &["--oneshot"],
            &[("NODEPROBE_PROBES", "bogus")],
            "unknown probe \"bogus\"",
        ),
        (
            &["--oneshot", "--inodes-threshold", "150"],
            &[],
            "must be in (0, 100]",
        ),
        (
            &["--oneshot", "--pid-pressure-timeout", "soon"],
            &[],
            "invalid duration",
        ),
        (
            &["--oneshot", "--host-root", "/nonexistent-nodeprobe-root"],
            &[],
            "--host-root /nonexistent-nodeprobe-root is not a directory",
        ),
        (
            &["--oneshot", "--output", "yaml"],
            &[],
            "invalid value 'yaml'",
        ),
    ];
    for (args, env, expect) in cases {
        let run = nodeprobe_env(args, env);
        assert_eq!(run.code, 64, "{args:?} {env:?}: {run:?}");
        assert!(
            run.stderr.contains(expect),
            "{args:?}: stderr should contain {expect:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "nothing ran: {}", run.stdout);
    }
}

#[test]
fn help_documents_flags_and_env() {
    let run = nodeprobe(&["--help"]);
    assert_eq!(run.code, 0);
    for s in [
        "--oneshot",
        "NODEPROBE_PROBES",
        "NODEPROBE_DISABLE_PROBES",
        "--inodes-mounts",
        "NODEPROBE_INODES_THRESHOLD",
        "--pid-pressure-threshold",
        "NODEPROBE_HOST_ROOT",
        "--oneshot-logs",
        "NODEPROBE_ONESHOT_LOGS",
    ] {
        assert!(run.stdout.contains(s), "--help lacks {s}");
    }
}

#[test]
fn oneshot_on_this_machine_is_truthful() {
    let run = nodeprobe(&[
        "--oneshot",
        "--output",
        "json",
        "--probes",
        "inodes,pid-pressure",
    ]);
    let v = run.json();
    assert!(v["node"].as_str().is_some_and(|n| !n.is_empty()));
    for cond in ["InodesPressure", "PidPressure"] {
        let r = run.result(cond);
        assert!(
            r["duration_ms"].as_u64().is_some(),
            "duration_ms is a number: {r}"
        );
        assert!(["True", "False", "Unknown"].contains(&r["status"].as_str().unwrap()));
    }
    // The kernel log is read by default with the built-in rules: both kernel conditions
    // are reported, whatever their status on this machine, and what was read is said.
    for cond in ["KernelDeadlock", "ReadonlyFilesystem"] {
        let r = run.result(cond);
        assert_eq!(r["probe"], "kernel-monitor", "{r}");
        assert!(["True", "False", "Unknown"].contains(&r["status"].as_str().unwrap()));
    }
    assert!(v["log_findings"].is_array(), "{v:#}");
    let kernel = &v["log_sources"][0];
    assert_eq!(kernel["source"], "kernel-monitor", "{v:#}");
    assert_eq!(kernel["rules"], "builtin:kernel-monitor.json");
    if is_root() {
        assert_eq!(kernel["read"], "kmsg", "{kernel}");
        assert_eq!(kernel["location"], "/dev/kmsg");
    }
    let table = nodeprobe(&["--oneshot", "--probes", "inodes"]);
    assert!(table.stdout.contains("InodesPressure"), "{}", table.stdout);
    assert!(
        table.stdout.contains("log kernel-monitor: "),
        "{}",
        table.stdout
    );
}

/// `--oneshot` over the lines this test writes to the real `/dev/kmsg`: rules scoped to the
/// test's marker (other writers of the ring cannot disturb it), `--probes inodes` next to it.
fn oneshot_logs(rules: &std::path::Path, extra: &[&str]) -> nodeprobe_integration::Run {
    let rules = rules.to_str().unwrap();
    let mut args = vec!["--oneshot", "--probes", "inodes", "--log-monitors", rules];
    args.extend_from_slice(extra);
    nodeprobe(&args)
}

fn findings_with<'a>(v: &'a serde_json::Value, marker: &str) -> Vec<&'a serde_json::Value> {
    v["log_findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no log_findings in {v:#}"))
        .iter()
        .filter(|f| f["message"].as_str().is_some_and(|m| m.contains(marker)))
        .collect()
}

#[test]
fn kernel_log_conditions_and_findings_from_the_real_ring() {
    if !kmsg_ok() {
        return;
    }
    let _kmsg = kmsg_lock();
    let m = unique("oneshot-logs");
    let tmp = tempfile::tempdir().unwrap();
    let rules = scoped_rules(tmp.path(), &m, "5m");

    // Nothing of ours in the ring yet: the conditions are healthy, exit 0.
    let before = oneshot_logs(&rules, &["--output", "json"]);
    assert_eq!(before.code, 0, "{before:?}");
    assert_eq!(before.result("KernelDeadlock")["status"], "False");
    let r = before.result("ReadonlyFilesystem");
    assert_eq!(r["status"], "False");
    assert_eq!(r["reason"], "FilesystemIsNotReadOnly");
    assert!(findings_with(&before.json(), &m).is_empty());

    kmsg_write(3, &task_hung(&m, "worker-a"));
    kmsg_write(
        3,
        &format!("{m}: EXT4-fs (sda1): Remounting filesystem read-only"),
    );
    kmsg_write(3, &task_hung(&m, "docker"));

    let run = oneshot_logs(&rules, &["--output", "json"]);
    assert_eq!(run.code, 1, "a True log condition is a problem: {run:?}");
    let v = run.json();
    assert_eq!(run.result("InodesPressure")["probe"], "inodes");
    let ro = run.result("ReadonlyFilesystem");
    assert_eq!(ro["probe"], "kernel-monitor");
    assert_eq!(ro["status"], "True");
    assert_eq!(ro["reason"], "FilesystemIsReadOnly");
    assert_eq!(
        ro["message"],
        format!("{m}: EXT4-fs (sda1): Remounting filesystem read-only")
    );
    assert!(
        ro["since"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{ro}"
    );
    let dead = run.result("KernelDeadlock");
    assert_eq!(dead["status"], "True");
    assert_eq!(dead["reason"], "DockerHung");

    let found = findings_with(&v, &m);
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|f| {
            (
                f["reason"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("TaskHung", task_hung(&m, "worker-a").as_str()),
            ("TaskHung", task_hung(&m, "docker").as_str())
        ],
        "{v:#}"
    );
    for f in &found {
        assert_eq!(f["source"], "kernel-monitor");
        let t = f["time"].as_str().unwrap();
        let at = probes::timefmt::parse_rfc3339(t).expect("RFC 3339 time");
        let age = std::time::SystemTime::now()
            .duration_since(at)
            .unwrap_or_default();
        assert!(
            age < std::time::Duration::from_secs(60),
            "{t} is now, not {age:?} ago"
        );
    }
    let src = &v["log_sources"][0];
    assert_eq!(src["read"], "kmsg", "{src}");
    assert!(src["records"].as_u64().unwrap() >= 3, "{src}");

    // The table shows the same.
    let table = oneshot_logs(&rules, &[]);
    assert_eq!(table.code, 1);
    let row = table
        .stdout
        .lines()
        .find(|l| l.contains("ReadonlyFilesystem"))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(
        row.contains("kernel-monitor")
            && row.contains("True")
            && row.contains("FilesystemIsReadOnly"),
        "{row}"
    );
    assert!(row.contains(&format!("{m}: EXT4-fs (sda1)")), "{row}");
    let finding = table
        .stdout
        .lines()
        .find(|l| l.contains("TaskHung") && l.contains(&task_hung(&m, "worker-a")))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(finding.contains("kernel-monitor"), "{finding}");

    // --oneshot-logs=false (and its env twin) runs the probes only.
    for off in [
        oneshot_logs(&rules, &["--output", "json", "--oneshot-logs=false"]),
        nodeprobe_env(
            &[
                "--oneshot",
                "--output",
                "json",
                "--probes",
                "inodes",
                "--log-monitors",
                rules.to_str().unwrap(),
            ],
            &[("NODEPROBE_ONESHOT_LOGS", "false")],
        ),
    ] {
        assert_eq!(off.code, 0, "{off:?}");
        let v = off.json();
        assert!(v.get("log_findings").is_none(), "{v:#}");
        assert!(v.get("log_sources").is_none(), "{v:#}");
        let conds: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["condition"].as_str().unwrap())
            .collect();
        assert_eq!(conds, vec!["InodesPressure"]);
    }
    let off_table = oneshot_logs(&rules, &["--oneshot-logs", "false"]);
    assert_eq!(off_table.code, 0);
    assert!(!off_table.stdout.contains(&m), "{}", off_table.stdout);
}

#[test]
fn lines_older_than_the_lookback_are_not_reported() {
    if !kmsg_ok() {
        return;
    }
    let _kmsg = kmsg_lock();
    let m = unique("oneshot-lookback");
    let tmp = tempfile::tempdir().unwrap();
    let rules = scoped_rules(tmp.path(), &m, "2s");
    kmsg_write(
        3,
        &format!("{m}: EXT4-fs (sda1): Remounting filesystem read-only"),
    );
    let fresh = oneshot_logs(&rules, &["--output", "json"]);
    assert_eq!(
        fresh.result("ReadonlyFilesystem")["status"],
        "True",
        "{fresh:?}"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let later = oneshot_logs(&rules, &["--output", "json"]);
    assert_eq!(later.code, 0, "{later:?}");
    assert_eq!(later.result("ReadonlyFilesystem")["status"], "False");
    assert!(findings_with(&later.json(), &m).is_empty());
}

#[test]
fn the_ring_through_syslog_where_kmsg_is_denied() {
    if !kmsg_ok() || !KmsgDeniedCgroup::available() {
        return;
    }
    let _kmsg = kmsg_lock();
    let m = unique("oneshot-ring");
    let tmp = tempfile::tempdir().unwrap();
    let rules = scoped_rules(tmp.path(), &m, "5m");
    kmsg_write(3, &task_hung(&m, "docker"));
    let cg = KmsgDeniedCgroup::create();
    let out = Command::new(&cg.wrapper()[0])
        .args(&cg.wrapper()[1..])
        .arg(binary())
        .args([
            "--oneshot",
            "--output",
            "json",
            "--probes",
            "inodes",
            "--log-monitors",
        ])
        .arg(&rules)
        .output()
        .expect("run nodeprobe in the cgroup");
    let run = nodeprobe_integration::Run::from_output(out);
    assert_eq!(run.code, 1, "{run:?}");
    let v = run.json();
    assert_eq!(v["log_sources"][0]["read"], "syslog", "{v:#}");
    assert_eq!(v["log_sources"][0]["location"], "syslog(2)");
    assert_eq!(run.result("KernelDeadlock")["reason"], "DockerHung");
    assert_eq!(findings_with(&v, &m).len(), 1, "{v:#}");
    drop(cg);
}

#[test]
fn a_real_oom_kill_names_the_pod() {
    if !kmsg_ok() || !oom_ok() {
        return;
    }
    let _kmsg = kmsg_lock();
    let tmp = tempfile::tempdir().unwrap();
    // The shipped rules (the OOM line is the kernel's, it carries no test marker).
    let rules = tmp.path().join("kernel-monitor.json");
    std::fs::write(&rules, default_kernel_rules("5m")).unwrap();
    let cg = PodCgroup::create(20);
    cg.oom_kill();
    let run = oneshot_logs(&rules, &["--output", "json"]);
    let v = run.json();
    let ours: Vec<&serde_json::Value> = v["log_findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["oom"]["pod_uid"] == cg.uid.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{v:#}");
    let f = ours[0];
    assert_eq!(f["reason"], "PodOOMKilling");
    assert_eq!(f["oom"]["container_id"], cg.container_id.as_str());
    assert_eq!(f["oom"]["task"], "python3");
    assert_eq!(f["oom"]["memcg"], cg.memcg());
    assert!(f["message"].as_str().unwrap().contains("oom-kill:"), "{f}");

    let table = oneshot_logs(&rules, &[]);
    let row = table
        .stdout
        .lines()
        .find(|l| l.contains(&cg.uid))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(
        row.contains("PodOOMKilling")
            && row.contains(&format!(
                "pod {} container {}",
                cg.uid,
                &cg.container_id[..12]
            ))
            && row.contains("task python3 (pid "),
        "{row}"
    );

    // On a kubelet node, /var/log/pods/<namespace>_<name>_<uid> names the pod: a host root
    // laid out so (the machine's /var/log/pods is not touched), the kernel log the machine's.
    let host = tmp.path().join("host");
    let ns = unique("ns").to_ascii_lowercase();
    std::fs::create_dir_all(host.join(format!("var/log/pods/{ns}_web-0_{}/app", cg.uid))).unwrap();
    let host_root = host.to_str().unwrap();
    let named = oneshot_logs(
        &rules,
        &[
            "--host-root",
            host_root,
            "--kmsg-path",
            "/dev/kmsg",
            "--output",
            "json",
        ],
    );
    let v = named.json();
    let f = v["log_findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["oom"]["pod_uid"] == cg.uid.as_str())
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(
        f["pod"],
        serde_json::json!({"namespace": ns, "name": "web-0"}),
        "{f}"
    );
    let table = oneshot_logs(
        &rules,
        &["--host-root", host_root, "--kmsg-path", "/dev/kmsg"],
    );
    assert!(
        table.stdout.contains(&format!(
            "pod {ns}/web-0 ({}) container {}",
            cg.uid,
            &cg.container_id[..12]
        )),
        "{}",
        table.stdout
    );
    drop(cg);
}

#[test]
fn an_unreadable_kernel_log_is_unknown_not_a_crash() {
    if !require(is_root(), "root (run the binary as nobody)") {
        return;
    }
    // A copy of the binary nobody may run.
    let dir = tempfile::Builder::new()
        .prefix("nodeprobe-it-oneshot-nobody")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("nodeprobe");
    std::fs::copy(binary(), &bin).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["--oneshot", "--output", "json", "--probes", "inodes"])
        .env_remove("NODEPROBE_ONESHOT_LOGS")
        .output()
        .expect("setpriv");
    let run = nodeprobe_integration::Run::from_output(out);
    let restricted =
        std::fs::read_to_string(std::path::Path::new("/").join("proc/sys/kernel/dmesg_restrict"))
            .is_ok_and(|v| v.trim() == "1");
    let r = run.result("KernelDeadlock");
    if restricted {
        // Neither /dev/kmsg nor syslog(2) without CAP_SYSLOG: Unknown, naming what to grant.
        assert_eq!(run.code, 2, "{run:?}");
        assert_eq!(r["status"], "Unknown");
        assert_eq!(r["reason"], "LogSourceUnavailable");
        let msg = r["message"].as_str().unwrap();
        assert!(
            msg.contains("/dev/kmsg")
                && msg.contains("CAP_SYSLOG")
                && msg.contains("--oneshot-logs=false"),
            "{msg}"
        );
        assert_eq!(run.json()["log_sources"][0]["read"], "none");
    } else {
        assert_eq!(run.json()["log_sources"][0]["read"], "kmsg", "{run:?}");
    }
}

#[test]
fn a_bad_rule_file_is_a_usage_error_with_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("kernel-monitor.json");
    std::fs::write(
        &bad,
        r#"{"plugin":"kmsg","lookback":"5m","source":"kernel-monitor","conditions":[],
            "rules":[{"type":"temporary","reason":"Broken","pattern":"task ([a-z"}]}"#,
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let run = nodeprobe(&["--oneshot", "--probes", "inodes", "--log-monitors", bad]);
    assert_eq!(run.code, 64, "{run:?}");
    assert!(run.stdout.is_empty(), "no result: {}", run.stdout);
    assert!(
        run.stderr.contains(bad) && run.stderr.contains("Broken"),
        "names the file and the rule: {}",
        run.stderr
    );
    // Without the logs the rule files are not read.
    let off = nodeprobe(&[
        "--oneshot",
        "--oneshot-logs=false",
        "--probes",
        "inodes",
        "--log-monitors",
        bad,
    ]);
    assert_eq!(off.code, 0, "{off:?}");
}

#[test]
fn journald_monitors_read_real_journal_files_within_the_lookback() {
    if !require(
        std::path::Path::new(JOURNAL_REMOTE).exists(),
        "systemd-journal-remote (Debian package systemd-journal-remote)",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let m = unique("oneshot-jd");
    let ident = format!("{m}-dockerd");
    let rules = tmp.path().join("docker-monitor.json");
    std::fs::write(
        &rules,
        serde_json::json!({
            "plugin": "journald", "pluginConfig": {"source": ident}, "logPath": dir,
            "lookback": "5m", "source": "docker-monitor",
            "conditions": [{"type": "DockerStuck", "reason": "DockerIsFine", "message": "docker is fine"}],
            "rules": [
                {"type": "temporary", "reason": "CorruptDockerImage", "pattern": "failed to register layer: .*"},
                {"type": "permanent", "condition": "DockerStuck", "reason": "DockerHung", "pattern": "docker daemon is stuck.*"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let now = std::time::SystemTime::now();
    let ago = |s: u64| now - std::time::Duration::from_secs(s);
    write_journal_at(
        &dir,
        "a",
        &[
            (&ident, "failed to register layer: too old", ago(600)),
            (&ident, "docker daemon is stuck since long ago", ago(600)),
            (
                "containerd",
                "failed to register layer: other identifier",
                ago(30),
            ),
            (&ident, "level=info msg=noise", ago(20)),
            (&ident, "failed to register layer: recent", ago(10)),
        ],
    );
    let rules = rules.to_str().unwrap();
    let healthy = oneshot_logs(std::path::Path::new(rules), &["--output", "json"]);
    assert_eq!(healthy.code, 0, "{healthy:?}");
    let v = healthy.json();
    let r = healthy.result("DockerStuck");
    assert_eq!(
        (r["status"].as_str(), r["probe"].as_str()),
        (Some("False"), Some("docker-monitor"))
    );
    let found: Vec<&str> = v["log_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(found, vec!["failed to register layer: recent"], "{v:#}");
    let src = &v["log_sources"][0];
    assert_eq!(src["read"], "journald", "{src}");
    assert_eq!(src["records"], 2, "{src}");

    write_journal_at(&dir, "b", &[(&ident, "docker daemon is stuck now", ago(5))]);
    let stuck = oneshot_logs(std::path::Path::new(rules), &["--output", "json"]);
    assert_eq!(stuck.code, 1, "{stuck:?}");
    let r = stuck.result("DockerStuck");
    assert_eq!(r["status"], "True");
    assert_eq!(r["reason"], "DockerHung");
    assert_eq!(r["message"], "docker daemon is stuck now");
}
