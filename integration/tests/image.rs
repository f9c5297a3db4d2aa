//! The image's final stage holds the static binary alone (deploy/Dockerfile). This assembles
//! that root file system by hand — the binary and nothing else — mounts the host the way the
//! DaemonSet does (host `/` read-only at `/host`), and runs `nodeprobe --oneshot --host-root
//! /host` inside it with chroot, adding what the DaemonSet's securityContext adds: the root
//! read-only, every capability dropped but SYSLOG, no new privileges (`capsh`). What only a
//! runtime adds (device cgroup, seccomp, namespaces) is in `container.rs` and `kubelet.rs`.
//!
//! Needs `$NODEPROBE_STATIC_BIN` (integration/run-tests.sh builds it), root and `capsh`.

#![allow(clippy::disallowed_methods)] // tests start real components and the binary

use std::path::{Path, PathBuf};
use std::process::Command;

use nodeprobe_integration::{is_root, require, Run};

fn static_binary() -> Option<PathBuf> {
    std::env::var_os("NODEPROBE_STATIC_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

/// The image root: `/nodeprobe` plus the empty mount points the DaemonSet fills.
/// Removed without recursion, so a mount left behind could never take host files with it.
struct ImageRoot {
    root: PathBuf,
}

impl ImageRoot {
    fn new(binary: &Path) -> Self {
        let root = std::env::temp_dir().join(nodeprobe_integration::unique("image-root"));
        std::fs::create_dir(&root).unwrap();
        std::fs::copy(binary, root.join("nodeprobe")).unwrap();
        for d in [
            "host",
            "var",
            "var/lib",
            "var/lib/nodeprobe",
            "etc",
            "etc/nodeprobe",
        ] {
            std::fs::create_dir(root.join(d)).unwrap();
        }
        ImageRoot { root }
    }

    /// Regular files and directories of the image root, excluding the mount points' insides.
    fn entries(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                if rel == "host" {
                    out.push(rel);
                    continue;
                }
                if p.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(base, &p, out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }
}

impl Drop for ImageRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.root.join("nodeprobe"));
        for d in [
            "var/lib/nodeprobe",
            "var/lib",
            "var",
            "etc/nodeprobe",
            "etc",
            "host",
            "",
        ] {
            let _ = std::fs::remove_dir(self.root.join(d));
        }
    }
}

#[test]
fn the_binary_is_static() {
    let Some(bin) = static_binary() else {
        require(false, "NODEPROBE_STATIC_BIN (static release build)");
        return;
    };
    let out = Command::new("ldd").arg(&bin).output().expect("ldd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "ldd {}: {text}",
        bin.display()
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    eprintln!("static binary {}: {size} bytes", bin.display());
}

#[test]
fn oneshot_runs_in_a_root_holding_only_the_binary() {
    if !require(is_root(), "root (mount namespace, chroot)")
        || !require(
            nodeprobe_integration::runtimes::have("capsh"),
            "capsh (Debian libcap2-bin)",
        )
    {
        return;
    }
    let Some(bin) = static_binary() else {
        require(false, "NODEPROBE_STATIC_BIN (static release build)");
        return;
    };
    let image = ImageRoot::new(&bin);
    assert_eq!(
        image.entries(),
        vec![
            "etc/",
            "etc/nodeprobe/",
            "host",
            "nodeprobe",
            "var/",
            "var/lib/",
            "var/lib/nodeprobe/"
        ]
    );
    let root = image.root.to_str().unwrap();
    // The bounding set without SYSLOG: `capabilities: {drop: [ALL], add: [SYSLOG]}`.
    let print = nodeprobe_integration::sh("capsh", &["--print"]);
    let drop: Vec<&str> = print
        .lines()
        .find_map(|l| l.strip_prefix("Bounding set ="))
        .expect("capsh --print shows the bounding set")
        .split(',')
        .filter(|c| *c != "cap_syslog")
        .collect();
    let drop = drop.join(",");
    // A private mount namespace: the mounts disappear with it, whatever happens here. The
    // image root read-only (readOnlyRootFilesystem), the host read-only at /host, then chroot,
    // drop the capabilities and exec the binary (capsh ends with exec, without a shell).
    let script = format!(
        "set -e
         mount --bind {root} {root}
         mount -o remount,bind,ro {root}
         mount --rbind / {root}/host
         mount -o remount,bind,ro {root}/host
         exec capsh --chroot={root} --drop={drop} --caps=cap_syslog+eip --no-new-privs \
           --shell=/nodeprobe -- --oneshot --output json --host-root /host \
           --probes inodes,pid-pressure"
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &script,
        ])
        .env_clear()
        .output()
        .expect("unshare");
    let run = Run::from_output(out);
    assert!(
        [0, 1].contains(&run.code),
        "inodes and pid-pressure decide on a real host: {run:?}"
    );
    let v = run.json();
    assert!(v["node"].as_str().is_some_and(|n| !n.is_empty()));
    for cond in ["InodesPressure", "PidPressure"] {
        let r = run.result(cond);
        assert_ne!(
            r["status"], "Unknown",
            "{cond} decided inside the image: {r}"
        );
    }
    let pid = run.result("PidPressure");
    assert!(
        pid["detail"]
            .as_str()
            .or(pid["message"].as_str())
            .is_some_and(|m| m.contains("tasks of limit")),
        "{pid}"
    );
}
