//! The eventer's MySQL sink URI (`nodeprobe::eventer::sinks::mysql::parse_dsn`, from
//! `--sink=mysql:…` after `$VAR` expansion).
//!
//! * any text: parsed or refused with an error naming the sink, never a panic;
//! * a parsed DSN has a user, a database, a safe table name (it is put in SQL), session
//!   variables with identifier names, and a batch and buffer in range; its `Debug` and
//!   description do not depend on the password;
//! * round trip: the URL form written back from the parts (user and password
//!   percent-encoded) parses to the same user, password, host, port and database.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodeprobe::eventer::sinks::mysql::{is_identifier, parse_dsn, upsert_sql};

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let (d, _) = match parse_dsn(raw, "sink mysql") {
        Err(e) => {
            assert!(e.to_string().starts_with("sink mysql: "), "{e}");
            return;
        }
        Ok(x) => x,
    };
    assert!(!d.user.is_empty() && !d.database.is_empty(), "{d:?}");
    assert!(is_identifier(&d.table), "{:?}", d.table);
    assert!((1..=5000).contains(&d.batch) && d.buffer >= 1);
    for (k, v) in &d.session {
        assert!(is_identifier(k), "{k:?}");
        assert!(!v.contains(';') && !v.contains('\\'), "{v:?}");
    }
    let sql = upsert_sql(&d.table, 1);
    assert!(sql.starts_with(&format!("INSERT INTO `{}` (", d.table)));
    // The password has no part in what is shown: the same text with any other password.
    let shown = format!("{d:?} {}", d.describe());
    let other = nodeprobe::eventer::sinks::mysql::Dsn {
        password: format!("{}\u{1}x", d.password),
        ..d.clone()
    };
    assert_eq!(shown, format!("{other:?} {}", other.describe()));
    if d.socket.is_none() && !d.database.contains(['/', '?', '%']) {
        let host = if d.host.contains(':') {
            format!("[{}]", d.host)
        } else {
            d.host.clone()
        };
        let again = format!(
            "mysql://{}:{}@{host}:{}/{}",
            enc(&d.user),
            enc(&d.password),
            d.port,
            d.database
        );
        if let Ok((b, _)) = parse_dsn(&again, "sink mysql") {
            assert_eq!(
                (&b.user, &b.password, &b.host, b.port, &b.database),
                (&d.user, &d.password, &d.host, d.port, &d.database),
                "{again}"
            );
        }
    }
});
