//! The host-state probes' parsers of procfs text: `fs/file-nr` (`fd_pressure`), pressure
//! files (`psi`), `mountinfo` (`readonly_mounts`), a task's `stat`, `sched` and `schedstat`
//! (`hung_tasks`).
//!
//! * any bytes: no panic; a parsed pressure figure is finite and not negative; every
//!   non-empty mountinfo line is either a mount or an error, never both or neither; the
//!   mount holding a path is on a path boundary of it.
//! * round trips: a `file-nr`, a pressure file, a mountinfo line (mount point with the
//!   kernel's octal escapes) and a `stat` line (any command name) written as the kernel
//!   writes them give their values back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe_fuzz::{string, Unstructured};
use probes::fd_pressure::parse_file_nr;
use probes::hung_tasks::{parse_exec_start_ms, parse_schedstat_switches, parse_stat};
use probes::psi::parse_pressure;
use probes::readonly_mounts::{holding, parse_mountinfo};

/// The kernel's mountinfo escaping (`mangle()` in fs/proc_namespace.c): space, tab,
/// newline and backslash as three octal digits.
fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn round_trip(u: &mut Unstructured<'_>) -> Option<()> {
    // file-nr
    let (a, f, m): (u64, u64, u64) = (
        u.arbitrary().ok()?,
        u.arbitrary().ok()?,
        u.arbitrary().ok()?,
    );
    assert_eq!(
        parse_file_nr(&format!("{a}\t{f}\t{m}\n")),
        Ok((a.saturating_sub(f), m))
    );
    // pressure (the kernel prints two decimals)
    let pct = |u: &mut Unstructured<'_>| -> Option<f64> {
        Some(f64::from(u.int_in_range(0..=10_000u32).ok()?) / 100.0)
    };
    let (s10, s60, s300, f60) = (pct(u)?, pct(u)?, pct(u)?, pct(u)?);
    let with_full = u.arbitrary::<bool>().ok()?;
    let mut text = format!("some avg10={s10:.2} avg60={s60:.2} avg300={s300:.2} total=12345\n");
    if with_full {
        text.push_str(&format!(
            "full avg10=0.00 avg60={f60:.2} avg300=0.00 total=0\n"
        ));
    }
    let p = parse_pressure(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(
        (p.some.avg10, p.some.avg60, p.some.avg300),
        (s10, s60, s300)
    );
    assert_eq!(p.full.map(|f| f.avg60), with_full.then_some(f60));
    // mountinfo: any mount point name
    let name = string(u, 60).replace('\0', "");
    let point = format!("/{name}");
    let ro = u.arbitrary::<bool>().ok()?;
    let line = format!(
        "36 25 8:1 / {} {},relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro",
        escape(&point),
        if ro { "ro" } else { "rw" }
    );
    let (mounts, errors) = parse_mountinfo(&line);
    assert!(errors.is_empty(), "{line:?}: {errors:?}");
    assert_eq!(mounts.len(), 1, "{line:?}");
    assert_eq!(mounts[0].mount_point, point, "{line:?}");
    assert_eq!(mounts[0].read_only(), ro);
    // stat: any command name (the kernel cuts it at 15 bytes, but parentheses stay)
    let comm = string(u, 15).replace('\0', "");
    let start: u64 = u.arbitrary().ok()?;
    let stat = format!(
        "42 ({comm}) D 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} 1000 200 1 1"
    );
    let t = parse_stat(stat.as_bytes()).unwrap_or_else(|| panic!("{stat:?}"));
    assert_eq!(
        (t.comm.as_str(), t.state, t.start),
        (comm.as_str(), 'D', start)
    );
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_file_nr(&text);
    if let Ok(p) = parse_pressure(&text) {
        for a in [Some(p.some), p.full].into_iter().flatten() {
            for v in [a.avg10, a.avg60, a.avg300] {
                assert!(v.is_finite() && v >= 0.0, "{v} from {text:?}");
            }
        }
    }
    let (mounts, errors) = parse_mountinfo(&text);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(mounts.len() + errors.len(), lines, "{text:?}");
    if let Some(first) = text.lines().next() {
        if let Some(m) = holding(&mounts, first) {
            let mp = m.mount_point.trim_end_matches('/');
            let p = first.trim_end_matches('/');
            assert!(
                mp.is_empty() || p == mp || p.starts_with(&format!("{mp}/")),
                "{mp:?} does not hold {p:?}"
            );
        }
    }
    let _ = parse_stat(data);
    if let Some(ms) = parse_exec_start_ms(&text) {
        assert!(ms.is_finite() && ms >= 0.0);
    }
    let _ = parse_schedstat_switches(&text);
    round_trip(&mut Unstructured::new(data));
});
