//! The users' NPD DaemonSet command, unchanged, runs nodeprobe (issue 12, item 1).
//!
//! The command is the seed DaemonSet's container command, verbatim ([`USERS_COMMAND`]), with
//! the users' unmodified ConfigMap directory (`fixtures/npd-config/`, laid out as the volume
//! mounts it at `/config`). The only change: the `/config/` prefix of each path becomes the
//! fixture directory's path, because the tests do not mount anything at `/config` on a
//! shared machine. What the DaemonSet gives through the environment is given through the
//! environment here: `NODE_NAME`, and for a process outside a Pod NPD's
//! `--apiserver-override` (`NODEPROBE_APISERVER_OVERRIDE`, `auth=` the kubeconfig of
//! `deploy/base`'s ServiceAccount), a private `NODEPROBE_STATE_DIR` and free
//! `NODEPROBE_PORT` / `NODEPROBE_PROMETHEUS_PORT`.
//!
//! Against the real kube-apiserver (`env/kube-start.sh`): the Node gets exactly the condition
//! types and reasons the native defaults give on this machine (`nodeprobe --oneshot` without
//! any NPD flag), plus the users' log conditions; an event carries the plugin file's source.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nodeprobe_integration::agent::{free_port, sample, scrape};
use nodeprobe_integration::kube::{poll, Cluster, TestNode};
use nodeprobe_integration::{binary, nodeprobe_env, unique, Run};
use serde_json::Value;

/// The seed DaemonSet's `command:` (`../shared/seed/000_d369bc71e0ec583f.txt`), verbatim.
const USERS_COMMAND: &[&str] = &[
    "/node-problem-detector",
    "--logtostderr",
    "--v=3",
    "--system-log-monitors=/config/kernel-monitor.json,/config/docker-monitor.json",
    "--custom-plugin-monitors=/config/ntp-problem-monitor.json",
    "--custom-plugin-monitors=/config/network-problem-monitor.json",
    "--custom-plugin-monitors=/config/inodes-problem-monitor.json",
    "--custom-plugin-monitors=/config/pid-pressure-problem-monitor.json",
    "--custom-plugin-monitors=/config/docker-offline-monitor.json",
    "--custom-plugin-monitors=/config/instance_expired_checker.json",
    "--custom-plugin-monitors=/config/systemd-check-monitor.json",
];

/// The users' `/config` directory.
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npd-config")
}

/// The users' arguments with `/config/` replaced by `dir` (nothing else changes).
fn users_args(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    USERS_COMMAND[1..]
        .iter()
        .map(|a| a.replace("/config/", &prefix))
        .collect()
}

