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
