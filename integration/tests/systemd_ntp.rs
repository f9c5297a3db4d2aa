//! The systemd and ntp probes through the built binary, against a private real systemd
//! (`systemd --user` on its own bus) that each test starts and changes, a bus address with no
//! socket behind it, and a socket that accepts and never answers.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

use nodeprobe_integration::systemd::PrivateSystemd;
use nodeprobe_integration::{binary, nodeprobe_env, require, Run};

const BUS_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";

fn oneshot(probes: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec![
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        probes,
    ];
    args.extend_from_slice(extra);
    nodeprobe_env(&args, env)
}

fn field(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Whether the kernel says the clock is synchronised (read-only adjtimex, as the probe
/// does). On these machines it never is; the expectations below follow what it says.
fn kernel_clock_synced() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `timex` is plain data for which all-zero bytes are valid; with `modes == 0`
    // adjtimex only reads the kernel state into the exclusively borrowed local.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        tx.modes = 0;
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    assert!(state >= 0, "adjtimex failed");
    state != 5 && status & (0x40 | 0x1000) == 0
}

fn private_systemd() -> Option<PrivateSystemd> {
    require(
        PrivateSystemd::available(),
        "root, /lib/systemd/systemd, busctl and unshare for a private systemd --user",
    )
    .then(PrivateSystemd::start)
}

#[test]
fn running_systemd_is_healthy_and_names_its_default_target() {
    let Some(sd) = private_systemd() else { return };
    let run = oneshot("systemd", &[], &[(BUS_ENV, sd.address())]);
    let r = run.result("SystemdCheck");
    assert_eq!(r["status"], "False", "{r:#}\n{}", run.stderr);
    assert_eq!(r["reason"], "NodeHasNoSystemdError");
    assert_eq!(r["message"], "node has no systemd error");
    assert_eq!(
        field(&r, "detail"),
        "systemd is running, default target default.target"
    );
    assert_eq!(run.code, 0);
}

#[test]
fn failed_unit_degrades_systemd_and_is_named_unless_ignored() {
    let Some(sd) = private_systemd() else { return };
    let unit = "nodeprobe-it-broken.service";
    sd.write_unit(unit, &PrivateSystemd::failing("always fails"));
    sd.reload();
    sd.start_unit(unit);
    sd.wait_system_state("degraded");

    let env = [(BUS_ENV, sd.address())];
    let run = oneshot("systemd", &[], &env);
    let r = run.result("SystemdCheck");
    assert_eq!(r["status"], "True", "{r:#}");
    assert_eq!(r["reason"], "NodeHasSystemdError");
    assert_eq!(
        field(&r, "message"),
        format!("systemd is degraded: 1 failed unit: {unit}")
    );
    assert_eq!(run.code, 1);

    // An ignore list that does not match changes nothing.
    let run = oneshot(
        "systemd",
        &["--systemd-ignore-units", "other.service"],
        &env,
    );
    assert_eq!(run.result("SystemdCheck")["status"], "True");

    // Ignored by exact name (flag) and by glob (env twin): healthy, and the detail says why.
    let run = oneshot("systemd", &["--systemd-ignore-units", unit], &env);
    let r = run.result("SystemdCheck");
    assert_eq!(r["status"], "False", "{r:#}");
    assert_eq!(
        field(&r, "detail"),
        format!("systemd is degraded, default target default.target; ignored failed units: {unit}")
    );
    let run = oneshot(
        "systemd",
        &[],
        &[
            (BUS_ENV, sd.address()),
            (
                "NODEPROBE_SYSTEMD_IGNORE_UNITS",
                "foo.service,nodeprobe-it-*",
            ),
        ],
    );
    assert_eq!(run.result("SystemdCheck")["status"], "False");
    assert_eq!(run.code, 0);
}

#[test]
fn ntp_needs_an_active_time_daemon_and_judges_sync_after_the_grace() {
    let Some(sd) = private_systemd() else { return };
    let env = [(BUS_ENV, sd.address())];
    let synced = kernel_clock_synced();

    // No time daemon unit at all: a problem unless the kernel says the clock is
    // synchronised (something else disciplines it), which then only notes the missing daemon.
    let no_daemon = |r: &serde_json::Value, units: &str| {
        if synced {
            assert_eq!(r["status"], "False", "{r:#}");
            let detail = field(r, "detail");
            assert!(
                detail.contains(&format!("; no time daemon active ({units}")),
                "{detail}"
            );
            assert!(detail.contains("disciplined by something else"), "{detail}");
        } else {
            assert_eq!(r["status"], "True", "{r:#}");
            assert_eq!(r["reason"], "NodeHasNTPProblem");
            let msg = field(r, "message");
            assert!(
                msg.starts_with(&format!("no time daemon active ({units}")),
                "{msg}"
            );
        }
    };
    let r = oneshot("ntp", &[], &env).result("NTPProblem");
    no_daemon(&r, "chronyd.service not found, chrony.service not found,");

    // chronyd.service active (just started): the daemon is found, and an unsynchronised
    // clock is not yet a problem within the default grace.
    sd.write_unit("chronyd.service", &PrivateSystemd::sleeper("fake chronyd"));
    sd.reload();
    sd.start_unit("chronyd.service");
    sd.wait_active_state("chronyd.service", "active");
    let run = oneshot("ntp", &[], &env);
    let r = run.result("NTPProblem");
    assert_eq!(r["status"], "False", "{r:#}");
    assert_eq!(r["message"], "node has no NTP problem");
    let detail = field(&r, "detail");
    assert!(detail.ends_with("active: chronyd.service"), "{detail}");
    if !synced {
        assert!(
            detail.starts_with("clock not synchronised yet, ")
                && detail.contains(" since chronyd.service became active, within the 10m0s grace (STA_UNSYNC, state TIME_ERROR"),
            "{detail}"
        );
    }

    // A tiny grace: the daemon has had longer than that, the clock is still unsynchronised.
    std::thread::sleep(Duration::from_millis(20));
    let r = oneshot("ntp", &["--ntp-grace", "10ms"], &env).result("NTPProblem");
    if synced {
        assert_eq!(r["status"], "False", "{r:#}");
    } else {
        assert_eq!(r["status"], "True", "{r:#}");
        let msg = field(&r, "message");
        assert!(
            msg.starts_with("clock not synchronised for ")
                && msg.contains(
                    " since chronyd.service became active, longer than the 10ms grace (STA_UNSYNC"
                )
                && msg.ends_with("; active: chronyd.service)"),
            "{msg}"
        );
    }

    // chronyd stopped: no time daemon active again, the unit is named as inactive.
    sd.stop_unit("chronyd.service");
    sd.wait_active_state("chronyd.service", "inactive");
    let run = oneshot("ntp", &[], &env);
    let r = run.result("NTPProblem");
    no_daemon(&r, "chronyd.service inactive, chrony.service not found,");
    assert_eq!(run.code, if synced { 0 } else { 1 });
}

#[test]
fn no_bus_is_unknown_naming_the_address_tried() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("unix:path={}/no-such-dir/bus", dir.path().display());
    let run = oneshot("systemd,ntp", &[], &[(BUS_ENV, &address)]);
    let r = run.result("SystemdCheck");
    assert_eq!(r["status"], "Unknown", "{r:#}");
    assert_eq!(
        field(&r, "message"),
        format!("cannot connect to the D-Bus system bus at {address}: No such file or directory (os error 2)")
    );
    let n = run.result("NTPProblem");
    let msg = field(&n, "message");
    if kernel_clock_synced() {
        assert_eq!(n["status"], "False", "{n:#}");
    } else {
        assert_eq!(n["status"], "Unknown", "{n:#}");
        assert!(
            msg.starts_with("clock not synchronised (STA_UNSYNC")
                && msg.contains(&format!("the time daemons cannot be checked: cannot connect to the D-Bus system bus at {address}")),
            "{msg}"
        );
        assert_eq!(run.code, 2);
    }

    // Without DBUS_SYSTEM_BUS_ADDRESS the host's socket under --host-root is tried.
    let mut cmd = Command::new(binary());
    cmd.args([
        "--oneshot",
        "--oneshot-logs=false",
        "--output",
        "json",
        "--probes",
        "systemd",
    ])
    .arg("--host-root")
    .arg(dir.path())
    .env_remove(BUS_ENV);
    for (k, _) in std::env::vars() {
        if k.starts_with("NODEPROBE_") && k != "NODEPROBE_BIN" {
            cmd.env_remove(k);
        }
    }
    let run = Run::from_output(cmd.output().expect("run nodeprobe"));
    let r = run.result("SystemdCheck");
    assert_eq!(r["status"], "Unknown", "{r:#}");
    let expected = format!(
        "cannot connect to the D-Bus system bus at unix:path={}/run/dbus/system_bus_socket: ",
        dir.path().display()
    );
    assert!(field(&r, "message").starts_with(&expected), "{r:#}");
}

