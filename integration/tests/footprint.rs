//! Idle footprint of the daemon against the fake API server (benchmark, run on demand):
//!
//! ```text
//! cargo build --release && NODEPROBE_BIN=$PWD/target/release/nodeprobe \
//!   cargo test -p nodeprobe-integration --test footprint -- --ignored --nocapture
//! ```
//!
//! Runs every probe for `NODEPROBE_FOOTPRINT_SECS` (default 60) seconds and reports VmRSS,
//! CPU time (utime+stime) and the number of child processes the agent started.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nodeprobe_integration::binary;
use nodeprobe_integration::fakeapi::FakeApi;
use nodeprobe_integration::procstat::{children, clock_ticks, cpu_ticks, rss_kib};
use serde_json::json;

#[test]
#[ignore = "benchmark: 60 s"]
fn idle_footprint_against_the_fake_api() {
    let secs: u64 = std::env::var("NODEPROBE_FOOTPRINT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let api = FakeApi::start();
    api.add_node("n1", "uid-n1", json!([{"type": "Ready", "status": "True"}]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let mut cmd = Command::new(binary());
    cmd.args(["--hostname-override", "n1", "--kubeconfig"])
        .arg(&kubeconfig)
        // every probe and the default log monitors (kmsg; journald where a journal exists)
        .arg("--state-dir")
        .arg(dir.path().join("state"));
    // With the test services up, the D-Bus and runtime probes do real work.
    if let Ok(bus) = std::env::var("NODEPROBE_IT_SYSTEMD_BUS") {
        cmd.env("DBUS_SYSTEM_BUS_ADDRESS", bus);
    }
    for (var, flag) in [
        ("NODEPROBE_IT_CONTAINERD_SOCK", "--containerd-socket"),
        ("NODEPROBE_IT_DOCKER_SOCK", "--docker-socket"),
    ] {
        if let Ok(sock) = std::env::var(var) {
            cmd.args([flag, &sock]);
        }
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nodeprobe");
    let pid = child.id();
    let t0 = Instant::now();
    let mut max_children = 0;
    let mut cpu_at_10s = None;
    while t0.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        max_children = max_children.max(children(pid));
        if cpu_at_10s.is_none() && t0.elapsed() >= Duration::from_secs(10) {
            cpu_at_10s = Some((cpu_ticks(pid), t0.elapsed()));
        }
    }
    let rss = rss_kib(pid);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let detail: Vec<&str> = status
        .lines()
        .filter(|l| {
            l.starts_with("RssAnon") || l.starts_with("RssFile") || l.starts_with("Threads")
        })
        .collect();
    eprintln!("{}", detail.join(" | ").replace('\t', " "));
    let cpu = cpu_ticks(pid);
    let elapsed = t0.elapsed();
    let tck = clock_ticks();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().unwrap();
    let total_cpu = cpu as f64 / tck;
    let per_min = total_cpu * 60.0 / elapsed.as_secs_f64();
    let steady = cpu_at_10s
        .map(|(c, at)| (cpu.saturating_sub(c)) as f64 / tck * 60.0 / (elapsed - at).as_secs_f64());
    eprintln!(
        "after {:.0}s: VmRSS {} KiB ({:.2} MiB), CPU {:.3}s total = {:.4} s/min (steady state after 10s: {:.4} s/min), child processes seen: {}, PATCHes: {}",
        elapsed.as_secs_f64(),
        rss,
        rss as f64 / 1024.0,
        total_cpu,
        per_min,
        steady.unwrap_or(f64::NAN),
        max_children,
        api.requests().iter().filter(|r| r.method == "PATCH").count()
    );
    assert!(status.success(), "exit {status:?}");
    assert_eq!(max_children, 0);
    assert!(api.condition("n1", "InodesPressure").is_some());
}
