//! UUIDv7 ids without a system call per id: `Uuid::now_v7` asks the OS for random bytes
//! every time (a `getrandom` call, a quarter of the embedded broker's hand-off cost).
//! Each thread keeps a counter (RFC 9562 section 6.2, method 1: a 42-bit counter in
//! `rand_a` and the top of `rand_b`, started at a random value each millisecond, so ids
//! of one thread sort in creation order) and a xorshift generator for the remaining 32
//! random bits, seeded once from the OS.

use std::cell::Cell;
use std::time::SystemTime;

use uuid::{Builder, Uuid};

thread_local! {
    /// (last millisecond, counter, generator state); the state is seeded on first use
    /// (a constant initializer spares every access the check for a lazy one).
    static STATE: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
}

fn seed() -> u64 {
    // One OS-random UUID per thread seeds the generator; never zero (xorshift's fixpoint).
    let bytes = Uuid::now_v7().into_bytes();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(bytes.get(8..16).unwrap_or(&[1; 8]));
    u64::from_le_bytes(seed) | 1
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A new UUIDv7, monotonic within the calling thread.
pub(crate) fn next_v7() -> Uuid {
    next_v7_and_millis().0
}

/// A new UUIDv7 and the current Unix time in milliseconds it was made at (one clock
/// read for both; the id's own timestamp can be a little behind it when the clock went
/// back).
pub(crate) fn next_v7_and_millis() -> (Uuid, u64) {
    let now = now_millis();
    (next_v7_at(now), now)
}

/// The current Unix time in milliseconds.
pub(crate) fn now_millis() -> u64 {
    crate::envelope::unix_millis(SystemTime::now())
}

/// A new UUIDv7 made at `now` (Unix milliseconds, read by the caller, once for a batch),
/// monotonic within the calling thread.
pub(crate) fn next_v7_at(now: u64) -> Uuid {
    STATE.with(|state| {
        let (last, counter, rng) = state.get();
        let rng = xorshift(if rng == 0 { seed() } else { rng });
        let (ms, counter) = if now > last {
            // A fresh random start with the top bit clear leaves room to count up.
            (now, rng >> 23)
        } else {
            // Same millisecond (or the clock went back): keep the order by counting.
            (last, (counter + 1) & ((1 << 42) - 1))
        };
        state.set((ms, counter, rng));
        let high = counter >> 30; // 12 bits: rand_a
        let low = counter & 0x3fff_ffff; // 30 bits: top of rand_b, after the variant
        let random = (rng >> 32) as u32;
        let r = random.to_be_bytes();
        let bytes = [
            (high >> 8) as u8,
            high as u8,
            (low >> 24) as u8,
            (low >> 16) as u8,
            (low >> 8) as u8,
            low as u8,
            r[0],
            r[1],
            r[2],
            r[3],
        ];
        Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn ids_are_version_7_and_increase_within_a_thread() {
        let ids: Vec<_> = (0..10_000).map(|_| super::next_v7()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
        assert!(
            ids.iter()
                .all(|u| u.get_variant() == uuid::Variant::RFC4122)
        );
    }

    #[test]
    fn ids_of_one_millisecond_are_distinct_and_increase() {
        let now = super::now_millis();
        let ids: Vec<_> = (0..10_000).map(|_| super::next_v7_at(now)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
    }
}
