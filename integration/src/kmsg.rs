//! Writing to the real kernel log from tests. The ring is global: every kmsg test of a test
//! binary holds [`kmsg_lock`], writes each line on a fresh fd ([`kmsg_write`]; the per-fd
//! ratelimit allows 10 lines per 5 s) with a unique marker, and matches only on that marker.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::agent::kubelet_node;
use crate::fakeapi::FakeApi;
use crate::{is_root, require, unique};

static KMSG: Mutex<()> = Mutex::new(());

/// Serialise the kmsg tests of this test binary.
pub fn kmsg_lock() -> MutexGuard<'static, ()> {
    KMSG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the test may write to `/dev/kmsg` (skips locally, fails in CI otherwise).
pub fn kmsg_ok() -> bool {
    require(
        is_root() && Path::new("/dev/kmsg").exists(),
        "root and a writable /dev/kmsg",
    )
}

/// Write one line to the kernel log on its own fd, as syslog level `level`.
pub fn kmsg_write(level: u8, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg for writing");
    f.write_all(format!("<{level}>{line}\n").as_bytes())
        .expect("write /dev/kmsg");
}

/// The shipped default kernel rules (`probes/rules/kernel-monitor.json`).
pub fn default_kernel_rules_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../probes/rules/kernel-monitor.json")
}

/// Log monitors only: every probe off.
pub const NO_PROBES: &[&str] = &[
    "--disable-probes",
    "inodes,pid-pressure,fd-pressure,psi,readonly-mounts,hung-tasks,systemd,ntp,runtime,kubelet,spot,network",
];

/// The default kernel rules with `lookback`, every pattern scoped to lines carrying `marker`
/// (`<marker>: .*(?:<default pattern>)`), written to `dir/kernel-monitor.json`: kernel lines
/// other tests or processes write can neither spend the agent's event budget nor set its
/// conditions.
pub fn scoped_rules(dir: &Path, marker: &str, lookback: &str) -> PathBuf {
    let mut v: serde_json::Value =
        serde_json::from_str(&default_kernel_rules(lookback)).expect("default rules are JSON");
    for r in v["rules"].as_array_mut().expect("rules") {
        let p = r["pattern"].as_str().unwrap_or_default().to_string();
        r["pattern"] = serde_json::Value::String(format!("{marker}: .*(?:{p})"));
    }
    let path = dir.join("kernel-monitor.json");
    std::fs::write(&path, v.to_string()).expect("write rule file");
    path
}

/// A TaskHung line for `task`, scoped to `marker`.
pub fn task_hung(marker: &str, task: &str) -> String {
    format!("{marker}: INFO: task {task}:123 blocked for more than 120 seconds.")
}

/// The default kernel rules as text, with `lookback` (`"5m"` in the file) replaced.
pub fn default_kernel_rules(lookback: &str) -> String {
    let text = std::fs::read_to_string(default_kernel_rules_path()).expect("read default rules");
    assert!(
        text.contains("\"lookback\": \"5m\""),
        "the default kernel rules changed their lookback"
    );
    text.replace(
        "\"lookback\": \"5m\"",
        &format!("\"lookback\": \"{lookback}\""),
    )
}

/// A cgroup (v1 devices controller) that denies `/dev/kmsg` (char 1:11), as a container
/// runtime's device allowlist does: opening the device fails with `EPERM` inside it, while
/// `syslog(2)` still reads the ring. Removed on drop (after every process in it is gone).
pub struct KmsgDeniedCgroup {
    dir: PathBuf,
}

impl KmsgDeniedCgroup {
    const ROOT: &'static str = "/sys/fs/cgroup/devices";

    /// Whether the machine has the cgroup v1 devices controller (skips locally, fails in CI).
    pub fn available() -> bool {
        require(
            is_root() && Path::new(Self::ROOT).join("devices.deny").exists(),
            "root and the cgroup v1 devices controller",
        )
    }

    pub fn create() -> Self {
        let dir = Path::new(Self::ROOT).join(crate::unique("kmsg-denied"));
        std::fs::create_dir(&dir).expect("create devices cgroup");
        std::fs::write(dir.join("devices.deny"), "c 1:11 rwm").expect("deny /dev/kmsg");
        KmsgDeniedCgroup { dir }
    }

    /// A wrapper for [`crate::agent::Agent::start_with_logs_via`]: join the cgroup, exec.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                self.dir.display()
            ),
            "sh".into(),
        ]
    }
}

impl Drop for KmsgDeniedCgroup {
    fn drop(&mut self) {
        // the agent was killed and reaped before; give the kernel a moment to empty it
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// What a test on the real kernel log starts from: the kmsg lock, a work dir, a unique
/// marker and the fake API server with a kubelet-style Node.
pub struct KmsgSetup {
    pub api: FakeApi,
    /// The test's marker (scope rules and lines with it).
    pub m: String,
    pub tmp: tempfile::TempDir,
    pub _kmsg: MutexGuard<'static, ()>,
}

/// `None` (skip locally, fail in CI) without a writable kmsg.
pub fn kmsg_setup(tag: &str) -> Option<KmsgSetup> {
    if !kmsg_ok() {
        return None;
    }
    let kmsg = kmsg_lock();
    let api = FakeApi::start();
    kubelet_node(&api);
    Some(KmsgSetup {
        api,
        m: unique(tag),
        tmp: tempfile::tempdir().expect("tempdir"),
        _kmsg: kmsg,
    })
}
