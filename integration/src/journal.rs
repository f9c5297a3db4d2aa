//! Real journal files for tests, written by Debian's `systemd-journal-remote` from the
//! journal export format (no journald needed).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// `systemd-journal-remote`, where Debian installs it.
pub const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// Write journal entries into `dir/<name>.journal`. `entries` are (SYSLOG_IDENTIFIER,
/// MESSAGE); they are written now, a microsecond apart.
pub fn write_journal(dir: &Path, name: &str, entries: &[(&str, &str)]) {
    let now = SystemTime::now();
    let timed: Vec<(&str, &str, SystemTime)> = entries
        .iter()
        .enumerate()
        .map(|(i, (ident, msg))| (*ident, *msg, now + Duration::from_micros(i as u64)))
        .collect();
    write_journal_at(dir, name, &timed);
}

/// Write journal entries (SYSLOG_IDENTIFIER, MESSAGE, realtime) into `dir/<name>.journal`.
pub fn write_journal_at(dir: &Path, name: &str, entries: &[(&str, &str, SystemTime)]) {
    let boot = std::fs::read_to_string(Path::new("/").join("proc/sys/kernel/random/boot_id"))
        .unwrap()
        .trim()
        .replace('-', "");
    let mut export = String::new();
    for (i, (ident, msg, at)) in entries.iter().enumerate() {
        let usec = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros();
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={boot}\nSYSLOG_IDENTIFIER={ident}\nMESSAGE={msg}\n\n",
            1000 + i
        ));
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg("-o")
        .arg(dir.join(format!("{name}.journal")))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-journal-remote");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "systemd-journal-remote failed"
    );
}
