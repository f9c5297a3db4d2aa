//! `pid-pressure`: tasks (threads: every thread takes a PID) against the effective limit
//! `min(kernel.pid_max, kernel.threads-max)`. Replaces `check_pid_pressure.sh`, which
//! counted processes and ignored threads-max.

use std::path::Path;

use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new("PidPressure", "NodeHasSufficientPID", "node has sufficient PID available", "RunningOutOfPID");

crate::probe_settings! {
    /// Settings of the pid-pressure probe.
    pub struct PidPressureConfig for "pid-pressure" ("PID_PRESSURE") {
        /// Problem when tasks exceed this percentage of min(pid_max, threads-max).
        #[arg(id = "pid-pressure-threshold", long = "pid-pressure-threshold", env = "NODEPROBE_PID_PRESSURE_THRESHOLD", default_value = "85", value_parser = crate::parse_percent)]
        pub threshold: f64,
    }
    schedule: timeout "5s", interval "60s";
}

/// What the probe measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidSample {
    pub tasks: u64,
    pub pid_max: u64,
    pub threads_max: u64,
}

/// Number of threads from the contents of `/proc/<pid>/stat` (field 20). The command
/// name (field 2) may contain spaces and parentheses, so parsing starts after the last `)`.
/// The command name is arbitrary bytes (`PR_SET_NAME`), so this works on bytes.
pub fn parse_stat_num_threads(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // After ')' come field 3 (state) onwards; num_threads is field 20 => index 17.
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// Judge a sample (pure).
pub fn evaluate(s: PidSample, threshold: f64) -> Outcome {
    let (limit, binding) = if s.pid_max <= s.threads_max {
        (s.pid_max, "kernel.pid_max")
    } else {
        (s.threads_max, "kernel.threads-max")
    };
    if limit == 0 {
        return Outcome::unknown("kernel reports a PID limit of 0");
    }
    let pct = s.tasks as f64 * 100.0 / limit as f64;
    let text = format!(
        "{} tasks of limit {limit} ({pct:.1}%; {binding} binds: pid_max {}, threads-max {})",
        s.tasks, s.pid_max, s.threads_max
    );
    if pct > threshold {
        Outcome::problem(
            CONDITION.problem_reason,
            format!("running out of PIDs: {text}, over {threshold}%"),
        )
    } else {
        Outcome::ok_with(text)
    }
}

fn read_u64(path: &Path) -> Result<u64, String> {
    let s = HostPaths::read_trimmed(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    s.parse()
        .map_err(|_| format!("{}: not a number: {s:?}", path.display()))
}

/// Count every task (thread) under a procfs root.
fn count_tasks(proc_root: &Path) -> Result<u64, String> {
    let entries =
        std::fs::read_dir(proc_root).map_err(|e| format!("read {}: {e}", proc_root.display()))?;
    let mut tasks = 0u64;
    let mut buf = Vec::with_capacity(512);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        buf.clear();
        let stat = proc_root.join(name).join("stat");
        let Ok(mut f) = std::fs::File::open(&stat) else {
            continue; // exited since readdir
        };
        use std::io::Read;
        if f.read_to_end(&mut buf).is_err() {
            continue;
        }
        // A process whose stat cannot be parsed still holds at least one PID.
        tasks += parse_stat_num_threads(&buf).unwrap_or(1).max(1);
    }
    Ok(tasks)
}

fn sample(proc_root: &Path) -> Result<PidSample, String> {
    let kernel = proc_root.join("sys").join("kernel");
    Ok(PidSample {
        pid_max: read_u64(&kernel.join("pid_max"))?,
        threads_max: read_u64(&kernel.join("threads-max"))?,
        tasks: count_tasks(proc_root)?,
    })
}

pub struct PidPressureProbe {
    host: HostPaths,
    config: PidPressureConfig,
}

impl PidPressureProbe {
    pub fn new(host: HostPaths, config: PidPressureConfig) -> Self {
        PidPressureProbe { host, config }
    }
}

crate::probe_impl!(PidPressureConfig => PidPressureProbe, "pid-pressure-problem-custom-plugin-monitor", [CONDITION]);

impl PidPressureProbe {
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

    const STAT: &str = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 12345 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn num_threads_survives_parentheses_in_comm() {
        assert_eq!(parse_stat_num_threads(STAT.as_bytes()), Some(7));
        assert_eq!(parse_stat_num_threads(b"garbage"), None);
        let mut odd = b"77 (\xff\xfe) S".to_vec();
        odd.extend_from_slice(b" 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 4 0 1 1 1");
        assert_eq!(parse_stat_num_threads(&odd), Some(4), "non-UTF-8 comm");
        assert_eq!(parse_stat_num_threads(b"1 (x) S 1 2"), None);
    }

    #[test]
    fn pid_max_binds() {
        let out = evaluate(
            PidSample {
                tasks: 341,
                pid_max: 400,
                threads_max: 192730,
            },
            85.0,
        );
        assert_eq!(out, Outcome::problem("RunningOutOfPID", "running out of PIDs: 341 tasks of limit 400 (85.2%; kernel.pid_max binds: pid_max 400, threads-max 192730), over 85%"));
    }

    #[test]
    fn threads_max_binds() {
        let out = evaluate(
            PidSample {
                tasks: 900,
                pid_max: 4194304,
                threads_max: 1000,
            },
            85.0,
        );
        match out {
            Outcome::Problem { message, .. } => {
                assert!(message.contains("kernel.threads-max binds"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn healthy_reports_numbers() {
        let out = evaluate(
            PidSample {
                tasks: 120,
                pid_max: 32768,
                threads_max: 192730,
            },
            85.0,
        );
        assert_eq!(out, Outcome::ok_with("120 tasks of limit 32768 (0.4%; kernel.pid_max binds: pid_max 32768, threads-max 192730)"));
    }

    #[test]
    fn fixture_proc_counts_threads_not_processes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proc");
        std::fs::create_dir_all(p.join("sys/kernel")).unwrap();
        std::fs::write(p.join("sys/kernel/pid_max"), "100\n").unwrap();
        std::fs::write(p.join("sys/kernel/threads-max"), "5000\n").unwrap();
        for (pid, threads) in [(1, 1), (20, 50), (33, 40)] {
            std::fs::create_dir_all(p.join(pid.to_string())).unwrap();
            let stat = format!("{pid} (p) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 {threads} 0 1 1 1");
            std::fs::write(p.join(pid.to_string()).join("stat"), stat).unwrap();
        }
        std::fs::create_dir_all(p.join("self")).unwrap(); // non-numeric: ignored
        let s = sample(&p).unwrap();
        assert_eq!(
            s,
            PidSample {
                tasks: 91,
                pid_max: 100,
                threads_max: 5000
            }
        );
        assert!(matches!(evaluate(s, 85.0), Outcome::Problem { .. }));
    }

    #[test]
    fn missing_sysctl_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = sample(dir.path()).unwrap_err();
        assert!(e.contains("pid_max"), "{e}");
    }
}
