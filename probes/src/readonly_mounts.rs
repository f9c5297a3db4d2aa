//! `readonly-mounts`: the host mounts that hold paths which must be writable (the kubelet's
//! and the runtimes' data directories, `/`) and are read-only **now**, from the host's
//! `<proc>/1/mountinfo` (the init process's mount namespace). The state-based companion of
//! the kernel log's `Remounting filesystem read-only` rule: that one fires once and cannot
//! clear; this one clears when the file system is writable again.

use std::path::{Path, PathBuf};

use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new(
    "ReadonlyMount",
    "NoReadonlyMount",
    "no watched mount is read-only",
    "MountIsReadOnly",
);

crate::probe_settings! {
    /// Settings of the readonly-mounts probe.
    pub struct ReadonlyMountsConfig for "readonly-mounts" ("READONLY_MOUNTS") {
        /// Host paths that must be on writable mounts, comma-separated (each is judged by the
        /// mount that holds it; remove `/` on an image-based OS whose root is read-only by
        /// design).
        #[arg(
            id = "readonly-mounts-paths",
            long = "readonly-mounts-paths",
            env = "NODEPROBE_READONLY_MOUNTS_PATHS",
            value_delimiter = ',',
            default_value = "/,/var/lib/kubelet,/var/lib/containerd,/var/lib/docker"
        )]
        pub paths: Vec<String>,
    }
    schedule: timeout "5s", interval "60s";
}

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    /// Per-mount `ro` (`mount -o remount,ro`, a read-only bind).
    pub mount_ro: bool,
    /// Superblock `ro` (the file system itself, e.g. ext4 `errors=remount-ro`).
    pub super_ro: bool,
    pub fs_type: String,
    pub source: String,
}

impl Mount {
    pub fn read_only(&self) -> bool {
        self.mount_ro || self.super_ro
    }
}

/// Undo mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` `\`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(c) = u8::try_from(v) {
                out.push(c);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn has_ro(opts: &str) -> bool {
    opts.split(',').any(|o| o == "ro")
}

/// Parse `mountinfo` (proc(5)): `id parent maj:min root mount-point options [optional…] -
/// fstype source super-options`. Lines that do not parse are returned as errors with their
/// number, the others are kept.
pub fn parse_mountinfo(text: &str) -> (Vec<Mount>, Vec<String>) {
    let mut mounts = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            errors.push(format!("line {}: no \" - \" separator", n + 1));
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            errors.push(format!("line {}: too few fields", n + 1));
            continue;
        }
        mounts.push(Mount {
            mount_point: unescape(fields[4]),
            mount_ro: has_ro(fields[5]),
            super_ro: fields.get(sep + 3).is_some_and(|o| has_ro(o)),
            fs_type: fields[sep + 1].to_string(),
            source: unescape(fields[sep + 2]),
        });
    }
    (mounts, errors)
}

/// The mount that holds `path` (an absolute host path): the longest mount point that is a
/// prefix of it, and of stacked mounts on the same point the last one (the visible one).
pub fn holding<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let path = path.trim_end_matches('/');
    let mut best: Option<&Mount> = None;
    for m in mounts {
        let mp = m.mount_point.trim_end_matches('/');
        let covers = mp.is_empty()
            || path == mp
            || (path.starts_with(mp) && path.as_bytes().get(mp.len()) == Some(&b'/'));
        if covers
            && best.is_none_or(|b| mp.len() >= b.mount_point.trim_end_matches('/').len())
        {
            best = Some(m);
        }
    }
    best
}

/// Judge the watched paths against the mount table (pure).
pub fn evaluate(mounts: &[Mount], paths: &[String]) -> Outcome {
    // read-only mounts, each with the watched paths it holds, in first-seen order
    let mut ro: Vec<(&Mount, Vec<&str>)> = Vec::new();
    let mut rw = 0;
    let mut missing = Vec::new();
    for p in paths {
        match holding(mounts, p) {
            None => missing.push(p.as_str()),
            Some(m) if m.read_only() => match ro.iter_mut().find(|(r, _)| std::ptr::eq(*r, m)) {
                Some((_, ps)) => ps.push(p),
                None => ro.push((m, vec![p])),
            },
            Some(_) => rw += 1,
        }
    }
    if !ro.is_empty() {
        let list: Vec<String> = ro
            .iter()
            .map(|(m, ps)| {
                let how = match (m.mount_ro, m.super_ro) {
                    (_, true) => "file system read-only",
                    _ => "mounted read-only",
                };
                format!(
                    "{} ({how}: {} {} on {})",
                    ps.join(", "),
                    m.fs_type,
                    m.source,
                    m.mount_point
                )
            })
            .collect();
        return Outcome::problem(
            CONDITION.problem_reason,
            format!("read-only now: {}", list.join("; ")),
        );
    }
    if !missing.is_empty() {
        return Outcome::unknown(format!(
            "no mount holds {} (mount table without /?)",
            missing.join(", ")
        ));
    }
    Outcome::ok_with(format!("{rw} watched paths on writable mounts"))
}

/// A configured path as the host sees it, following symbolic links under the host root
/// (`/var/lib/docker -> /data/docker`).
fn host_absolute(host: &HostPaths, p: &str) -> String {
    let resolved = host.resolve(p);
    match resolved.strip_prefix(host.root()) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.to_string(),
    }
}

fn read_mounts(mountinfo: &Path) -> Result<Vec<Mount>, String> {
    let text = std::fs::read_to_string(mountinfo)
        .map_err(|e| format!("read {}: {e}", mountinfo.display()))?;
    let (mounts, errors) = parse_mountinfo(&text);
    if mounts.is_empty() {
        return Err(format!(
            "{}: no mount parsed ({})",
            mountinfo.display(),
            errors.join("; ")
        ));
    }
    if !errors.is_empty() {
        tracing::debug!(file = %mountinfo.display(), ?errors, "mountinfo lines skipped");
    }
    Ok(mounts)
}

