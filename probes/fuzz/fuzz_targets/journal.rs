//! The journal as the journald monitor reads it: any bytes as a `*.journal` file opened with
//! `sdjournal` (the pure-Rust reader the agent links), queried the monitor's way
//! (`probes::logs::journald`: all entries, then `SYSLOG_IDENTIFIER` = one value after a
//! cursor), fields read as the monitor reads them; journal cursors as saved in the
//! state file; and the state file itself (`probes::logs::cursor`).
//!
//! * a corrupt journal is an error or fewer entries, never a panic or an endless walk.
//! * every entry's cursor round-trips through its text; any cursor text parses or is
//!   refused, and a parsed one round-trips.
//! * a state file loads or is refused; a loaded one is saved and loads back equal.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use probes::logs::cursor;
use sdjournal::{Cursor, Journal};

/// At most this many entries are walked per input.
const MAX_ENTRIES: usize = 4096;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("nodeprobe-fuzz-journal-{}", std::process::id()));
        std::fs::create_dir_all(d.join("journal")).expect("temp dir");
        d
    })
}

fn cursor_round_trip(c: &Cursor) {
    let text = c.to_string();
    let again = Cursor::parse(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    assert_eq!(&again, c, "{text:?}");
}

/// What the monitor does with an entry's fields.
fn read_entry(message: Option<&[u8]>, realtime_usec: u64) {
    let msg = message
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(realtime_usec);
    assert!(at >= SystemTime::UNIX_EPOCH);
    assert!(msg.len() <= 3 * message.map_or(0, <[u8]>::len));
}

fuzz_target!(|data: &[u8]| {
    // a cursor as text (state files hold them)
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = Cursor::parse(&text) {
        cursor_round_trip(&c);
    }

    // the state file
    let state = dir().join("state.json");
    std::fs::write(&state, data).expect("write state");
    if let Ok(Some(s)) = cursor::load(&state) {
        let again = dir().join("state-again.json");
        cursor::save(&again, &s).expect("save state");
        assert_eq!(cursor::load(&again).expect("load saved state"), Some(s));
    }

    // the journal file
    let file = dir().join("journal").join("fuzz.journal");
    std::fs::write(&file, data).expect("write journal");
    let Ok(journal) = Journal::open_dir(dir().join("journal")) else {
        return;
    };
    let mut first: Option<Cursor> = None;
    if let Ok(iter) = journal.query().iter() {
        for item in iter.take(MAX_ENTRIES) {
            let Ok(entry) = item else { continue };
            if let Ok(c) = entry.cursor() {
                cursor_round_trip(&c);
                first.get_or_insert(c);
            }
            read_entry(entry.get("MESSAGE"), entry.realtime_usec());
        }
    }
    let mut q = journal.query();
    q.match_exact("SYSLOG_IDENTIFIER", b"dockerd");
    match first {
        Some(c) => {
            q.after_cursor(c);
        }
        None => {
            q.since_realtime(0);
        }
    }
    if let Ok(iter) = q.iter() {
        for item in iter.take(MAX_ENTRIES) {
            let Ok(entry) = item else { continue };
            read_entry(entry.get("MESSAGE"), entry.realtime_usec());
        }
    }
});
