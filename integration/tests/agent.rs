//! The built binary in daemon mode against the fake API server.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use nodeprobe_integration::agent::{events_with, kubelet_node, wait_for, Agent};
use nodeprobe_integration::fakeapi::{request, FakeApi};
use nodeprobe_integration::{is_root, require, Tmpfs};
use serde_json::json;

/// Fill a tmpfs with empty files until `n` exist.
fn fill(dir: &Path, n: usize) {
    for i in 0..n {
        let _ = std::fs::write(dir.join(format!("f{i}")), b"");
    }
}

fn empty(dir: &Path, n: usize) {
    for i in 0..n {
        let _ = std::fs::remove_file(dir.join(format!("f{i}")));
    }
}

#[test]
fn probe_conditions_appear_and_kubelet_conditions_stay() {
    let api = FakeApi::start();
    kubelet_node(&api);
    let before = api.node("n1").unwrap()["status"]["conditions"].clone();
    let mut agent = Agent::start(&api, Path::new("/"), &["--probes", "inodes,pid-pressure"]);
    let inodes = wait_for("InodesPressure", Duration::from_secs(10), &agent, || {
        api.condition("n1", "InodesPressure")
    });
    let pid = wait_for("PidPressure", Duration::from_secs(10), &agent, || {
        api.condition("n1", "PidPressure")
    });
    assert_eq!(inodes["status"], "False", "{inodes}");
    assert_eq!(inodes["reason"], "NodeHasNoInodesPressure");
    assert_eq!(inodes["message"], "node has no inodes pressure");
    assert_eq!(pid["status"], "False", "{pid}");
    assert_eq!(pid["reason"], "NodeHasSufficientPID");
    assert_eq!(pid["message"], "node has sufficient PID available");
    for c in [&inodes, &pid] {
        assert!(c["lastTransitionTime"].is_string() && c["lastHeartbeatTime"].is_string());
    }
    let after = api.node("n1").unwrap()["status"]["conditions"].clone();
    assert_eq!(&after[0], &before[0]);
    assert_eq!(&after[1], &before[1]);
    // Endpoints.
    let (code, _) = wait_for("readyz", Duration::from_secs(5), &agent, || {
        Some(agent.get(agent.status_port, "/readyz")).filter(|(c, _)| *c == 200)
    });
    assert_eq!(code, 200);
    let addr = format!("127.0.0.1:{}", agent.status_port).parse().unwrap();
    let (code, conditions) = request(addr, "GET", "/conditions", "", "");
    assert_eq!(code, 200);
    assert!(conditions
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "InodesPressure" && c["status"] == "False"));
    let metrics = {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", agent.metrics_port)).unwrap();
        use std::io::Write;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(
        metrics
            .contains("problem_gauge{reason=\"NodeHasInodesPressure\",type=\"InodesPressure\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("nodeprobe_probe_runs_total{probe=\"inodes\",status=\"ok\"}"));
    // No events for healthy conditions.
    assert!(api.events(None).is_empty(), "{:#?}", api.events(None));
    let (code, took) = agent.terminate();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

#[test]
fn inode_pressure_on_a_tmpfs_host_root() {
    if !require(is_root(), "root (to mount a tmpfs)") {
        return;
    }
    let api = FakeApi::start();
    kubelet_node(&api);
    let fs = Tmpfs::with_inodes(100);
    let mut agent = Agent::start(
        &api,
        fs.path(),
        &["--probes", "inodes", "--inodes-interval", "200ms"],
    );
    wait_for(
        "healthy InodesPressure",
        Duration::from_secs(10),
        &agent,
        || {
            api.condition("n1", "InodesPressure")
                .filter(|c| c["status"] == "False")
        },
    );
    fill(fs.path(), 95);
    let c = wait_for(
        "InodesPressure True",
        Duration::from_secs(5),
        &agent,
        || {
            api.condition("n1", "InodesPressure")
                .filter(|c| c["status"] == "True")
        },
    );
    assert_eq!(c["reason"], "NodeHasInodesPressure");
    let msg = c["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("inode usage over 80% on / "), "{msg}");
    let warn = wait_for("Warning event", Duration::from_secs(5), &agent, || {
        events_with(&api, "NodeHasInodesPressure")
            .into_iter()
            .next()
    });
    assert_eq!(warn["type"], "Warning");
    // The `%` arrives verbatim (NPD turned it into `%!o(MISSING)`).
    assert_eq!(
        warn["message"],
        format!("Node condition InodesPressure is now: True, reason: NodeHasInodesPressure, message: \"{msg}\"")
    );
    assert_eq!(warn["source"]["component"], "inodes-custom-plugin-monitor");
    assert_eq!(warn["involvedObject"]["uid"], "uid-n1");
    let transition = c["lastTransitionTime"].clone();
    empty(fs.path(), 95);
    let c = wait_for(
        "InodesPressure False",
        Duration::from_secs(5),
        &agent,
        || {
            api.condition("n1", "InodesPressure")
                .filter(|c| c["status"] == "False")
        },
    );
    assert_eq!(c["reason"], "NodeHasNoInodesPressure");
    assert!(c["lastTransitionTime"].as_str() >= transition.as_str());
    let normal = wait_for("Normal event", Duration::from_secs(5), &agent, || {
        events_with(&api, "NodeHasNoInodesPressure")
            .into_iter()
            .next()
    });
    assert_eq!(normal["type"], "Normal");
    assert_eq!(events_with(&api, "NodeHasInodesPressure").len(), 1);
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn api_outage_does_not_crash_and_state_converges() {
    if !require(is_root(), "root (to mount a tmpfs)") {
        return;
    }
    let api = FakeApi::start();
    kubelet_node(&api);
    let fs = Tmpfs::with_inodes(100);
    let mut agent = Agent::start(
        &api,
        fs.path(),
        &["--probes", "inodes", "--inodes-interval", "200ms"],
    );
    wait_for("first sync", Duration::from_secs(10), &agent, || {
        api.condition("n1", "InodesPressure")
    });
    // Trouble: 500s, then a burst of 503/429, a hang, and a restart; the problem starts
    // during the outage. Each phase lasts until the agent has met it.
    let long = Duration::from_secs(600);
    api.fail_for(long, 500);
    fill(fs.path(), 95);
    let seen = |status: u16, n: usize, what: &str| {
        wait_for(what, Duration::from_secs(60), &agent, || {
            (api.answered(status) >= n).then_some(())
        })
    };
    seen(500, 3, "writes retried through the 500s");
    api.fail_next(2, 503);
    api.fail_next(2, 429);
    seen(429, 2, "the 503/429 burst");
    api.set_hang(true);
    wait_for("a request held", Duration::from_secs(30), &agent, || {
        (api.held() > 0).then_some(())
    });
    api.fail_for(Duration::ZERO, 500);
    api.set_hang(false);
    api.restart(Duration::from_secs(1));
    assert!(agent.running(), "agent died:\n{}", agent.logs());
    let back = Instant::now();
    wait_for("convergence", Duration::from_secs(10), &agent, || {
        api.condition("n1", "InodesPressure")
            .filter(|c| c["status"] == "True")
    });
    wait_for(
        "event from the outage",
        Duration::from_secs(10),
        &agent,
        || {
            events_with(&api, "NodeHasInodesPressure")
                .into_iter()
                .next()
        },
    );
    eprintln!("converged {:?} after the API came back", back.elapsed());
    assert!(agent.running());
    assert_eq!(events_with(&api, "NodeHasInodesPressure").len(), 1);
    assert!(api.requests().iter().any(|r| r.status == 500));
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn restart_keeps_transition_times_and_sends_no_duplicate_events() {
    if !require(is_root(), "root (to mount a tmpfs)") {
        return;
    }
    let api = FakeApi::start();
    kubelet_node(&api);
    let fs = Tmpfs::with_inodes(100);
    fill(fs.path(), 95);
    let args = ["--probes", "inodes", "--inodes-interval", "200ms"];
    let mut first = Agent::start(&api, fs.path(), &args);
    let c1 = wait_for("True", Duration::from_secs(10), &first, || {
        api.condition("n1", "InodesPressure")
            .filter(|c| c["status"] == "True")
    });
    wait_for("event", Duration::from_secs(5), &first, || {
        events_with(&api, "NodeHasInodesPressure")
            .into_iter()
            .next()
    });
    assert_eq!(first.terminate().0, Some(0));
    let events_before = api.events(None).len();
    // Make sure a reset would show in the second-precision timestamp.
    std::thread::sleep(Duration::from_millis(1100));
    let patches_before = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/status"))
        .count();
    let mut second = Agent::start(&api, fs.path(), &args);
    wait_for(
        "second agent's first write",
        Duration::from_secs(10),
        &second,
        || {
            (api.requests()
                .iter()
                .filter(|r| r.path.ends_with("/status") && r.status == 200)
                .count()
                > patches_before)
                .then_some(())
        },
    );
    // Several probe runs later: nothing new.
    let runs = "nodeprobe_probe_runs_total{probe=\"inodes\",status=\"problem\"}";
    wait_for(
        "several probe runs",
        Duration::from_secs(10),
        &second,
        || second.metric(runs).filter(|n| *n >= 5.0),
    );
    let c2 = api.condition("n1", "InodesPressure").unwrap();
    assert_eq!(c2["status"], "True");
    assert_eq!(c2["lastTransitionTime"], c1["lastTransitionTime"]);
    assert_eq!(c2["message"], c1["message"]);
    assert_eq!(
        api.events(None).len(),
        events_before,
        "{:#?}",
        api.events(None)
    );
    assert_eq!(second.terminate().0, Some(0));
}

#[test]
fn runs_without_an_api_server_when_the_exporter_is_off() {
    let api = FakeApi::start();
    let mut agent = Agent::start(
        &api,
        Path::new("/"),
        &["--probes", "inodes", "--enable-k8s-exporter=false"],
    );
    let (code, _) = wait_for("readyz", Duration::from_secs(5), &agent, || {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", agent.status_port).parse().ok()?;
        std::net::TcpStream::connect(addr).ok()?;
        Some(agent.get(agent.status_port, "/readyz")).filter(|(c, _)| *c == 200)
    });
    assert_eq!(code, 200);
    assert!(api.requests().is_empty());
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn stale_owned_conditions_are_removed_on_request_and_heartbeats_refresh() {
    let api = FakeApi::start();
    kubelet_node(&api);
    // A condition type nodeprobe owns (pid-pressure probe) that this run does not check.
    let mut node = api.node("n1").unwrap();
    node["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "PidPressure", "status": "False", "reason": "NodeHasSufficientPID"}));
    api.add_node("n1", "uid-n1", node["status"]["conditions"].clone());
    // Off by default: the type stays.
    let mut agent = Agent::start(&api, Path::new("/"), &["--probes", "inodes"]);
    wait_for("sync", Duration::from_secs(10), &agent, || {
        api.condition("n1", "InodesPressure")
    });
    assert!(api.condition("n1", "PidPressure").is_some());
    assert_eq!(agent.terminate().0, Some(0));
    let mut agent = Agent::start(
        &api,
        Path::new("/"),
        &[
            "--probes",
            "inodes",
            "--remove-stale-conditions",
            "--k8s-exporter-heartbeat-period",
            "1s",
        ],
    );
    wait_for("removal", Duration::from_secs(10), &agent, || {
        api.condition("n1", "PidPressure").is_none().then_some(())
    });
    assert!(api.condition("n1", "Ready").is_some());
    assert!(api.condition("n1", "MemoryPressure").is_some());
    let hb = api.condition("n1", "InodesPressure").unwrap()["lastHeartbeatTime"].clone();
    wait_for("heartbeat", Duration::from_secs(5), &agent, || {
        let c = api.condition("n1", "InodesPressure")?;
        (c["lastHeartbeatTime"] != hb).then_some(())
    });
    assert_eq!(agent.terminate().0, Some(0));
}

#[test]
fn sigterm_with_a_hung_api_server_exits_within_the_grace_period() {
    if !require(is_root(), "root (to mount a tmpfs)") {
        return;
    }
    let api = FakeApi::start();
    kubelet_node(&api);
    let fs = Tmpfs::with_inodes(100);
    let mut agent = Agent::start(
        &api,
        fs.path(),
        &[
            "--probes",
            "inodes",
            "--inodes-interval",
            "200ms",
            "--shutdown-grace",
            "2s",
        ],
    );
    wait_for("sync", Duration::from_secs(10), &agent, || {
        api.condition("n1", "InodesPressure")
    });
    // A change is pending while the API server hangs: the final write cannot land, and
    // the agent must still exit 0 within the grace period.
    api.set_hang(true);
    fill(fs.path(), 95);
    wait_for(
        "the change's write held",
        Duration::from_secs(10),
        &agent,
        || (api.held() > 0).then_some(()),
    );
    let (code, took) = agent.terminate();
    api.set_hang(false);
    assert_eq!(code, Some(0), "{}", agent.logs());
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
}