pub struct ReadonlyMountsProbe {
    host: HostPaths,
    config: ReadonlyMountsConfig,
}

impl ReadonlyMountsProbe {
    pub fn new(host: HostPaths, config: ReadonlyMountsConfig) -> Self {
        ReadonlyMountsProbe { host, config }
    }
}

crate::probe_impl!(ReadonlyMountsConfig => ReadonlyMountsProbe, "readonly-mounts-custom-plugin-monitor", [CONDITION]);

impl ReadonlyMountsProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let mountinfo: PathBuf = self.host.proc().join("1").join("mountinfo");
        let host = self.host.clone();
        let paths: Vec<String> = self
            .config
            .paths
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect();
        Box::pin(async move {
            let outcome = match blocking(move || {
                let mounts = read_mounts(&mountinfo)?;
                let resolved: Vec<String> = paths.iter().map(|p| host_absolute(&host, p)).collect();
                Ok::<_, String>(evaluate(&mounts, &resolved))
            })
            .await
            {
                Ok(Ok(o)) => o,
                Ok(Err(e)) | Err(e) => Outcome::unknown(e),
            };
            single(CONDITION, outcome)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
40 27 8:2 / /var/lib/kubelet rw,relatime shared:5 - xfs /dev/sdb1 rw,attr2
41 27 8:3 / /var/lib/containerd rw,relatime - ext4 /dev/sdc1 ro,errors=remount-ro
42 27 0:50 / /mnt/my\\040disk ro,relatime - tmpfs none rw
43 40 0:51 / /var/lib/kubelet/pods/x/volumes rw - tmpfs tmpfs rw
";

    fn paths(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_fields_escapes_and_both_ro_flags() {
        let (m, errors) = parse_mountinfo(MOUNTINFO);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(m.len(), 6);
        assert_eq!(m[1].mount_point, "/");
        assert_eq!(m[1].fs_type, "ext4");
        assert!(!m[1].read_only(), "errors=remount-ro is not ro");
        assert!(m[3].super_ro && !m[3].mount_ro);
        assert_eq!(m[4].mount_point, "/mnt/my disk");
        assert!(m[4].mount_ro);
        let (m, errors) = parse_mountinfo("garbage line\n1 2 3:4 / /x rw - tmpfs t rw\n1 2 -\n");
        assert_eq!(m.len(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn the_holding_mount_is_the_longest_prefix_on_a_path_boundary() {
        let (m, _) = parse_mountinfo(MOUNTINFO);
        assert_eq!(holding(&m, "/var/lib/kubelet").unwrap().source, "/dev/sdb1");
        assert_eq!(
            holding(&m, "/var/lib/kubelet/pods").unwrap().source,
            "/dev/sdb1"
        );
        assert_eq!(holding(&m, "/var/lib/kubeletx").unwrap().source, "/dev/sda1");
        assert_eq!(holding(&m, "/").unwrap().source, "/dev/sda1");
        assert_eq!(holding(&m, "/var/lib/docker").unwrap().source, "/dev/sda1");
        // stacked mounts: the last one is visible
        let (m, _) = parse_mountinfo(
            "1 0 0:1 / / rw - ext4 a rw\n2 1 0:2 / /d rw - tmpfs lower rw\n3 2 0:3 / /d ro - tmpfs upper rw\n",
        );
        assert_eq!(holding(&m, "/d/x").unwrap().source, "upper");
    }

    #[test]
    fn read_only_mounts_are_named_with_the_paths_they_hold() {
        let (m, _) = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            evaluate(&m, &paths(&["/", "/var/lib/kubelet", "/var/lib/docker"])),
            Outcome::ok_with("3 watched paths on writable mounts")
        );
        assert_eq!(
            evaluate(
                &m,
                &paths(&["/", "/var/lib/containerd", "/mnt/my disk/a", "/mnt/my disk"])
            ),
            Outcome::problem(
                "MountIsReadOnly",
                "read-only now: /var/lib/containerd (file system read-only: ext4 /dev/sdc1 on /var/lib/containerd); /mnt/my disk/a, /mnt/my disk (mounted read-only: tmpfs none on /mnt/my disk)"
            )
        );
    }

    #[test]
    fn a_table_without_root_is_unknown() {
        let (m, _) = parse_mountinfo("2 1 0:2 / /d rw - tmpfs t rw\n");
        assert!(matches!(
            evaluate(&m, &paths(&["/", "/d"])),
            Outcome::Unknown { .. }
        ));
    }

    #[tokio::test]
    async fn fixture_host_root_with_a_symlinked_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p1 = dir.path().join("proc/1");
        std::fs::create_dir_all(&p1).unwrap();
        std::fs::write(
            p1.join("mountinfo"),
            "1 0 0:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:2 / /data ro - xfs /dev/sdd rw\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib")).unwrap();
        std::os::unix::fs::symlink("/data/docker", dir.path().join("var/lib/docker")).unwrap();
        let probe = ReadonlyMountsProbe::new(HostPaths::new(dir.path()), Default::default());
        match &probe.check().await[0].outcome {
            Outcome::Problem { message, .. } => assert_eq!(
                message,
                "read-only now: /data/docker (mounted read-only: xfs /dev/sdd on /data)"
            ),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(p1.join("mountinfo")).unwrap();
        match &probe.check().await[0].outcome {
            Outcome::Unknown { error } => assert!(error.contains("1/mountinfo"), "{error}"),
            other => panic!("{other:?}"),
        }
    }
}
