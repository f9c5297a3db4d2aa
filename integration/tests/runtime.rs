//! The runtime probe through the built binary, against real containerd and dockerd:
//! the shared containerd, and private instances for everything that changes a daemon's
//! state (CNI config added, daemon stopped). Every run uses an empty `--host-root`, so the
//! machine's own default socket paths never leak into the result.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use nodeprobe_integration::runtimes::{PrivateContainerd, PrivateDockerd};
use nodeprobe_integration::{nodeprobe, require, Run};
use serde_json::Value;

/// `nodeprobe --oneshot --output json --probes <probes> --host-root <empty> <extra>`.
fn oneshot(host_root: &Path, probes: &str, extra: &[&str]) -> Run {
    let root = host_root.to_str().unwrap();
    let mut args = vec![
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        probes,
        "--host-root",
        root,
    ];
    args.extend_from_slice(extra);
    nodeprobe(&args)
}

fn runtime(host_root: &Path, extra: &[&str]) -> Run {
    oneshot(host_root, "runtime", extra)
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

fn not_applicable(run: &Run, condition: &str) -> Option<Value> {
    run.json()["not_applicable"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["condition"] == condition).cloned())
}

fn empty_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nodeprobe-it-root-")
        .tempdir()
        .unwrap()
}

#[test]
fn no_runtime_anywhere_is_unknown_naming_the_paths_and_docker_is_not_applicable() {
    let root = empty_root();
    let run = runtime(root.path(), &[]);
    assert_eq!(run.code, 2, "{run:?}");
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "Unknown", "{r:#}");
    let msg = text(&r, "message");
    assert!(msg.starts_with("no container runtime found"), "{msg}");
    for p in [
        "/run/containerd/containerd.sock",
        "/run/docker.sock",
        "/var/run/docker.sock",
    ] {
        let under_root = format!("{}{p}", root.path().display());
        assert!(msg.contains(&under_root), "{under_root} missing: {msg}");
    }
    let na = not_applicable(&run, "DockerOffline").expect("DockerOffline not applicable");
    assert!(
        text(&na, "message").contains("docker is not present"),
        "{na:#}"
    );
}

#[test]
fn shared_containerd_answers_version_and_cri_status() {
    let sock = std::env::var("NODEPROBE_IT_CONTAINERD_SOCK").unwrap_or_default();
    if !require(
        !sock.is_empty() && Path::new(&sock).exists(),
        "shared containerd (NODEPROBE_IT_CONTAINERD_SOCK from services.env)",
    ) {
        return;
    }
    let root = empty_root();
    let run = runtime(root.path(), &["--containerd-socket", &sock]);
    assert_eq!(run.code, 0, "{run:?}");
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "False", "{r:#}");
    assert_eq!(r["reason"], "RuntimeDaemonNotOffline");
    let detail = text(&r, "detail");
    // Version answered (containerd's own version string), CRI Status answered.
    assert!(
        detail.starts_with("containerd 1.") || detail.starts_with("containerd 2."),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("at {sock}: RuntimeReady, NetworkReady=")),
        "{detail}"
    );
    assert!(not_applicable(&run, "DockerOffline").is_some(), "{run:?}");
}

#[test]
fn network_ready_flips_when_a_cni_conflist_is_added() {
    if !PrivateContainerd::available() {
        return;
    }
    let ctrd = PrivateContainerd::start();
    let sock = ctrd.socket().to_str().unwrap().to_string();
    let root = empty_root();
    let detail = || {
        let run = runtime(root.path(), &["--containerd-socket", &sock]);
        let r = run.result("RuntimeOffline");
        assert_eq!(r["status"], "False", "{r:#}");
        text(&r, "detail")
    };
    let before = detail();
    assert!(
        before.contains("NetworkReady=false (NetworkPluginNotReady"),
        "{before}"
    );
    std::fs::write(
        ctrd.cni_conf().join("10-nodeprobe-it.conflist"),
        r#"{"cniVersion":"0.4.0","name":"nodeprobe-it","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    // The CRI plugin watches the directory; give it a bounded moment.
    let started = Instant::now();
    let mut after = detail();
    while !after.contains("NetworkReady=true") && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
        after = detail();
    }
    assert!(
        after.contains(&format!("at {sock}: RuntimeReady, NetworkReady=true")),
        "{after}"
    );
}

#[test]
fn stopped_containerd_is_offline() {
    if !PrivateContainerd::available() {
        return;
    }
    let mut ctrd = PrivateContainerd::start();
    let sock = ctrd.socket().to_str().unwrap().to_string();
    let root = empty_root();
    let run = runtime(root.path(), &["--containerd-socket", &sock]);
    assert_eq!(run.result("RuntimeOffline")["status"], "False", "{run:?}");

    ctrd.stop();
    let run = runtime(root.path(), &["--containerd-socket", &sock]);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "True", "{r:#}");
    assert_eq!(r["reason"], "RuntimeDaemonOffline");
    assert_eq!(
        text(&r, "message"),
        format!(
            "runtime offline: containerd at {sock}: socket does not exist (daemon stopped, or wrong path)"
        )
    );
}

