//! Time formatting and parsing shared by the log sources, the spot probe and the agent's
//! reporters, on jiff (already in the build through k8s-openapi): RFC 3339 in UTC, and
//! conversions between `SystemTime` and jiff's timestamps.

use std::time::SystemTime;

pub use jiff::{civil, tz, Timestamp};

/// `t` as a jiff timestamp (out of jiff's range: the nearest end).
pub fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(if t < SystemTime::UNIX_EPOCH {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// `2026-11-27T07:15:15Z`: second precision, the format of Kubernetes `Time`.
pub fn rfc3339(t: SystemTime) -> String {
    timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-27T07:15:15.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    timestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%3fZ").to_string()
}

/// Parse an RFC 3339 time with `Z` or an offset. A fraction of a second is accepted and
/// dropped: Kubernetes `Time` has second precision.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let t: Timestamp = s.parse().ok()?;
    Timestamp::from_second(t.as_second())
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_and_parses() {
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
            "2023-02-29T12:34:56Z",
            "2024-02-29T12:34:56.Zé",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
