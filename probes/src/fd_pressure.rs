//! `fd-pressure`: open file handles of the whole host (`fs.file-nr`) against the kernel's
//! limit (`fs.file-max`). When it is reached every `open`, `socket` and `accept` on the node
//! fails with `ENFILE` ("Too many open files in system"). `fs.nr_open` (the ceiling of one
//! process's `RLIMIT_NOFILE`) is reported beside it.

use std::path::Path;

use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new(
    "FDPressure",
    "NodeHasNoFDPressure",
    "node has no file descriptor pressure",
    "NodeHasFDPressure",
);

crate::probe_settings! {
    /// Settings of the fd-pressure probe.
    pub struct FdPressureConfig for "fd-pressure" ("FD_PRESSURE") {
        /// Problem when allocated file handles exceed this percentage of fs.file-max.
        #[arg(id = "fd-pressure-threshold", long = "fd-pressure-threshold", env = "NODEPROBE_FD_PRESSURE_THRESHOLD", default_value = "80", value_parser = crate::parse_percent)]
        pub threshold: f64,
    }
    schedule: timeout "5s", interval "60s";
}

/// What the probe read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdSample {
    /// Allocated file handles (`file-nr` first field minus its second, "free": always 0
    /// since Linux 2.6, kept for older kernels).
    pub allocated: u64,
    /// `fs.file-max` (the third `file-nr` field).
    pub file_max: u64,
    /// `fs.nr_open`, when readable.
    pub nr_open: Option<u64>,
}

/// Parse `/proc/sys/fs/file-nr`: `<allocated>\t<free>\t<max>`.
pub fn parse_file_nr(text: &str) -> Result<(u64, u64), String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [allocated, free, max] = fields[..] else {
        return Err(format!(
            "expected 3 numbers (allocated, free, max), got {:?}",
            text.trim()
        ));
    };
    let num = |s: &str, what: &str| -> Result<u64, String> {
        s.parse()
            .map_err(|_| format!("{what} is not a number: {s:?}"))
    };
    let allocated = num(allocated, "allocated")?;
    let free = num(free, "free")?;
    let max = num(max, "max")?;
    Ok((allocated.saturating_sub(free), max))
}

/// Judge a sample (pure).
pub fn evaluate(s: FdSample, threshold: f64) -> Outcome {
    if s.file_max == 0 {
        return Outcome::unknown("kernel reports fs.file-max 0");
    }
    let pct = s.allocated as f64 * 100.0 / s.file_max as f64;
    let nr_open = s
        .nr_open
        .map(|n| format!("; fs.nr_open {n}"))
        .unwrap_or_default();
    let text = format!(
        "{} file handles allocated of fs.file-max {} ({pct:.1}%){nr_open}",
        s.allocated, s.file_max
    );
    if pct > threshold {
        Outcome::problem(
            CONDITION.problem_reason,
            format!("file descriptor pressure: {text}, over {threshold}%"),
        )
    } else {
        Outcome::ok_with(text)
    }
}

fn read(path: &Path) -> Result<String, String> {
    HostPaths::read_trimmed(path).map_err(|e| format!("read {}: {e}", path.display()))
}

