//! Private container runtime instances for tests that change a runtime's state (stop it,
//! add a CNI config): each lives in its own unique directory under the temp dir, is started
//! with `env/containerd-start.sh` / `env/dockerd-start.sh` and stopped, with everything it
//! made, by the matching stop script, explicitly or on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{is_root, require, unique};

/// An environment script of this crate (`integration/env/<name>`).
pub fn env_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("env").join(name)
}

/// Whether `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(prog).is_file()))
}

/// Run a start script; returns the socket path it prints.
fn start(script: &str, args: &[&Path]) -> Result<PathBuf, String> {
    let o = Command::new("bash")
        .arg(env_script(script))
        .args(args)
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{script} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let sock = out.lines().last().unwrap_or("").trim();
    if sock.is_empty() {
        return Err(format!("{script} printed no socket path"));
    }
    Ok(PathBuf::from(sock))
}

fn stop_script(script: &str, dir: &Path) {
    let _ = Command::new("bash")
        .arg(env_script(script))
        .arg(dir)
        .status();
}

fn fresh_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique(tag))
}

/// A private containerd (CRI plugin on, CNI conf dir `cni_conf()`), stopped on drop.
pub struct PrivateContainerd {
    dir: PathBuf,
    sock: PathBuf,
    running: bool,
}

impl PrivateContainerd {
    /// Whether this machine can run one (root and the containerd binary); skips or, in
    /// CI, fails through [`require`].
    pub fn available() -> bool {
        require(
            is_root() && have("containerd") && have("ctr"),
            "root and containerd/ctr installed (private containerd)",
        )
    }

    /// Start one; panics with the script's log if it does not come up.
    pub fn start() -> Self {
        let dir = fresh_dir("ctrd");
        match start("containerd-start.sh", &[&dir]) {
            Ok(sock) => PrivateContainerd {
                dir,
                sock,
                running: true,
            },
            Err(e) => {
                stop_script("containerd-stop.sh", &dir);
                panic!("{e}")
            }
        }
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// The CNI config directory this containerd watches.
    pub fn cni_conf(&self) -> PathBuf {
        self.dir.join("cni-conf")
    }

    /// Stop it now (TERM, shims, mounts) and remove its directory.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            stop_script("containerd-stop.sh", &self.dir);
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private dockerd (no bridge, no iptables), stopped on drop.
pub struct PrivateDockerd {
    dir: PathBuf,
    sock: PathBuf,
    running: bool,
}

impl PrivateDockerd {
    /// Whether this machine can run one (root and dockerd, curl for the scripts).
    pub fn available() -> bool {
        require(
            is_root() && have("dockerd") && have("curl"),
            "root and dockerd/curl installed (private dockerd)",
        )
    }

    /// Start one, sharing `containerd` when given (else dockerd runs its own).
    pub fn start(containerd: Option<&Path>) -> Self {
        let dir = fresh_dir("dockerd");
        let mut args: Vec<&Path> = vec![&dir];
        if let Some(c) = containerd {
            args.push(c);
        }
        match start("dockerd-start.sh", &args) {
            Ok(sock) => PrivateDockerd {
                dir,
                sock,
                running: true,
            },
            Err(e) => {
                stop_script("dockerd-stop.sh", &dir);
                panic!("{e}")
            }
        }
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// Stop it now (containers, mounts, cgroups) and remove its directory.
    pub fn stop(&mut self) {
        if self.running {
            self.running = false;
            stop_script("dockerd-stop.sh", &self.dir);
        }
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
    }
}
