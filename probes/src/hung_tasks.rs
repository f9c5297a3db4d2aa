//! `hung-tasks`: tasks (threads) in uninterruptible sleep (`D`) for longer than a
//! threshold, naming the longest-blocked few. The state-based companion of the kernel log's
//! TaskHung rule, which fires only after `kernel.hung_task_timeout_secs` (120 s), at most
//! `kernel.hung_task_warnings` (10) times per boot, and never clears; this condition stays
//! True while tasks are stuck and clears when they move.
//!
//! How long a task has been blocked: `se.exec_start` in `<proc>/<pid>/task/<tid>/sched`
//! (milliseconds of `CLOCK_MONOTONIC` when it last ran, so `now - exec_start` for a task
//! asleep since), so one `--oneshot` run can judge it. Where that file is missing (kernels
//! without scheduler debug information), a task counts as blocked since the first check that
//! saw it in `D` with the same context-switch count (`schedstat`), as the kernel's own
//! hung-task detector does.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{blocking, single, CheckFuture, ConditionSpec, HostPaths, Outcome};

pub const CONDITION: ConditionSpec = ConditionSpec::new(
    "HungTasks",
    "NoHungTasks",
    "no task is stuck in uninterruptible sleep",
    "TasksHung",
);

crate::probe_settings! {
    /// Settings of the hung-tasks probe.
    pub struct HungTasksConfig for "hung-tasks" ("HUNG_TASKS") {
        /// Problem when a task has been in uninterruptible sleep (D) longer than this.
        #[arg(id = "hung-tasks-threshold", long = "hung-tasks-threshold", env = "NODEPROBE_HUNG_TASKS_THRESHOLD", default_value = "120s", value_parser = crate::parse_duration)]
        pub threshold: Duration,
        /// How many of the longest-blocked tasks the message names.
        #[arg(id = "hung-tasks-top", long = "hung-tasks-top", env = "NODEPROBE_HUNG_TASKS_TOP", default_value = "5", value_parser = clap::value_parser!(u16).range(1..))]
        pub top: u16,
    }
    schedule: timeout "10s", interval "30s";
}

/// The fields of `<proc>/<pid>/task/<tid>/stat` this probe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStat {
    pub comm: String,
    pub state: char,
    /// Start time in clock ticks since boot (field 22): tells a reused TID apart.
    pub start: u64,
}

/// Parse a task's `stat`. The command name may hold spaces and parentheses (it ends at the
/// last `)`) and arbitrary bytes (shown lossily).
pub fn parse_stat(stat: &[u8]) -> Option<TaskStat> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = String::from_utf8_lossy(&stat[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // fields after ')': 3 state, 4 ppid, ... 22 starttime => index 19 (state is index 0)
    let start = fields.nth(18)?.parse().ok()?;
    Some(TaskStat { comm, state, start })
}

/// `se.exec_start` (milliseconds) from a task's `sched` file.
pub fn parse_exec_start_ms(sched: &str) -> Option<f64> {
    sched.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "se.exec_start")
            .then(|| v.trim().parse::<f64>().ok())
            .flatten()
            .filter(|x| x.is_finite() && *x >= 0.0)
    })
}

/// Context switches (timeslices run) from a task's `schedstat` (third field).
pub fn parse_schedstat_switches(s: &str) -> Option<u64> {
    s.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// One task found in `D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    /// How long it has been blocked, when known.
    pub for_: Option<Duration>,
    /// Kernel function it waits in (`wchan`), when the kernel shows it.
    pub wchan: Option<String>,
}

/// Judge the blocked tasks (pure).
pub fn evaluate(blocked: &[Blocked], threshold: Duration, top: usize) -> Outcome {
    let mut hung: Vec<&Blocked> = blocked
        .iter()
        .filter(|b| b.for_.is_some_and(|d| d > threshold))
        .collect();
    if hung.is_empty() {
        return Outcome::ok_with(format!(
            "{} tasks in uninterruptible sleep, none longer than {}",
            blocked.len(),
            crate::humanize(threshold)
        ));
    }
    hung.sort_by(|a, b| b.for_.cmp(&a.for_).then(a.tid.cmp(&b.tid)));
    let named: Vec<String> = hung
        .iter()
        .take(top)
        .map(|b| {
            let id = if b.pid == b.tid {
                format!("pid {}", b.pid)
            } else {
                format!("pid {} tid {}", b.pid, b.tid)
            };
            let wchan = b
                .wchan
                .as_deref()
                .map(|w| format!(" in {w}"))
                .unwrap_or_default();
            format!(
                "{} ({id}) {}s{wchan}",
                b.comm,
                b.for_.unwrap_or_default().as_secs()
            )
        })
        .collect();
    let more = hung.len().saturating_sub(top);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Outcome::problem(
        CONDITION.problem_reason,
        format!(
            "{} tasks in uninterruptible sleep (D) longer than {}: {}{more}",
            hung.len(),
            crate::humanize(threshold),
            named.join(", ")
        ),
    )
}