fn sample(proc_root: &Path) -> Result<FdSample, String> {
    let fs = proc_root.join("sys").join("fs");
    let file_nr = fs.join("file-nr");
    let (allocated, max) =
        parse_file_nr(&read(&file_nr)?).map_err(|e| format!("{}: {e}", file_nr.display()))?;
    // file-max is the limit (file-nr repeats it; prefer the sysctl itself when readable).
    let file_max = read(&fs.join("file-max"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(max);
    let nr_open = read(&fs.join("nr_open")).ok().and_then(|s| s.parse().ok());
    Ok(FdSample {
        allocated,
        file_max,
        nr_open,
    })
}

pub struct FdPressureProbe {
    host: HostPaths,
    config: FdPressureConfig,
}

impl FdPressureProbe {
    pub fn new(host: HostPaths, config: FdPressureConfig) -> Self {
        FdPressureProbe { host, config }
    }
}

crate::probe_impl!(FdPressureConfig => FdPressureProbe, "fd-pressure-custom-plugin-monitor", [CONDITION]);

impl FdPressureProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let proc_root = self.host.proc();
        let threshold = self.config.threshold;
        Box::pin(async move {
            let outcome = match blocking(move || sample(&proc_root)).await {
                Ok(Ok(s)) => evaluate(s, threshold),
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

    #[test]
    fn file_nr_parses_and_subtracts_free() {
        assert_eq!(parse_file_nr("1221\t0\t2466290\n"), Ok((1221, 2466290)));
        assert_eq!(parse_file_nr("5000 200 9000"), Ok((4800, 9000)));
        assert!(parse_file_nr("1 2").unwrap_err().contains("expected 3"));
        assert!(parse_file_nr("x 0 9").unwrap_err().contains("allocated"));
        assert!(parse_file_nr("").is_err());
        // the kernel's maximum on 64-bit
        assert_eq!(
            parse_file_nr("3 0 9223372036854775807"),
            Ok((3, 9223372036854775807))
        );
    }

    #[test]
    fn over_threshold_is_a_problem_naming_numbers() {
        let s = FdSample {
            allocated: 900,
            file_max: 1000,
            nr_open: Some(1048576),
        };
        assert_eq!(
            evaluate(s, 80.0),
            Outcome::problem(
                "NodeHasFDPressure",
                "file descriptor pressure: 900 file handles allocated of fs.file-max 1000 (90.0%); fs.nr_open 1048576, over 80%"
            )
        );
        assert_eq!(
            evaluate(s, 95.0),
            Outcome::ok_with(
                "900 file handles allocated of fs.file-max 1000 (90.0%); fs.nr_open 1048576"
            )
        );
        assert!(matches!(
            evaluate(
                FdSample {
                    allocated: 800,
                    file_max: 1000,
                    nr_open: None
                },
                80.0
            ),
            Outcome::Ok { .. }
        ));
        assert!(matches!(
            evaluate(
                FdSample {
                    allocated: 1,
                    file_max: 0,
                    nr_open: None
                },
                80.0
            ),
            Outcome::Unknown { .. }
        ));
    }

    fn fixture(file_nr: Option<&str>, file_max: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let fs = dir.path().join("proc/sys/fs");
        std::fs::create_dir_all(&fs).unwrap();
        if let Some(t) = file_nr {
            std::fs::write(fs.join("file-nr"), t).unwrap();
        }
        if let Some(t) = file_max {
            std::fs::write(fs.join("file-max"), t).unwrap();
        }
        std::fs::write(fs.join("nr_open"), "1048576\n").unwrap();
        dir
    }

    #[tokio::test]
    async fn fixture_host_root() {
        let dir = fixture(Some("950\t0\t1000\n"), Some("1000\n"));
        let probe = FdPressureProbe::new(HostPaths::new(dir.path()), Default::default());
        match &probe.check().await[0].outcome {
            Outcome::Problem { message, .. } => assert!(message.contains("(95.0%)"), "{message}"),
            other => panic!("{other:?}"),
        }
        // a raised file-max (sysctl) wins over the older copy in file-nr
        let dir = fixture(Some("950\t0\t1000\n"), Some("100000\n"));
        let probe = FdPressureProbe::new(HostPaths::new(dir.path()), Default::default());
        assert!(matches!(probe.check().await[0].outcome, Outcome::Ok { .. }));
    }

    #[tokio::test]
    async fn unreadable_or_garbled_is_unknown_naming_the_file() {
        let dir = fixture(None, None);
        let probe = FdPressureProbe::new(HostPaths::new(dir.path()), Default::default());
        match &probe.check().await[0].outcome {
            Outcome::Unknown { error } => assert!(error.contains("file-nr"), "{error}"),
            other => panic!("{other:?}"),
        }
        let dir = fixture(Some("garbage"), None);
        let probe = FdPressureProbe::new(HostPaths::new(dir.path()), Default::default());
        match &probe.check().await[0].outcome {
            Outcome::Unknown { error } => {
                assert!(error.contains("file-nr: expected 3 numbers"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }
}
