//! A private, real systemd (`systemd --user` run as root on its own bus, in its own cgroup and
//! mount namespace; see `env/systemd-start.sh`) that a test may change freely: write unit
//! files, reload, start and stop units, degrade it. Stopped and cleaned up on drop.
//!
//! ```text
//! let sd = PrivateSystemd::start();
//! sd.write_unit("chronyd.service", &PrivateSystemd::sleeper("fake chronyd"));
//! sd.reload();
//! sd.start_unit("chronyd.service");
//! sd.wait_active_state("chronyd.service", "active");
//! nodeprobe_env(&[...], &[("DBUS_SYSTEM_BUS_ADDRESS", sd.address())]);
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{is_root, sh, unique};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";

/// The directory of the environment scripts (`integration/env`).
pub fn env_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("env")
}

fn found_on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// One private systemd instance.
pub struct PrivateSystemd {
    dir: PathBuf,
    cgroup: String,
    address: String,
}

impl PrivateSystemd {
    /// Whether this machine can run one: root, systemd, busctl and unshare.
    pub fn available() -> bool {
        is_root()
            && Path::new("/lib/systemd/systemd").exists()
            && found_on_path("busctl")
            && found_on_path("unshare")
    }

    /// Start an instance with a unique directory and cgroup; waits until its manager
    /// answers on the bus and has finished starting up.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(unique("sd"));
        let cgroup = unique("sd-cg");
        let script = env_dir().join("systemd-start.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .arg(&cgroup)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        // From here on the guard cleans up, even if start failed half-way.
        let mut sd = PrivateSystemd {
            dir,
            cgroup,
            address: String::new(),
        };
        assert!(
            out.status.success(),
            "systemd-start.sh failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sd.address = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            sd.address.starts_with("unix:path="),
            "unexpected bus address {:?}",
            sd.address
        );
        sd.wait_for(
            "the manager to finish starting",
            Duration::from_secs(20),
            |sd| matches!(sd.system_state().as_str(), "running" | "degraded"),
        );
        sd
    }

    /// The bus address (`unix:path=DIR/bus`), for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where unit files go (`DIR/systemd/user`, a user search path); call [`Self::reload`]
    /// after writing.
    pub fn unit_dir(&self) -> PathBuf {
        self.dir.join("systemd/user")
    }

    /// A service that runs until stopped.
    pub fn sleeper(description: &str) -> String {
        format!("[Unit]\nDescription={description}\n[Service]\nExecStart=/bin/sleep infinity\n")
    }

    /// A oneshot service that always fails.
    pub fn failing(description: &str) -> String {
        format!(
            "[Unit]\nDescription={description}\n[Service]\nType=oneshot\nExecStart=/bin/false\n"
        )
    }

    /// Write a unit file.
    pub fn write_unit(&self, name: &str, contents: &str) {
        std::fs::write(self.unit_dir().join(name), contents)
            .unwrap_or_else(|e| panic!("write unit {name}: {e}"));
    }

    /// `busctl --address=... ARGS`, panicking on failure; returns stdout.
    pub fn busctl(&self, args: &[&str]) -> String {
        let address = format!("--address={}", self.address);
        let mut all = vec![address.as_str()];
        all.extend_from_slice(args);
        sh("busctl", &all)
    }

    fn manager_call(&self, method: &str, sig_and_args: &[&str]) -> String {
        let mut args = vec!["call", DEST, MANAGER_PATH, MANAGER, method];
        args.extend_from_slice(sig_and_args);
        self.busctl(&args)
    }

    /// Manager `Reload` (picks up new unit files).
    pub fn reload(&self) {
        self.manager_call("Reload", &[]);
    }

    /// Manager `StartUnit(name, "replace")` (queues the job; see the `wait_*` helpers).
    pub fn start_unit(&self, name: &str) {
        self.manager_call("StartUnit", &["ss", name, "replace"]);
    }

    /// Manager `StopUnit(name, "replace")`.
    pub fn stop_unit(&self, name: &str) {
        self.manager_call("StopUnit", &["ss", name, "replace"]);
    }

    /// Manager `SystemState` (`running`, `degraded`, ...).
    pub fn system_state(&self) -> String {
        let out = self.busctl(&["get-property", DEST, MANAGER_PATH, MANAGER, "SystemState"]);
        parse_busctl_string(&out)
    }

    /// A unit's `ActiveState` (loads the unit if needed).
    pub fn active_state(&self, name: &str) -> String {
        let out = self.manager_call("LoadUnit", &["s", name]);
        let path = parse_busctl_string(&out);
        let out = self.busctl(&["get-property", DEST, &path, UNIT, "ActiveState"]);
        parse_busctl_string(&out)
    }

    /// Wait until `name`'s `ActiveState` is `state`.
    pub fn wait_active_state(&self, name: &str, state: &str) {
        self.wait_for(
            &format!("{name} to be {state}"),
            Duration::from_secs(20),
            |sd| sd.active_state(name) == state,
        );
    }

    /// Wait until `SystemState` is `state`.
    pub fn wait_system_state(&self, state: &str) {
        self.wait_for(
            &format!("SystemState {state}"),
            Duration::from_secs(20),
            |sd| sd.system_state() == state,
        );
    }

    /// Poll `cond` every 50 ms until it holds, panicking after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&Self) -> bool) {
        let started = Instant::now();
        while !cond(self) {
            assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?} waiting for {what}; systemd log:\n{}",
                std::fs::read_to_string(self.dir.join("systemd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The value of a busctl `s "text"` or `o "/path"` line.
fn parse_busctl_string(out: &str) -> String {
    let line = out.trim();
    match (line.find('"'), line.rfind('"')) {
        (Some(a), Some(b)) if b > a => line[a + 1..b].to_string(),
        _ => panic!("unexpected busctl output {line:?}"),
    }
}

impl Drop for PrivateSystemd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(env_dir().join("systemd-stop.sh"))
            .arg(&self.dir)
            .arg(&self.cgroup)
            .status();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn busctl_values_are_unquoted() {
        assert_eq!(super::parse_busctl_string("s \"running\"\n"), "running");
        assert_eq!(
            super::parse_busctl_string("o \"/org/freedesktop/systemd1/unit/a_2eservice\""),
            "/org/freedesktop/systemd1/unit/a_2eservice"
        );
    }
}