#[test]
fn dockerd_ping_ok_then_stopped_is_offline_for_both_conditions() {
    if !PrivateContainerd::available() || !PrivateDockerd::available() {
        return;
    }
    let ctrd = PrivateContainerd::start();
    let mut dockerd = PrivateDockerd::start(Some(ctrd.socket()));
    let csock = ctrd.socket().to_str().unwrap().to_string();
    let dsock = dockerd.socket().to_str().unwrap().to_string();
    let args = ["--containerd-socket", &csock, "--docker-socket", &dsock];
    let root = empty_root();

    let run = runtime(root.path(), &args);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.result("RuntimeOffline")["status"], "False");
    let d = run.result("DockerOffline");
    assert_eq!(d["status"], "False", "{d:#}");
    assert_eq!(d["reason"], "DockerDaemonNotOffline");
    let detail = text(&d, "detail");
    assert!(
        detail.starts_with("docker ") && detail.ends_with(&format!("at {dsock}: ping OK")),
        "{detail}"
    );

    dockerd.stop();
    let run = runtime(root.path(), &args);
    assert_eq!(run.code, 1, "{run:?}");
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "True", "{r:#}");
    let msg = text(&r, "message");
    assert!(
        msg.starts_with(&format!("runtime offline: docker at {dsock}: ")),
        "{msg}"
    );
    // The containerd that dockerd shared is still up, and says so.
    assert!(msg.contains("; also containerd "), "{msg}");
    let d = run.result("DockerOffline");
    assert_eq!(d["status"], "True", "{d:#}");
    assert_eq!(d["reason"], "DockerDaemonOffline");
}

#[test]
fn stale_socket_is_offline() {
    let dir = empty_root();
    // Bound then closed: the file stays, nobody listens (a daemon killed with -9).
    let stale = dir.path().join("stale-docker.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let run = runtime(dir.path(), &["--docker-socket", stale.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let d = run.result("DockerOffline");
    assert_eq!(d["status"], "True", "{d:#}");
    assert!(
        text(&d, "message").contains("connection refused (stale socket"),
        "{d:#}"
    );
    assert_eq!(run.result("RuntimeOffline")["status"], "True");
}

#[test]
fn hung_socket_is_offline_within_the_timeout_and_other_probes_are_not_delayed() {
    let dir = empty_root();
    // Sockets that accept every connection and never answer (a hung daemon).
    let mut keep = Vec::new();
    for name in ["hung-containerd.sock", "hung-docker.sock"] {
        let listener = UnixListener::bind(dir.path().join(name)).unwrap();
        keep.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept() {
                held.push(conn);
            }
        }));
    }
    let c = dir.path().join("hung-containerd.sock");
    let d = dir.path().join("hung-docker.sock");
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let run = oneshot(
        dir.path(),
        "runtime,inodes",
        &[
            "--containerd-socket",
            c.to_str().unwrap(),
            "--docker-socket",
            d.to_str().unwrap(),
            "--runtime-timeout",
            "1s",
        ],
    );
    let wall = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");

    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "True", "{r:#}");
    let msg = text(&r, "message");
    assert!(
        msg.contains(&format!(
            "containerd at {}: not responding within 1s",
            c.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "docker at {}: not responding within 1s",
            d.display()
        )),
        "{msg}"
    );
    let dk = run.result("DockerOffline");
    assert_eq!(dk["status"], "True", "{dk:#}");

    // The runtime probe waited its own timeout (both daemons concurrently, not one
    // after the other) and the inodes probe, in the same run, did not wait for it.
    let runtime_ms = r["duration_ms"].as_u64().unwrap();
    assert!(
        (900..3000).contains(&runtime_ms),
        "runtime took {runtime_ms} ms"
    );
    let i = run.result("InodesPressure");
    assert_eq!(i["status"], "False", "{i:#}");
    let inodes_ms = i["duration_ms"].as_u64().unwrap();
    // Well under the runtime's 1 s: it ran beside the hung check, not after it.
    assert!(inodes_ms < 900, "inodes took {inodes_ms} ms");
    assert!(
        wall < timeout + Duration::from_secs(2),
        "whole run took {wall:?}"
    );
}

/// The systemd unit's ActiveState joins the socket checks when the host's D-Bus answers.
#[test]
fn systemd_unit_state_joins_the_verdict() {
    use nodeprobe_integration::nodeprobe_env;
    use nodeprobe_integration::systemd::PrivateSystemd;
    if !require(PrivateSystemd::available(), "systemd --user (private bus)") {
        return;
    }
    let sd = PrivateSystemd::start();
    let root = empty_root();
    let args = |extra: &[&'static str]| {
        let mut a: Vec<String> = [
            "--oneshot",
            "--oneshot-logs=false",
            "--output",
            "json",
            "--probes",
            "runtime",
            "--host-root",
            root.path().to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", sd.address())];

    // containerd.service failed and no socket: the runtime is offline, not "not installed".
    sd.write_unit(
        "containerd.service",
        &PrivateSystemd::failing("fake containerd"),
    );
    sd.reload();
    sd.start_unit("containerd.service");
    sd.wait_active_state("containerd.service", "failed");
    let a = args(&[]);
    let run = nodeprobe_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "True", "{run:?}");
    assert!(text(&r, "message").contains("failed"), "{r}");
    assert_eq!(run.code, 1);

    // containerd.service active and the real containerd answering: healthy, unit state noted.
    let Ok(sock) = std::env::var("NODEPROBE_IT_CONTAINERD_SOCK") else {
        require(false, "NODEPROBE_IT_CONTAINERD_SOCK (shared containerd)");
        return;
    };
    sd.write_unit(
        "containerd.service",
        &PrivateSystemd::sleeper("fake containerd"),
    );
    sd.reload();
    sd.busctl(&[
        "call",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "ResetFailed",
    ]);
    sd.start_unit("containerd.service");
    sd.wait_active_state("containerd.service", "active");
    let mut a = args(&[]);
    a.extend(["--containerd-socket".to_string(), sock]);
    let run = nodeprobe_env(&a.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let r = run.result("RuntimeOffline");
    assert_eq!(r["status"], "False", "{run:?}");
    assert!(text(&r, "detail").contains("active"), "{r}");
}
