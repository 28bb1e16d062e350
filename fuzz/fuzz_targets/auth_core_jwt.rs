#![no_main]
//! Any text as a JWT: verification must answer Ok or Err, never panic, in bounded time.

use std::sync::LazyLock;
use std::time::{Duration, UNIX_EPOCH};

use auth_core::{Algorithm, JwtVerifier, Key, KeySet};
use libfuzzer_sys::fuzz_target;

static VERIFIER: LazyLock<JwtVerifier> = LazyLock::new(|| {
    let mut keys = KeySet::new();
    let _ = keys.rotate(Key::hmac("k1", Algorithm::HS256, &[7u8; 32]).expect("static key"));
    let _ = keys.insert(Key::ed25519_from_seed("k2", &[9u8; 32]).expect("static key"));
    JwtVerifier::new(keys)
        .with_issuer("iss")
        .with_audience("aud")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let _ = VERIFIER.verify::<serde_json::Value>(token, now);
    }
});
