//! Helpers shared by the unit tests.
#![allow(clippy::indexing_slicing)]

/// 20,000 copies of `head`, each with one to four bytes replaced (by one of `alphabet`),
/// dropped or doubled, chosen by a generator seeded with `seed`.
pub(crate) fn mangled(head: &[u8], seed: u64, alphabet: &[u8]) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as usize
    };
    (0..20_000).map(move |_| {
        let mut bytes = head.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = next() % bytes.len();
            match next() % 3 {
                0 => bytes[at] = alphabet[next() % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, bytes[at]),
            }
        }
        bytes
    })
}
