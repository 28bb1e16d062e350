//! Server-side `Cookie` header parsing, plus signed/private verification of every value.
#![no_main]

use cookie_jar::{KeyRing, RequestCookies};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cookies = RequestCookies::parse(data);
    let Ok(ring) = KeyRing::from_bytes(&[7u8; 64]) else {
        return;
    };
    for (name, value) in cookies.iter() {
        let _ = (ring.verify(name, value), ring.open(name, value));
    }
});
