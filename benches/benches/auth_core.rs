//! auth-core beside jsonwebtoken (JWT verification), plus the session store's lookup rate
//! and the default argon2id hash time.
//!
//! Run: `cd benches && cargo bench --bench auth_core`

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use auth_core::{
    Algorithm, Claims, JwtIssuer, JwtVerifier, Key, KeySet, MemoryStore, Passwords, SessionConfig,
    Sessions,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Drives a future that completes without waiting (the memory store never waits).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

fn oct_jwk(secret: &[u8]) -> jsonwebtoken::jwk::Jwk {
    use base64::Engine as _;
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    serde_json::from_value(serde_json::json!({"kty": "oct", "k": k, "alg": "HS256"})).unwrap()
}

fn jwt(c: &mut Criterion) {
    let now = SystemTime::now();
    for (alg, jalg) in [
        (Algorithm::HS256, jsonwebtoken::Algorithm::HS256),
        (Algorithm::ES256, jsonwebtoken::Algorithm::ES256),
    ] {
        let key = match alg {
            Algorithm::HS256 => Key::hmac("k1", alg, &[7u8; 32]).unwrap(),
            _ => Key::generate("k1", alg).unwrap(),
        };
        let jwk: jsonwebtoken::jwk::Jwk = match alg {
            Algorithm::HS256 => oct_jwk(&[7u8; 32]),
            _ => serde_json::from_value(key.public_jwk().unwrap()).unwrap(),
        };
        let mut keys = KeySet::new();
        keys.rotate(key).unwrap();
        let token = JwtIssuer::new(keys.clone())
            .issue(&Claims::new("bench-user", now, Duration::from_secs(3600)))
            .unwrap();
        let ours = JwtVerifier::new(keys);
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let validation = jsonwebtoken::Validation::new(jalg);

        let mut group = c.benchmark_group(format!("jwt_verify_{}", alg.name()));
        group.bench_function("auth-core", |b| {
            b.iter(|| black_box(ours.verify::<Claims>(black_box(&token), now).unwrap()))
        });
        group.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Claims>(black_box(&token), &decoding, &validation)
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
}

fn sessions(c: &mut Criterion) {
    let sessions = Sessions::new(MemoryStore::new(), SessionConfig::default());
    let now = SystemTime::now();
    let ids: Vec<String> = (0..10_000)
        .map(|n| {
            let mut session = ready(sessions.load(None, now)).unwrap();
            session.insert("n", &n).unwrap();
            session.login(&format!("user{n}")).unwrap();
            ready(sessions.save(&mut session, now)).unwrap();
            session.id().to_string()
        })
        .collect();
    let mut group = c.benchmark_group("session_lookup");
    let mut next = 0usize;
    group.bench_function("memory_store_load", |b| {
        b.iter(|| {
            next = (next + 1) % ids.len();
            let session = ready(sessions.load(Some(&ids[next]), now)).unwrap();
            black_box(session.user().is_some())
        })
    });
    group.finish();
}

fn passwords(c: &mut Criterion) {
    let passwords = Passwords::default();
    let stored = passwords.hash("correct horse battery staple").unwrap();
    let mut group = c.benchmark_group("argon2id_default");
    group.sample_size(10);
    group.bench_function("hash", |b| {
        b.iter(|| black_box(passwords.hash("correct horse battery staple").unwrap()))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            black_box(
                passwords
                    .verify("correct horse battery staple", &stored)
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, jwt, sessions, passwords);
criterion_main!(benches);