/// What the fallback remembers of a task seen in `D`: its context switches then, and since
/// when they have not changed.
#[derive(Debug, Clone, Copy)]
struct Seen {
    switches: u64,
    since: Instant,
}

/// Tasks seen in `D` by earlier checks (key: tid, start time), for kernels without `sched`.
type Memory = HashMap<(u32, u64), Seen>;

fn now_monotonic_ms() -> Option<f64> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    Some(t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6)
}

fn read_small(path: &Path, buf: &mut Vec<u8>) -> bool {
    use std::io::Read;
    buf.clear();
    match std::fs::File::open(path) {
        Ok(mut f) => f.read_to_end(buf).is_ok(),
        Err(_) => false,
    }
}

fn numeric(name: &std::ffi::OsStr) -> Option<u32> {
    let s = name.to_str()?;
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

/// Every task in `D` under a procfs root (blocking).
fn scan(proc_root: &Path, memory: &Mutex<Memory>) -> Result<Vec<Blocked>, String> {
    let entries =
        std::fs::read_dir(proc_root).map_err(|e| format!("read {}: {e}", proc_root.display()))?;
    let now_ms = now_monotonic_ms();
    let now = Instant::now();
    let mut buf = Vec::with_capacity(512);
    let mut blocked = Vec::new();
    let mut seen_keys = HashSet::new();
    let mut memory = memory.lock().unwrap_or_else(|p| p.into_inner());
    for entry in entries.flatten() {
        let Some(pid) = numeric(&entry.file_name()) else {
            continue;
        };
        let tasks_dir = entry.path().join("task");
        let Ok(tasks) = std::fs::read_dir(&tasks_dir) else {
            continue; // exited since readdir
        };
        for task in tasks.flatten() {
            let Some(tid) = numeric(&task.file_name()) else {
                continue;
            };
            let dir: PathBuf = task.path();
            if !read_small(&dir.join("stat"), &mut buf) {
                continue;
            }
            let Some(stat) = parse_stat(&buf) else {
                continue;
            };
            if stat.state != 'D' {
                continue;
            }
            let from_sched = std::fs::read_to_string(dir.join("sched"))
                .ok()
                .and_then(|s| parse_exec_start_ms(&s))
                .zip(now_ms)
                .map(|(start, now)| Duration::from_secs_f64(((now - start) / 1000.0).max(0.0)));
            let for_ = from_sched.or_else(|| {
                let switches = std::fs::read_to_string(dir.join("schedstat"))
                    .ok()
                    .and_then(|s| parse_schedstat_switches(&s))?;
                let key = (tid, stat.start);
                seen_keys.insert(key);
                let e = memory.entry(key).or_insert(Seen {
                    switches,
                    since: now,
                });
                if e.switches != switches {
                    *e = Seen {
                        switches,
                        since: now,
                    };
                }
                Some(now - e.since)
            });
            let wchan = std::fs::read_to_string(dir.join("wchan"))
                .ok()
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty() && w != "0");
            blocked.push(Blocked {
                pid,
                tid,
                comm: stat.comm,
                for_,
                wchan,
            });
        }
    }
    // forget tasks that are no longer in D
    memory.retain(|k, _| seen_keys.contains(k));
    Ok(blocked)
}

pub struct HungTasksProbe {
    host: HostPaths,
    config: HungTasksConfig,
    memory: Arc<Mutex<Memory>>,
}

impl HungTasksProbe {
    pub fn new(host: HostPaths, config: HungTasksConfig) -> Self {
        HungTasksProbe {
            host,
            config,
            memory: Arc::default(),
        }
    }
}

crate::probe_impl!(HungTasksConfig => HungTasksProbe, "hung-tasks-custom-plugin-monitor", [CONDITION]);

