//! Go `time.Time` rendering: `String()` (`2006-01-02 15:04:05.999999999 -0700 MST`) and
//! `Format(layout)` with Go's reference-time layouts, in the process time zone (`TZ`, else
//! `/etc/localtime`, else UTC — Go's rules), read from `/usr/share/zoneinfo`.

use std::sync::OnceLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// A Go `time.Time` as the templates see it. `None` is Go's zero time (`0001-01-01 00:00:00
/// +0000 UTC`), which is what a null `metav1.Time` decodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime {
    pub ts: Option<Timestamp>,
    /// Render in UTC instead of the local zone (`.UTC`).
    pub utc: bool,
}

impl GoTime {
    pub fn local(ts: Timestamp) -> Self {
        GoTime {
            ts: Some(ts),
            utc: false,
        }
    }
    pub const ZERO: GoTime = GoTime {
        ts: None,
        utc: true,
    };
}

/// The process time zone, resolved once like Go's `time.Local`: `$TZ` (empty = UTC), else
/// `/etc/localtime`, else UTC.
pub fn local_zone() -> &'static TimeZone {
    static TZ: OnceLock<TimeZone> = OnceLock::new();
    TZ.get_or_init(|| match std::env::var("TZ") {
        Ok(v) if v.is_empty() => TimeZone::UTC,
        _ => TimeZone::try_system().unwrap_or(TimeZone::UTC),
    })
}

/// Broken-down time in one zone.
#[derive(Debug, Clone)]
pub struct Parts {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub nanos: u32,
    /// 0 = Sunday.
    pub weekday: u8,
    pub yday: u16,
    pub offset: i32,
    pub abbrev: String,
}

impl Parts {
    pub fn of(t: &GoTime, tz: &TimeZone) -> Parts {
        let Some(ts) = t.ts else {
            return Parts {
                year: 1,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                nanos: 0,
                weekday: 1, // 0001-01-01 was a Monday
                yday: 1,
                offset: 0,
                abbrev: "UTC".into(),
            };
        };
        let tz = if t.utc { &TimeZone::UTC } else { tz };
        let info = tz.to_offset_info(ts);
        let offset = info.offset().seconds();
        let abbrev = info.abbreviation().to_string();
        let dt = info.offset().to_datetime(ts);
        let abbrev = if abbrev.is_empty() || (tz == &TimeZone::UTC && offset == 0) {
            if offset == 0 {
                "UTC".to_string()
            } else {
                abbrev
            }
        } else {
            abbrev
        };
        Parts {
            year: i64::from(dt.year()),
            month: dt.month() as u8,
            day: dt.day() as u8,
            hour: dt.hour() as u8,
            minute: dt.minute() as u8,
            second: dt.second() as u8,
            nanos: dt.subsec_nanosecond() as u32,
            weekday: dt.weekday().to_sunday_zero_offset() as u8,
            yday: dt.day_of_year() as u16,
            offset,
            abbrev,
        }
    }
}

/// Go's `time.Time.String()` in the process zone.
pub fn go_string(t: &GoTime) -> String {
    format(t, "2006-01-02 15:04:05.999999999 -0700 MST", local_zone())
}

