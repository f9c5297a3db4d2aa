//! Test harness for black-box tests of the built `nodeprobe` binary against real host
//! components. Every helper cleans up after itself (Drop guards) and uses unique names.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

pub mod agent;
pub mod eventer;
pub mod fakeapi;
pub mod journal;
pub mod kmsg;
pub mod kube;
pub mod mysql;
pub mod oci;
pub mod oom;
pub mod procstat;
pub mod prometheus;
pub mod receivers;
pub mod runtimes;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Path of the built `nodeprobe` binary: `$NODEPROBE_BIN`, else `target/<profile>/nodeprobe`
/// of this workspace (the test command builds it first).
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("NODEPROBE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("nodeprobe");
        if p.exists() {
            return p;
        }
    }
    panic!(
        "nodeprobe binary not found under {}: run `cargo build` first or set NODEPROBE_BIN",
        target.display()
    );
}

/// Whether this run must exercise everything (CI): missing prerequisites then fail the test
/// instead of skipping it.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skip (or, in CI, fail) when a prerequisite is missing. Returns true to go on.
pub fn require(cond: bool, what: &str) -> bool {
    if cond {
        return true;
    }
    if strict() {
        panic!("prerequisite missing in CI: {what}");
    }
    eprintln!("SKIPPED: {what}");
    false
}

pub fn is_root() -> bool {
    // SAFETY-free: geteuid via std is not exposed; read /proc/self/status would be a literal
    // proc path in the harness, so ask libc.
    #[allow(unsafe_code)]
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    uid == 0
}

/// A name unique to this process and call, prefixed `nodeprobe-it-` so leftovers are
/// recognisable.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "nodeprobe-it-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The result of one `nodeprobe` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// The parsed `--output json` object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The result line for one condition type.
    pub fn result(&self, condition: &str) -> serde_json::Value {
        let v = self.json();
        v["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["condition"] == condition).cloned())
            .unwrap_or_else(|| panic!("no result for {condition} in {v:#}"))
    }
}

/// Run the binary with `args` and a clean probe environment.
pub fn nodeprobe(args: &[&str]) -> Run {
    nodeprobe_env(args, &[])
}

/// Run the binary with `args` and extra environment variables.
pub fn nodeprobe_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("NODEPROBE_") && k != "NODEPROBE_BIN" {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    Run::from_output(cmd.output().expect("run nodeprobe"))
}

/// Run any command, panicking with its output if it fails.
pub fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Call `f` every `every` until it yields a value; panics naming `what` and `context()` after
/// `timeout`.
pub fn poll_every<T>(
    every: std::time::Duration,
    what: &str,
    timeout: std::time::Duration,
    mut context: impl FnMut() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(every);
    }
}

/// A tmpfs with a fixed number of inodes, unmounted and removed on drop.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
    mounted: bool,
}

impl Tmpfs {
    /// Mount a tmpfs with `nr_inodes` inodes on a fresh temp dir (root only).
    pub fn with_inodes(nr_inodes: u32) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nodeprobe-it-tmpfs-")
            .tempdir()
            .expect("tempdir");
        let name = unique("tmpfs");
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size=4m,nr_inodes={nr_inodes}"),
                &name,
                dir.path().to_str().unwrap(),
            ],
        );
        Tmpfs { dir, mounted: true }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// A small ext4 file system on a loop device, mounted on `dir` (which must exist and be
/// empty), that can be frozen with `fsfreeze`: every write to it then hangs until thawed, as
/// on a node whose disk stopped answering. Thawed, unmounted and its image removed on drop.
pub struct FreezableExt4 {
    mnt: PathBuf,
    /// Removed (after the unmount in `drop`) when this goes.
    _image: tempfile::NamedTempFile,
    frozen: bool,
}

impl FreezableExt4 {
    /// Whether the tools are there (skips locally, fails in CI).
    pub fn available() -> bool {
        let has = |c: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {c}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        require(
            is_root() && has("mkfs.ext4") && has("fsfreeze"),
            "root, mkfs.ext4 and fsfreeze",
        )
    }

    pub fn mount(mnt: &Path) -> Self {
        let image = tempfile::Builder::new()
            .prefix("nodeprobe-it-ext4-")
            .tempfile()
            .expect("image file");
        image.as_file().set_len(32 << 20).expect("size image");
        let img = image.path().to_str().unwrap();
        sh("mkfs.ext4", &["-q", "-F", img]);
        sh("mount", &["-o", "loop", img, mnt.to_str().unwrap()]);
        FreezableExt4 {
            mnt: mnt.to_path_buf(),
            _image: image,
            frozen: false,
        }
    }

    pub fn freeze(&mut self) {
        sh("fsfreeze", &["-f", self.mnt.to_str().unwrap()]);
        self.frozen = true;
    }

    pub fn thaw(&mut self) {
        if self.frozen {
            sh("fsfreeze", &["-u", self.mnt.to_str().unwrap()]);
            self.frozen = false;
        }
    }
}

impl Drop for FreezableExt4 {
    fn drop(&mut self) {
        if self.frozen {
            let _ = Command::new("fsfreeze").arg("-u").arg(&self.mnt).status();
        }
        // the exact mount point; the loop device goes with it (autoclear)
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}