/// Condition type → reason of a `--output json` run: the probes' applicable results (the
/// log conditions come from the rule files, the users' or the built-in ones).
fn reasons(run: &Run) -> BTreeMap<String, String> {
    assert!(
        [0, 1, 2].contains(&run.code),
        "exit {}\n{}",
        run.code,
        run.stderr
    );
    run.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| probes::registry::PROBES.contains(&r["probe"].as_str().unwrap_or("")))
        .map(|r| {
            (
                r["condition"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The agent process, killed if the test fails before stopping it.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Problems on any machine, so that events (and their sources) show, through the probes'
/// environment (the users' command stays as it is), for the native run and the users' run
/// alike: any inode and PID use is over 0.001 %, a docker socket that does not exist is
/// offline, and a name asked of a nameserver that is not there does not resolve (a closed
/// loopback port).
fn forced() -> Vec<(String, String)> {
    let dns = format!("127.0.0.1:{}", free_port());
    [
        ("NODEPROBE_INODES_THRESHOLD", "0.001"),
        ("NODEPROBE_PID_PRESSURE_THRESHOLD", "0.001"),
        (
            "NODEPROBE_DOCKER_SOCKET",
            "/nonexistent/nodeprobe-it/docker.sock",
        ),
        ("NODEPROBE_NETWORK_DNS_NAME", "nodeprobe-it.invalid"),
        ("NODEPROBE_NETWORK_DNS_SERVER", dns.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The problems [`forced`] gives: (condition type, reason, event source).
const FORCED_PROBLEMS: &[(&str, &str, &str)] = &[
    (
        "InodesPressure",
        "NodeHasInodesPressure",
        "inodes-custom-plugin-monitor",
    ),
    (
        "PidPressure",
        "RunningOutOfPID",
        "pid-pressure-problem-custom-plugin-monitor",
    ),
    (
        "RuntimeOffline",
        "RuntimeDaemonOffline",
        "docker-offline-custom-plugin-monitor",
    ),
    (
        "NetworkProblem",
        "DNSResolutionFailed",
        "network-problem-custom-plugin-monitor",
    ),
];

fn run_forced(args: &[&str], env: &[(String, String)]) -> Run {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    nodeprobe_env(args, &env)
}

#[test]
fn users_command_with_oneshot_gives_the_native_conditions_and_reasons() {
    let args = users_args(&config_dir());
    let mut oneshot: Vec<&str> = args.iter().map(String::as_str).collect();
    oneshot.extend(["--oneshot", "--output", "json"]);
    let env = forced();
    let users = run_forced(&oneshot, &env);
    let native = run_forced(&["--oneshot", "--output", "json"], &env);
    assert_eq!(reasons(&users), reasons(&native), "{}", users.stderr);
    for (t, reason, _) in FORCED_PROBLEMS {
        assert_eq!(
            reasons(&users).get(*t).map(String::as_str),
            Some(*reason),
            "{}",
            users.stdout
        );
    }
    // Not applicable ones are the same too.
    let n_a = |run: &Run| -> Vec<Value> {
        run.json()["not_applicable"]
            .as_array()
            .expect("not_applicable")
            .iter()
            .filter(|r| probes::registry::PROBES.contains(&r["probe"].as_str().unwrap_or("")))
            .cloned()
            .collect()
    };
    assert_eq!(n_a(&users), n_a(&native));
    // --v=3 is debug logging; nothing is refused or unsupported.
    let refused: Vec<&str> = users
        .stderr
        .lines()
        .filter(|l| {
            l.contains(" WARN ")
                && [
                    "not supported",
                    "ignored",
                    "skipping",
                    "not run",
                    "custom-plugin",
                ]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(refused.is_empty(), "{}", users.stderr);
    assert!(
        users
            .stderr
            .contains("custom-plugin file mapped to a native probe"),
        "{}",
        users.stderr
    );
}

#[test]
fn a_plugin_for_an_unknown_script_stops_startup_unless_skipped() {
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-npd-")
        .tempdir()
        .unwrap();
    let gpu = tmp.path().join("gpu-monitor.json");
    std::fs::write(
        &gpu,
        r#"{"plugin":"custom","pluginConfig":{"invoke_interval":"60s","timeout":"30s"},
            "source":"gpu-custom-plugin-monitor",
            "conditions":[{"type":"GPUProblem","reason":"NodeHasNoGPUProblem","message":"ok"}],
            "rules":[{"type":"permanent","condition":"GPUProblem","reason":"NodeHasGPUProblem",
                      "path":"/config/plugin/check_gpu.sh"}]}"#,
    )
    .unwrap();
    let mut args = users_args(&config_dir());
    args.push(format!("--custom-plugin-monitors={}", gpu.display()));
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.extend(["--oneshot", "--output", "json"]);
    let refused = nodeprobe_env(&a, &[]);
    assert_eq!(refused.code, 64, "{}", refused.stderr);
    for want in [
        gpu.display().to_string().as_str(),
        "\"check_gpu.sh\"",
        "ntp (check_ntp.sh; NTPProblem)",
        "inodes (check_inodes.sh; InodesPressure)",
        "--skip-unknown-plugins",
    ] {
        assert!(refused.stderr.contains(want), "{want}: {}", refused.stderr);
    }
    assert!(refused.stdout.is_empty(), "nothing ran: {}", refused.stdout);

    let skipped = nodeprobe_env(&a, &[("NODEPROBE_SKIP_UNKNOWN_PLUGINS", "true")]);
    assert!([0, 1, 2].contains(&skipped.code), "{}", skipped.stderr);
    assert!(
        skipped.stderr.contains("skipping custom-plugin file")
            && skipped.stderr.contains("check_gpu.sh"),
        "{}",
        skipped.stderr
    );
    assert!(!reasons(&skipped).contains_key("GPUProblem"));

    // `rules check` says what each of the users' files is.
    let files: Vec<String> = std::fs::read_dir(config_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.display().to_string())
        .collect();
    let mut check = vec!["rules", "check"];
    check.extend(files.iter().map(String::as_str));
    let run = nodeprobe_env(&check, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for (file, probe) in [
        ("ntp-problem-monitor.json", "ntp"),
        ("network-problem-monitor.json", "network"),
        ("inodes-problem-monitor.json", "inodes"),
        ("pid-pressure-problem-monitor.json", "pid-pressure"),
        ("docker-offline-monitor.json", "runtime"),
        ("instance_expired_checker.json", "spot"),
        ("systemd-check-monitor.json", "systemd"),
    ] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file} missing:\n{}", run.stdout));
        assert!(
            line.starts_with("OK ") && line.contains(&format!("-> native probe {probe}:")),
            "{line}"
        );
    }
    let run = nodeprobe_env(&["rules", "check", &gpu.display().to_string()], &[]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("\"check_gpu.sh\""), "{}", run.stderr);
}

#[test]
fn users_daemonset_command_against_the_real_api_server() {
    let Some(cluster) = Cluster::from_env() else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("nodeprobe-it-npd-")
        .tempdir()
        .unwrap();
    cluster.apply_base_rbac();
    let sa = cluster.service_account_kubeconfig("kube-system", "nodeprobe", tmp.path());
    let node = TestNode::create(&cluster, &unique("npd"));

    // The native defaults on this machine, at this moment.
    let env = forced();
    let native = reasons(&run_forced(&["--oneshot", "--output", "json"], &env));

    let (port, metrics_port) = (free_port(), free_port());
    let stderr = tmp.path().join("stderr");
    let mut cmd = Command::new(binary());
    cmd.args(users_args(&config_dir()));
    for (k, _) in std::env::vars() {
        if k.starts_with("NODEPROBE_") || k == "KUBECONFIG" || k == "NODE_NAME" {
            cmd.env_remove(k);
        }
    }
    // Outside a Pod there is no in-cluster account: NPD's --apiserver-override (as its env
    // twin) names the ServiceAccount's kubeconfig, as NPD users do off-cluster.
    let over = format!(
        "{}?inClusterConfig=false&auth={}",
        cluster.server,
        sa.display()
    );
    cmd.env("NODE_NAME", &node.name)
        .env("NODEPROBE_APISERVER_OVERRIDE", over)
        .env("NODEPROBE_STATE_DIR", tmp.path().join("state"))
        .env("NODEPROBE_PORT", port.to_string())
        .env("NODEPROBE_PROMETHEUS_PORT", metrics_port.to_string())
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = Guard(cmd.spawn().expect("start nodeprobe"));
    let logs = || std::fs::read_to_string(&stderr).unwrap_or_default();

    // Every native condition with the native reason, and the users' log conditions.
    let conditions = poll(
        "the Node's conditions",
        Duration::from_secs(60),
        || format!("{:#?}\nagent log:\n{}", node.conditions(), logs()),
        || {
            let got: BTreeMap<String, String> = node
                .conditions()
                .iter()
                .map(|c| {
                    (
                        c["type"].as_str().unwrap_or("").to_string(),
                        c["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            let all = native.keys().all(|t| got.contains_key(t))
                && got.contains_key("KernelDeadlock")
                && got.contains_key("ReadonlyFilesystem");
            all.then_some(got)
        },
    );
    for (t, reason) in &native {
        assert_eq!(conditions.get(t), Some(reason), "{t}: {conditions:#?}");
    }
    // The log conditions are the users' kernel-monitor.json's (lookback 5m over the real
    // kernel log, so another test's lines may have set KernelDeadlock).
    assert!(
        ["KernelHasNoDeadlock", "AUFSUmountHung", "DockerHung"]
            .contains(&conditions["KernelDeadlock"].as_str()),
        "{conditions:#?}"
    );
    assert_eq!(conditions["ReadonlyFilesystem"], "FilesystemIsReadOnly");
    // Nothing but nodeprobe's and the kubelet's conditions.
    let kubelet = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];
    for t in conditions.keys() {
        assert!(
            native.contains_key(t)
                || kubelet.contains(&t.as_str())
                || ["KernelDeadlock", "ReadonlyFilesystem"].contains(&t.as_str()),
            "unexpected condition {t}"
        );
    }

    // The events of the forced problems carry the plugin files' sources, and the runtime's
    // temporary rule (RuntimeDaemonOffline) is sent once as the problem event.
    for (t, reason, source) in FORCED_PROBLEMS {
        let events: Vec<Value> = poll(
            &format!("the {t} event"),
            Duration::from_secs(30),
            || format!("{:#?}", cluster.events_about("default", &node.name)),
            || {
                let e: Vec<Value> = cluster
                    .events_about("default", &node.name)
                    .into_iter()
                    .filter(|e| e["reason"] == *reason)
                    .collect();
                (!e.is_empty()).then_some(e)
            },
        );
        for e in &events {
            assert_eq!(e["source"]["component"], *source, "{e:#}");
            assert_eq!(e["type"], "Warning", "{e:#}");
            assert_eq!(e["involvedObject"]["uid"], node.uid.as_str());
        }
        if *t == "RuntimeOffline" {
            assert_eq!(events.len(), 2, "transition and problem event: {events:#?}");
        }
    }
    // NPD's metric, with the files' condition types and reasons.
    let m = scrape(metrics_port);
    for (t, reason, _) in FORCED_PROBLEMS {
        assert_eq!(
            sample(
                &m,
                &format!("problem_gauge{{reason=\"{reason}\",type=\"{t}\"}}")
            ),
            Some(1.0),
            "{m}"
        );
    }
    // No error but the users' docker-monitor's missing journal (the journal of this machine
    // may be volatile): nodeprobe accepted everything it was given.
    let log = logs();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") && !l.contains("cannot read the journal"))
        .collect();
    assert!(errors.is_empty(), "{log}");
    // --v=3: nodeprobe's info and debug (the default would be warn), not the libraries'.
    assert!(!log.contains(" DEBUG hyper"), "{log}");
    assert!(
        log.contains("custom-plugin file mapped to a native probe"),
        "{log}"
    );

    // SIGTERM, as the kubelet stops the container: a clean exit.
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -TERM failed");
    let status = poll(
        "the agent to exit on SIGTERM",
        Duration::from_secs(15),
        logs,
        || child.0.try_wait().expect("wait"),
    );
    assert_eq!(status.code(), Some(0), "{}", logs());
}
