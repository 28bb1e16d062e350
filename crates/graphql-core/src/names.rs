//! A fast hash map for the schema's name indexes.
//!
//! Names are short, chosen by the schema's author (not by clients), and looked up on every
//! request; FNV-1a is several times faster than SipHash on them. Clients cannot choose
//! the keys stored, so hash flooding does not apply.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` keyed by schema names.
pub(crate) type NameMap<V> = HashMap<String, V, BuildHasherDefault<Fnv>>;
