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

    /// Like [`HostPaths::path`], but following symbolic links the way the host would:
    /// an absolute link target (`/var/run -> /run`) is taken relative to the root, not to
    /// this process's `/`. Used for sockets, whose host paths often pass through such links.
    /// Gives up after 40 links (a loop) and returns the path reached so far.
    pub fn resolve(&self, host_path: impl AsRef<Path>) -> PathBuf {
        use std::path::Component;
        let mut pending: Vec<std::ffi::OsString> = host_path
            .as_ref()
            .components()
            .rev()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        let mut rel = PathBuf::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                rel.pop();
                continue;
            }
            let candidate = rel.join(&part);
            match std::fs::read_link(self.path(&candidate)) {
                Ok(target) if hops < 40 => {
                    hops += 1;
                    if target.is_absolute() {
                        rel = PathBuf::new();
                    }
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(n) => pending.push(n.to_os_string()),
                            Component::ParentDir => pending.push("..".into()),
                            _ => {}
                        }
                    }
                }
                _ => rel = candidate,
            }
        }
        self.path(rel)
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

    #[test]
    fn resolve_keeps_absolute_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let h = HostPaths::new(dir.path());
        std::fs::create_dir_all(dir.path().join("run/docker")).unwrap();
        std::fs::create_dir_all(dir.path().join("var")).unwrap();
        std::os::unix::fs::symlink("/run", dir.path().join("var/run")).unwrap();
        std::os::unix::fs::symlink("docker/real.sock", dir.path().join("run/d.sock")).unwrap();
        assert_eq!(
            h.resolve("/var/run/docker.sock"),
            dir.path().join("run/docker.sock")
        );
        assert_eq!(
            h.resolve("/var/run/d.sock"),
            dir.path().join("run/docker/real.sock")
        );
        // a link loop ends instead of spinning
        std::os::unix::fs::symlink("/loop", dir.path().join("loop")).unwrap();
        let _ = h.resolve("/loop/x");
        // a link climbing above the root stays at the root
        std::os::unix::fs::symlink("../../../etc", dir.path().join("up")).unwrap();
        assert_eq!(h.resolve("/up/passwd"), dir.path().join("etc/passwd"));
    }
}
