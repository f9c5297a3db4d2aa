//! A real memcg OOM kill in a kubelet-like cgroup v1 path
//! `kubepods/burstable/pod<uuid>/<64-hex container id>` that the test creates (unique
//! names; only the directories it created are removed, deepest first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::require;

const MEMORY: &str = "/sys/fs/cgroup/memory";

/// Whether a cgroup v1 memory controller and python3 are there (skips locally, fails in CI).
pub fn oom_ok() -> bool {
    require(
        Path::new(MEMORY).join("memory.limit_in_bytes").exists(),
        "cgroup v1 memory controller",
    ) && require(Path::new("/usr/bin/python3").exists(), "python3")
}

/// Directories created under a cgroup root, removed (deepest first) on drop.
pub struct CgroupDirs {
    created: Vec<PathBuf>,
}

impl CgroupDirs {
    /// Create each missing `root/rel` in order (parents first).
    pub fn create(root: &Path, rel: &[&str]) -> Self {
        let mut created = Vec::new();
        for r in rel {
            let p = root.join(r);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                created.push(p);
            }
        }
        CgroupDirs { created }
    }
}

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for p in self.created.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(p).is_ok() || !p.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A pod's container memcg with a memory limit.
pub struct PodCgroup {
    /// Pod UID (a UUID).
    pub uid: String,
    /// Container id (64 hex digits), the leaf directory's name.
    pub container_id: String,
    leaf: PathBuf,
    _dirs: CgroupDirs,
}

impl PodCgroup {
    /// Create `kubepods/burstable/pod<uid>/<cid>` with a limit of `limit_mib` MiB.
    pub fn create(limit_mib: u64) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let seed = format!(
            "{:08x}{:04x}{:016x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed) & 0xffff,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        );
        let hex: String = seed
            .chars()
            .chain("0123456789abcdef".chars().cycle())
            .take(32)
            .collect();
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        let cid: String = hex.chars().cycle().take(64).collect();
        PodCgroup::create_for(&uid, &cid, limit_mib)
    }

    /// Create `kubepods/burstable/pod<uid>/<cid>` for a given pod UID (e.g. of a real Pod
    /// object) and container id, with a limit of `limit_mib` MiB.
    pub fn create_for(uid: &str, cid: &str, limit_mib: u64) -> Self {
        let pod = format!("kubepods/burstable/pod{uid}");
        let rel = format!("{pod}/{cid}");
        let root = Path::new(MEMORY);
        let dirs = CgroupDirs::create(root, &["kubepods", "kubepods/burstable", &pod, &rel]);
        let leaf = root.join(&rel);
        std::fs::write(
            leaf.join("memory.limit_in_bytes"),
            (limit_mib << 20).to_string(),
        )
        .expect("set memory.limit_in_bytes");
        PodCgroup {
            uid: uid.to_string(),
            container_id: cid.to_string(),
            leaf,
            _dirs: dirs,
        }
    }

    /// The memcg path the kernel prints (`task_memcg=`).
    pub fn memcg(&self) -> String {
        format!("/kubepods/burstable/pod{}/{}", self.uid, self.container_id)
    }

    /// Run python3 allocating 200 MiB inside the memcg; asserts it was killed.
    pub fn oom_kill(&self) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs; exec /usr/bin/python3 -c 'b = bytearray(200*1024*1024)'",
                self.leaf.display()
            ))
            .status()
            .expect("run python3");
        assert!(!status.success(), "python3 was not OOM-killed");
    }
}
