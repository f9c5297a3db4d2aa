//! Helpers shared by the fuzz targets (`fuzz_targets/*.rs`, one per parser family).
//!
//! Every target asserts properties, not only "no panic": round trips where an encoder
//! exists (real or the wire format rebuilt here), valid JSON where JSON is promised, and
//! output bounded by its input. Time per input is bounded by libFuzzer's `-timeout` and
//! memory by `-rss_limit_mb` (see `integration/fuzz.sh`).

pub use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};

/// Lossy UTF-8, as every log source reads bytes.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `text` is at most `max` bytes and on one line (no control character but tab): what a
/// condition message or an error quoting outside bytes must be.
pub fn assert_one_line(what: &str, text: &str, max: usize) {
    assert!(
        text.len() <= max,
        "{what}: {} bytes, more than {max}: {:?}...",
        text.len(),
        text.chars().take(200).collect::<String>()
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\t'),
        "{what}: control character in {text:?}"
    );
}

/// A string from the fuzzer's bytes, at most `max` bytes long.
pub fn string(u: &mut Unstructured<'_>, max: usize) -> String {
    let s: String = u.arbitrary().unwrap_or_default();
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A string of characters from `alphabet` (1..=max of them).
pub fn word(u: &mut Unstructured<'_>, alphabet: &[u8], max: usize) -> String {
    let n = u.int_in_range(1..=max.max(1)).unwrap_or(1);
    (0..n)
        .map(|_| char::from(*u.choose(alphabet).unwrap_or(&alphabet[0])))
        .collect()
}

/// Bytes from the fuzzer (at most `max`).
pub fn bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let n = u.int_in_range(0..=max).unwrap_or(0);
    u.bytes(n.min(u.len()))
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// A core/v1 Event whose strings come from the fuzzer (the eventer's input).
pub fn event(u: &mut Unstructured<'_>) -> k8s_openapi::api::core::v1::Event {
    use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    let time = |u: &mut Unstructured<'_>| {
        u.int_in_range(-62_135_596_800i64..=253_402_300_799)
            .ok()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(Time)
    };
    Event {
        message: Some(string(u, 4096)),
        reason: Some(string(u, 64)),
        type_: Some(match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => "Warning".to_string(),
            1 => "Normal".to_string(),
            _ => string(u, 16),
        }),
        metadata: ObjectMeta {
            name: Some(string(u, 64)),
            namespace: Some(string(u, 64)),
            uid: Some(string(u, 40)),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some(string(u, 32)),
            name: Some(string(u, 64)),
            namespace: Some(string(u, 64)),
            ..Default::default()
        },
        source: Some(EventSource {
            component: Some(string(u, 32)),
            host: Some(string(u, 64)),
        }),
        count: u.arbitrary().ok(),
        first_timestamp: time(u),
        last_timestamp: time(u),
        ..Default::default()
    }
}
