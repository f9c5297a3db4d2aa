//! `inodes`: inode usage of host file systems (replaces `check_inodes.sh`, which ran
//! `df -i` inside the container and so measured the overlay, not the host).

use std::path::PathBuf;

use crate::{blocking, single, CheckFuture, ConditionSpec, Findings, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("InodesPressure", "NodeHasNoInodesPressure", "node has no inodes pressure", "NodeHasInodesPressure");

crate::probe_settings! {
    /// Settings of the inodes probe (flags and env twins).
    pub struct InodesConfig for "inodes" ("INODES") {
        /// Host mount points to check, comma-separated (under --host-root).
        #[arg(
            id = "inodes-mounts",
            long = "inodes-mounts",
            env = "NODEPROBE_INODES_MOUNTS",
            value_delimiter = ',',
            default_value = "/"
        )]
        pub mounts: Vec<String>,
        /// Problem when a mount's inode usage is above this percentage.
        #[arg(id = "inodes-threshold", long = "inodes-threshold", env = "NODEPROBE_INODES_THRESHOLD", default_value = "80", value_parser = crate::parse_percent)]
        pub threshold: f64,
    }
    schedule: timeout "5s", interval "120s";
}

/// Inode counts of one file system, as `statvfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InodeCounts {
    pub total: u64,
    pub free: u64,
}

impl InodeCounts {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.free)
    }
    /// Percentage used, `None` for file systems without an inode limit (btrfs reports 0).
    pub fn percent(&self) -> Option<f64> {
        (self.total > 0).then(|| self.used() as f64 * 100.0 / self.total as f64)
    }
}

/// Judge the measured mounts (pure). `samples` holds, per configured mount, its counts or
/// the error that prevented reading them.
pub fn evaluate(samples: &[(String, Result<InodeCounts, String>)], threshold: f64) -> Outcome {
    let mut errors = Vec::new();
    let mut over = Vec::new();
    let mut worst: Option<(String, f64)> = None;
    for (mount, sample) in samples {
        match sample {
            Err(e) => errors.push(format!("{mount}: {e}")),
            Ok(c) => {
                let Some(pct) = c.percent() else { continue };
                if worst.as_ref().is_none_or(|(_, w)| pct > *w) {
                    worst = Some((mount.clone(), pct));
                }
                if pct > threshold {
                    over.push(format!(
                        "{mount} {}/{} inodes used ({pct:.1}%)",
                        c.used(),
                        c.total
                    ));
                }
            }
        }
    }
    if !over.is_empty() {
        let mut msg = format!("inode usage over {threshold}% on {}", over.join(", "));
        if !errors.is_empty() {
            msg.push_str(&format!("; could not check {}", errors.join(", ")));
        }
        return Outcome::problem(CONDITION.problem_reason, msg);
    }
    if !errors.is_empty() {
        return Outcome::unknown(format!("cannot check inodes of {}", errors.join(", ")));
    }
    match worst {
        Some((mount, pct)) => Outcome::ok_with(format!(
            "highest inode usage {pct:.1}% on {mount} (threshold {threshold}%)"
        )),
        None => Outcome::ok_with("no checked file system has an inode limit"),
    }
}

pub struct InodesProbe {
    host: HostPaths,
    config: InodesConfig,
}

impl InodesProbe {
    pub fn new(host: HostPaths, config: InodesConfig) -> Self {
        InodesProbe { host, config }
    }
}

fn statvfs_counts(path: &std::path::Path) -> Result<InodeCounts, String> {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => Ok(InodeCounts {
            total: s.files(),
            free: s.files_free(),
        }),
        Err(nix::errno::Errno::ENOENT) => Err(format!("{} does not exist", path.display())),
        Err(e) => Err(format!("statvfs {}: {}", path.display(), e.desc())),
    }
}

crate::probe_impl!(InodesConfig => InodesProbe, "inodes-custom-plugin-monitor", [CONDITION]);

impl InodesProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let targets: Vec<(String, PathBuf)> = self
            .config
            .mounts
            .iter()
            .map(|m| (m.clone(), self.host.path(m)))
            .collect();
        let threshold = self.config.threshold;
        Box::pin(async move {
            let outcome = match blocking(move || {
                targets
                    .iter()
                    .map(|(m, p)| (m.clone(), statvfs_counts(p)))
                    .collect::<Vec<_>>()
            })
            .await
            {
                Ok(samples) => evaluate(&samples, threshold),
                Err(e) => Outcome::unknown(e),
            };
            let findings: Findings = single(CONDITION, outcome);
            findings
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Probe;

    fn c(total: u64, free: u64) -> Result<InodeCounts, String> {
        Ok(InodeCounts { total, free })
    }

    #[test]
    fn below_threshold_is_ok() {
        let out = evaluate(&[("/".into(), c(100, 50))], 80.0);
        assert_eq!(
            out,
            Outcome::ok_with("highest inode usage 50.0% on / (threshold 80%)")
        );
    }

    #[test]
    fn every_mount_over_threshold_is_named() {
        let out = evaluate(
            &[
                ("/".into(), c(100, 10)),
                ("/var/lib/kubelet".into(), c(1000, 900)),
                ("/var/lib/containerd".into(), c(200, 20)),
            ],
            80.0,
        );
        assert_eq!(
            out,
            Outcome::problem(
                "NodeHasInodesPressure",
                "inode usage over 80% on / 90/100 inodes used (90.0%), /var/lib/containerd 180/200 inodes used (90.0%)"
            )
        );
    }

    #[test]
    fn exactly_at_threshold_is_not_over() {
        assert!(matches!(
            evaluate(&[("/".into(), c(100, 20))], 80.0),
            Outcome::Ok { .. }
        ));
    }

    #[test]
    fn missing_mount_is_unknown_and_named() {
        let out = evaluate(
            &[
                ("/".into(), c(100, 90)),
                ("/nope".into(), Err("/nope does not exist".into())),
            ],
            80.0,
        );
        assert_eq!(
            out,
            Outcome::unknown("cannot check inodes of /nope: /nope does not exist")
        );
    }

    #[test]
    fn problem_wins_over_unknown_but_mentions_it() {
        let out = evaluate(
            &[
                ("/".into(), c(100, 1)),
                ("/nope".into(), Err("gone".into())),
            ],
            80.0,
        );
        match out {
            Outcome::Problem { message, .. } => {
                assert!(message.ends_with("could not check /nope: gone"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn filesystems_without_inode_limit_are_skipped() {
        assert_eq!(
            evaluate(&[("/".into(), c(0, 0))], 80.0),
            Outcome::ok_with("no checked file system has an inode limit")
        );
    }

    #[tokio::test]
    async fn real_statvfs_of_a_temp_dir() {
        let dir = tempfile::tempdir().unwrap();
        let probe = InodesProbe::new(
            HostPaths::new(dir.path()),
            InodesConfig {
                mounts: vec!["/".into(), "/missing".into()],
                threshold: 99.9,
                ..Default::default()
            },
        );
        let f = probe.check().await;
        match &f[0].outcome {
            Outcome::Unknown { error } => {
                assert!(error.contains("/missing"), "{error}");
                assert!(error.contains("does not exist"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }
}