/// Go's `time.Time.Format(layout)` in zone `tz`.
pub fn format(t: &GoTime, layout: &str, tz: &TimeZone) -> String {
    format_parts(&Parts::of(t, tz), layout)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn pad(out: &mut String, v: i64, width: usize, fill: char) {
    let s = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    for _ in s.len()..width {
        out.push(fill);
    }
    out.push_str(&s);
}

/// Format broken-down time with a Go layout (pure; the chunk names are Go's).
pub fn format_parts(p: &Parts, layout: &str) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let b = layout.as_bytes();
    let mut i = 0;
    let starts = |i: usize, s: &str| layout[i..].starts_with(s);
    while i < b.len() {
        // Longest-match of the std chunks, in Go's order of precedence.
        macro_rules! emit {
            ($len:expr, $body:block) => {{
                $body;
                i += $len;
                continue;
            }};
        }
        match b[i] {
            b'J' => {
                if starts(i, "January") {
                    emit!(7, { out.push_str(MONTHS[p.month as usize - 1]) })
                }
                if starts(i, "Jan") {
                    emit!(3, { out.push_str(&MONTHS[p.month as usize - 1][..3]) })
                }
            }
            b'M' => {
                if starts(i, "Monday") {
                    emit!(6, { out.push_str(DAYS[p.weekday as usize]) })
                }
                if starts(i, "Mon") {
                    emit!(3, { out.push_str(&DAYS[p.weekday as usize][..3]) })
                }
                if starts(i, "MST") {
                    emit!(3, {
                        if p.abbrev.is_empty() {
                            zone_num(&mut out, p.offset, false, false, false);
                        } else {
                            out.push_str(&p.abbrev)
                        }
                    })
                }
            }
            b'0' => {
                if starts(i, "002") {
                    emit!(3, { pad(&mut out, i64::from(p.yday), 3, '0') })
                }
                if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) {
                    let (v, w) = match b[i + 1] {
                        b'1' => (i64::from(p.month), 2),
                        b'2' => (i64::from(p.day), 2),
                        b'3' => (i64::from(hour12(p.hour)), 2),
                        b'4' => (i64::from(p.minute), 2),
                        b'5' => (i64::from(p.second), 2),
                        _ => (p.year % 100, 2), // "06"
                    };
                    emit!(2, { pad(&mut out, v, w, '0') })
                }
            }
            b'1' => {
                if starts(i, "15") {
                    emit!(2, { pad(&mut out, i64::from(p.hour), 2, '0') })
                }
                emit!(1, { out.push_str(&p.month.to_string()) })
            }
            b'2' => {
                if starts(i, "2006") {
                    emit!(4, { pad(&mut out, p.year, 4, '0') })
                }
                emit!(1, { out.push_str(&p.day.to_string()) })
            }
            b'_' => {
                if starts(i, "_2006") {
                    // Go: "_" followed by the year.
                    emit!(5, {
                        out.push('_');
                        pad(&mut out, p.year, 4, '0')
                    })
                }
                if starts(i, "__2") {
                    emit!(3, { pad(&mut out, i64::from(p.yday), 3, ' ') })
                }
                if starts(i, "_2") {
                    emit!(2, { pad(&mut out, i64::from(p.day), 2, ' ') })
                }
            }
            b'3' => emit!(1, { out.push_str(&hour12(p.hour).to_string()) }),
            b'4' => emit!(1, { out.push_str(&p.minute.to_string()) }),
            b'5' => emit!(1, { out.push_str(&p.second.to_string()) }),
            b'P' if starts(i, "PM") => {
                emit!(2, { out.push_str(if p.hour >= 12 { "PM" } else { "AM" }) })
            }
            b'p' if starts(i, "pm") => {
                emit!(2, { out.push_str(if p.hour >= 12 { "pm" } else { "am" }) })
            }
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let rest = &layout[i + 1..];
                let spec: Option<(usize, bool, bool)> = if rest.starts_with("07:00:00") {
                    Some((9, true, true))
                } else if rest.starts_with("070000") {
                    Some((7, false, true))
                } else if rest.starts_with("07:00") {
                    Some((6, true, false))
                } else if rest.starts_with("0700") {
                    Some((5, false, false))
                } else if rest.starts_with("07") {
                    Some((3, false, false))
                } else {
                    None
                };
                if let Some((len, colon, secs)) = spec {
                    let short = len == 3;
                    emit!(len, {
                        if z && p.offset == 0 {
                            out.push('Z');
                        } else {
                            zone_num(&mut out, p.offset, colon, secs, short);
                        }
                    })
                }
            }
            b'.' | b',' => {
                // ".000" / ".999" (any run of 0s or 9s) after which no digit follows.
                let sep = b[i] as char;
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'0' || b[j] == b'9') {
                    let d = b[j];
                    while j < b.len() && b[j] == d {
                        j += 1;
                    }
                    if j >= b.len() || !b[j].is_ascii_digit() {
                        let n = j - i - 1;
                        let digits = format!("{:09}", p.nanos);
                        let mut frac = digits[..n.min(9)].to_string();
                        if d == b'9' {
                            let trimmed = frac.trim_end_matches('0').to_string();
                            frac = trimmed;
                            if !frac.is_empty() {
                                out.push(sep);
                                out.push_str(&frac);
                            }
                        } else {
                            out.push(sep);
                            out.push_str(&frac);
                        }
                        i = j;
                        continue;
                    }
                }
            }
            _ => {}
        }
        // Not a chunk: copy one character.
        let ch = layout[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn hour12(h: u8) -> u8 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

fn zone_num(out: &mut String, offset: i32, colon: bool, secs: bool, short: bool) {
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.unsigned_abs();
    out.push(sign);
    out.push_str(&format!("{:02}", o / 3600));
    if !short {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{:02}", (o / 60) % 60));
    }
    if secs {
        if colon {
            out.push(':');
        }
        out.push_str(&format!("{:02}", o % 60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").expect("tzdata")
    }

    #[test]
    fn string_matches_go() {
        let ts: Timestamp = "2026-11-30T08:00:05Z".parse().unwrap();
        let t = GoTime::local(ts);
        assert_eq!(
            format(&t, "2006-01-02 15:04:05.999999999 -0700 MST", &shanghai()),
            "2026-11-30 16:00:05 +0800 CST"
        );
        let ts: Timestamp = "2026-11-30T08:00:05.123400Z".parse().unwrap();
        assert_eq!(
            format(
                &GoTime::local(ts),
                "2006-01-02 15:04:05.999999999 -0700 MST",
                &shanghai()
            ),
            "2026-11-30 16:00:05.1234 +0800 CST"
        );
        assert_eq!(
            format(
                &GoTime::ZERO,
                "2006-01-02 15:04:05.999999999 -0700 MST",
                &shanghai()
            ),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            format(
                &GoTime::local(ts),
                "2006-01-02 15:04:05.999999999 -0700 MST",
                &TimeZone::UTC
            ),
            "2026-11-30 08:00:05.1234 +0000 UTC"
        );
    }

    #[test]
    fn layouts() {
        let ts: Timestamp = "2026-03-07T01:02:03.045Z".parse().unwrap();
        let t = GoTime::local(ts);
        let tz = shanghai();
        assert_eq!(format(&t, time_rfc3339(), &tz), "2026-03-07T09:02:03+08:00");
        assert_eq!(
            format(&t, "Mon Jan _2 15:04:05 2006", &tz),
            "Sat Mar  7 09:02:03 2026"
        );
        assert_eq!(format(&t, "3:04PM .000 ,99", &tz), "9:02AM .045 ,04");
        assert_eq!(format(&t, "Z07:00 002", &TimeZone::UTC), "Z 066");
        assert_eq!(format(&t, "January 2, 06", &tz), "March 7, 26");
    }

    fn time_rfc3339() -> &'static str {
        "2006-01-02T15:04:05Z07:00"
    }
}
