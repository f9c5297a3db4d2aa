//! Calendar arithmetic and RFC 3339 (UTC) formatting/parsing, shared by the log sources,
//! the spot probe and the agent's reporters. Proleptic Gregorian, Hinnant's algorithms.

use std::time::{Duration, SystemTime};

/// Days since 1970-01-01 of a date (`m` 1..=12, `d` 1..=31).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn format(t: SystemTime, millis: bool) -> String {
    let ms = unix_millis(t);
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if millis {
        out.push_str(&format!(".{:03}", ms.rem_euclid(1000)));
    }
    out.push('Z');
    out
}

/// `2026-11-27T07:15:15Z`: second precision, the format of Kubernetes `Time`.
pub fn rfc3339(t: SystemTime) -> String {
    format(t, false)
}

/// `2026-11-27T07:15:15.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    format(t, true)
}

/// Parse `2026-01-02T03:04:05Z`, with `Z` or `±hh:mm`. A fraction of a second is accepted
/// and dropped: Kubernetes `Time` has second precision.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        rest = &r[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_782, 20_419, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        let x = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(x), "2024-02-29T12:34:56Z");
        assert_eq!(
            rfc3339_millis(x + Duration::from_millis(123)),
            "2024-02-29T12:34:56.123Z"
        );
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56Z"), Some(x));
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56.123456Z"), Some(x));
        assert_eq!(parse_rfc3339("2024-02-29T14:34:56+02:00"), Some(x));
        for bad in [
            "garbage",
            "2024-13-29T12:34:56Z",
            "2024-02-29T25:00:00Z",
            "2024-02-29T12:34:56",
            "2024-02-29T12:34:56+0200",
            "2024-02-29T12:34:56.Zé",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