#[test]
fn silent_bus_is_bounded_and_does_not_delay_other_probes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let listener = UnixListener::bind(&path).unwrap();
    // Accept every connection and hold it open without ever answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let address = format!("unix:path={}", path.display());
    let started = Instant::now();
    let run = oneshot(
        "systemd,ntp,inodes",
        &["--systemd-timeout", "1s", "--ntp-timeout", "1s"],
        &[(BUS_ENV, &address)],
    );
    let wall = started.elapsed();

    let sd = run.result("SystemdCheck");
    assert_eq!(sd["status"], "Unknown", "{sd:#}");
    assert_eq!(
        field(&sd, "message"),
        format!("no answer from the D-Bus system bus at {address} within 900ms (connecting)")
    );
    let sd_ms = sd["duration_ms"].as_u64().unwrap();
    assert!((850..3000).contains(&sd_ms), "systemd took {sd_ms} ms");

    let ntp = run.result("NTPProblem");
    assert!(
        field(&ntp, "message")
            .contains(&format!("no answer from the D-Bus system bus at {address}")),
        "{ntp:#}"
    );
    assert!(ntp["duration_ms"].as_u64().unwrap() < 3000, "{ntp:#}");

    let inodes = run.result("InodesPressure");
    assert_ne!(inodes["status"], "Unknown", "{inodes:#}");
    let inodes_ms = inodes["duration_ms"].as_u64().unwrap();
    assert!(
        inodes_ms < 900,
        "inodes took {inodes_ms} ms next to a hung bus"
    );
    assert!(wall < Duration::from_secs(6), "whole run took {wall:?}");
}
