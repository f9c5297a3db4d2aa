//! Helpers of the unit tests.

/// `count` deterministic pseudo-random inputs (xorshift64) of up to `max_len` symbols drawn
/// from `alphabet`: the property tests that feed garbage to the parsers.
pub fn arbitrary<T: Clone>(
    seed: u64,
    alphabet: &[T],
    max_len: usize,
    count: usize,
) -> impl Iterator<Item = Vec<T>> + '_ {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count).map(move |_| {
        let len = (next() % (max_len as u64 + 1)) as usize;
        (0..len)
            .map(|_| alphabet[(next() >> 11) as usize % alphabet.len()].clone())
            .collect()
    })
}