impl HungTasksProbe {
    /// One check (what `Probe::check` runs).
    fn check_once(&self) -> CheckFuture<'_> {
        let proc_root = self.host.proc();
        let memory = Arc::clone(&self.memory);
        let (threshold, top) = (self.config.threshold, usize::from(self.config.top));
        Box::pin(async move {
            let outcome = match blocking(move || scan(&proc_root, &memory)).await {
                Ok(Ok(b)) => evaluate(&b, threshold, top),
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

    fn stat(pid: u32, comm: &str, state: char, start: u64) -> String {
        format!("{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
    }

    #[test]
    fn stat_fields() {
        let s = stat(42, "my (odd) task", 'D', 777);
        assert_eq!(
            parse_stat(s.as_bytes()),
            Some(TaskStat {
                comm: "my (odd) task".into(),
                state: 'D',
                start: 777
            })
        );
        assert_eq!(parse_stat(b"1 (x) S 1 2"), None);
        assert_eq!(parse_stat(b") ("), None);
        assert_eq!(parse_stat(b""), None);
    }

    #[test]
    fn sched_and_schedstat() {
        let sched = "cat (28929, #threads: 1)\n---------\nse.exec_start                                :        444195.264494\nse.vruntime  :  264.7\n";
        assert_eq!(parse_exec_start_ms(sched), Some(444195.264494));
        assert_eq!(parse_exec_start_ms("se.vruntime : 1"), None);
        assert_eq!(parse_exec_start_ms("se.exec_start : -5"), None);
        assert_eq!(parse_schedstat_switches("167561 52991 2\n"), Some(2));
        assert_eq!(parse_schedstat_switches("1 2"), None);
    }

    fn b(pid: u32, tid: u32, secs: Option<u64>, wchan: Option<&str>) -> Blocked {
        Blocked {
            pid,
            tid,
            comm: format!("t{tid}"),
            for_: secs.map(Duration::from_secs),
            wchan: wchan.map(String::from),
        }
    }

    #[test]
    fn longest_blocked_first_and_capped() {
        let tasks = [
            b(1, 1, Some(130), Some("percpu_rwsem_wait")),
            b(2, 3, Some(500), None),
            b(4, 4, Some(10), None),
            b(5, 5, None, None),
            b(6, 6, Some(200), None),
        ];
        assert_eq!(
            evaluate(&tasks, Duration::from_secs(120), 2),
            Outcome::problem(
                "TasksHung",
                "3 tasks in uninterruptible sleep (D) longer than 120s: t3 (pid 2 tid 3) 500s, t6 (pid 6) 200s and 1 more"
            )
        );
        match evaluate(&tasks, Duration::from_secs(120), 5) {
            Outcome::Problem { message, .. } => {
                assert!(message.ends_with("t1 (pid 1) 130s in percpu_rwsem_wait"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            evaluate(&tasks[2..4], Duration::from_secs(120), 5),
            Outcome::ok_with("2 tasks in uninterruptible sleep, none longer than 120s")
        );
    }

    /// A fixture procfs: `(pid, tid, state, exec_start ms or None, schedstat switches)`.
    fn procfs(tasks: &[(u32, u32, char, Option<f64>, u64)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for &(pid, tid, state, exec, switches) in tasks {
            let t = dir.path().join(format!("proc/{pid}/task/{tid}"));
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("stat"), stat(tid, "worker", state, 99)).unwrap();
            if let Some(ms) = exec {
                std::fs::write(
                    t.join("sched"),
                    format!("worker ({tid}, #threads: 1)\n----\nse.exec_start  :  {ms:.6}\n"),
                )
                .unwrap();
            }
            std::fs::write(t.join("schedstat"), format!("1 2 {switches}\n")).unwrap();
            std::fs::write(t.join("wchan"), "0").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        dir
    }

    #[tokio::test]
    async fn exec_start_dates_the_block() {
        let now = now_monotonic_ms().unwrap();
        let dir = procfs(&[
            (10, 10, 'S', Some(now - 900_000.0), 1),
            (10, 11, 'D', Some(now - 300_000.0), 1),
            (20, 20, 'D', Some(now - 1_000.0), 1),
        ]);
        let probe = HungTasksProbe::new(HostPaths::new(dir.path()), Default::default());
        match &probe.check().await[0].outcome {
            Outcome::Problem { message, .. } => assert!(
                message.starts_with(
                    "1 tasks in uninterruptible sleep (D) longer than 120s: worker (pid 10 tid 11) 30"
                ),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn without_sched_unchanged_switches_count_across_checks() {
        let dir = procfs(&[(30, 30, 'D', None, 5)]);
        let config = HungTasksConfig {
            threshold: Duration::from_millis(50),
            ..Default::default()
        };
        let probe = HungTasksProbe::new(HostPaths::new(dir.path()), config);
        // first sight: blocked for ~0
        assert!(matches!(
            probe.check().await[0].outcome,
            Outcome::Ok { .. }
        ));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(
            probe.check().await[0].outcome,
            Outcome::Problem { .. }
        ));
        // it ran in between (switch count moved): the clock restarts
        std::fs::write(dir.path().join("proc/30/task/30/schedstat"), "1 2 6\n").unwrap();
        assert!(matches!(
            probe.check().await[0].outcome,
            Outcome::Ok { .. }
        ));
    }

    #[tokio::test]
    async fn unreadable_proc_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let probe = HungTasksProbe::new(HostPaths::new(dir.path()), Default::default());
        assert!(matches!(
            probe.check().await[0].outcome,
            Outcome::Unknown { .. }
        ));
    }
}
