//! What the benchmarks read of a process they started (VmRSS, CPU time, children), and
//! their size knobs from the environment. Test-side helpers: the tests look at their own
//! children on this machine, not at a host root.

#![allow(clippy::disallowed_methods)] // getconf, as the benchmarks run on this machine

use std::process::Command;

/// `k` from the environment as a number, else `d`.
pub fn env_n(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// The process's resident set (`VmRSS`), in KiB; 0 once it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Fields of `/proc/<pid>/stat` after the command name (which may hold spaces and `)`):
/// index 0 is the state (field 3 of proc(5)).
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    rest.split_whitespace().map(String::from).collect()
}

/// utime + stime (fields 14 and 15), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let f = stat_fields(pid);
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if it cannot say).
pub fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    cpu_ticks(pid) as f64 / clock_ticks()
}

/// Processes whose parent is `pid`, seen by scanning the process table.
pub fn children(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let parent = pid.to_string();
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat_fields(*p).get(1) == Some(&parent))
        .count()
}
