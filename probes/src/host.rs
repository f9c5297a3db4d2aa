//! The one host root every probe reads through.
//!
//! In the DaemonSet the host's `/proc`, `/sys`, `/run`... are mounted under `/host`; on a
//! plain machine the root is `/`; in tests it is a fixture directory or a tmpfs.

use std::path::{Path, PathBuf};

/// Root of the host file system as this process sees it (`--host-root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths::new("/")
    }
}

impl HostPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostPaths { root: root.into() }
    }

    /// The root itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A host path (`/var/lib/kubelet`, `run/containerd/containerd.sock`) under the root.
    /// Leading slashes are ignored so that absolute host paths never escape the root.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let rel = host_path.as_ref();
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        if rel.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// The host's procfs.
    pub fn proc(&self) -> PathBuf {
        self.path("proc")
    }

    /// The host's sysfs.
    pub fn sys(&self) -> PathBuf {
        self.path("sys")
    }

    /// The host's `/dev`.
    pub fn dev(&self) -> PathBuf {
        self.path("dev")
    }

    /// The host's `/run`.
    pub fn run(&self) -> PathBuf {
        self.path("run")
    }

    /// Read a small text file (a sysctl, a sysfs attribute), trimmed.
    pub fn read_trimmed(path: &Path) -> std::io::Result<String> {
        Ok(std::fs::read_to_string(path)?.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let h = HostPaths::new("/host");
        assert_eq!(h.proc(), PathBuf::from("/host/proc"));
        assert_eq!(h.sys(), PathBuf::from("/host/sys"));
        assert_eq!(
            h.path("/var/lib/kubelet"),
            PathBuf::from("/host/var/lib/kubelet")
        );
        assert_eq!(h.path("/"), PathBuf::from("/host"));
        assert_eq!(h.path(""), PathBuf::from("/host"));
        let plain = HostPaths::default();
        assert_eq!(plain.path("/"), PathBuf::from("/"));
        assert_eq!(plain.run(), PathBuf::from("/run"));
    }
}
