//! `nodeprobe --oneshot` end to end: real tmpfs inode pressure, real PID pressure in a
//! private PID namespace, missing mounts, bad usage.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::process::Command;

use nodeprobe_integration::{binary, is_root, nodeprobe, nodeprobe_env, require, Tmpfs};

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
         \"$0\" --oneshot --output json --probes pid-pressure
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
sys.exit(subprocess.run(sys.argv[1:]).returncode)' \"$0\" --oneshot --output json --probes pid-pressure";
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
    let table = nodeprobe(&["--oneshot", "--probes", "inodes"]);
    assert!(table.stdout.contains("InodesPressure"), "{}", table.stdout);
}
