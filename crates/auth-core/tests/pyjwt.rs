//! PyJWT (PyPI) as a real peer: it verifies tokens we sign, we verify tokens it signs, and
//! its `PyJWKClient` reads our JWK Set over HTTP. Needs `PEER_PYTHON` (a Python with the
//! packages of `.ci/requirements.txt`); `.ci/run` sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use auth_core::{Algorithm, Claims, Error, JwtIssuer, JwtVerifier, Key, KeySet};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];
const SECRET: [u8; 32] = *b"an hmac secret of thirty-two by!";

fn python() -> Option<String> {
    let python = std::env::var("PEER_PYTHON").ok();
    if python.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PEER_PYTHON must be set under CI=true"
        );
        eprintln!("skipped: PEER_PYTHON is not set");
    }
    python
}

fn peer(python: &str, command: &str, request: &Value) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pyjwt_peer.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn our_key(alg: Algorithm) -> Key {
    match alg {
        Algorithm::HS256 => Key::hmac("ours", alg, &SECRET).unwrap(),
        _ => Key::generate("ours", alg).unwrap(),
    }
}

fn key_for_peer(keys: &KeySet, alg: Algorithm) -> Value {
    match alg {
        Algorithm::HS256 => json!({ "secret_b64": URL_SAFE_NO_PAD.encode(SECRET) }),
        _ => keys.jwks()["keys"][0].clone(),
    }
}

#[test]
fn pyjwt_verifies_our_tokens() {
    let Some(python) = python() else { return };
    for alg in ALGORITHMS {
        let mut keys = KeySet::new();
        keys.rotate(our_key(alg)).unwrap();
        let mut claims = Claims::new("from-rust", SystemTime::now(), Duration::from_secs(600));
        claims.extra.insert("role".into(), json!("admin"));
        let token = JwtIssuer::new(keys.clone()).issue(&claims).unwrap();
        let request = json!({ "token": token, "alg": alg.name(), "key": key_for_peer(&keys, alg) });
        let verified = peer(&python, "verify", &request).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified["sub"], "from-rust", "{alg}");
        assert_eq!(verified["role"], "admin", "{alg}");

        // PyJWT refuses our token once tampered with.
        let mut tampered = token.clone().into_bytes();
        let middle = tampered.iter().position(|&b| b == b'.').unwrap() + 3;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let request = json!({
            "token": String::from_utf8(tampered).unwrap(),
            "alg": alg.name(),
            "key": key_for_peer(&keys, alg),
        });
        assert!(
            peer(&python, "verify", &request).is_err(),
            "{alg}: PyJWT accepted a tampered token"
        );
    }
}

#[test]
fn we_verify_pyjwt_tokens() {
    let Some(python) = python() else { return };
    for alg in ALGORITHMS {
        let signed = peer(
            &python,
            "sign",
            &json!({ "alg": alg.name(), "secret_b64": URL_SAFE_NO_PAD.encode(SECRET) }),
        )
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let token = signed["token"].as_str().unwrap();
        let mut keys = KeySet::new();
        match alg {
            Algorithm::HS256 => keys.insert(Key::hmac("py", alg, &SECRET).unwrap()).unwrap(),
            _ => {
                let jwk = serde_json::from_value(signed["jwk"].clone()).unwrap();
                keys.insert(Key::from_jwk(&jwk).unwrap()).unwrap();
            }
        }
        let claims: Claims = JwtVerifier::new(keys.clone())
            .verify(token, SystemTime::now())
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims.sub.as_deref(), Some("from-pyjwt"), "{alg}");

        // The same token under a key of ours with PyJWT's kid but another secret: refused.
        let mut wrong = KeySet::new();
        let other = match alg {
            Algorithm::HS256 => Key::hmac("py", alg, &[1u8; 32]).unwrap(),
            _ => Key::generate("py", alg).unwrap(),
        };
        wrong.insert(other).unwrap();
        assert!(matches!(
            JwtVerifier::new(wrong).verify::<Claims>(token, SystemTime::now()),
            Err(Error::InvalidSignature)
        ));
    }
}

/// Serves `body` as JSON to every request on a loopback port, in a thread.
fn serve_json(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    url
}

#[test]
fn pyjwt_jwk_client_reads_our_jwks() {
    let Some(python) = python() else { return };
    let mut keys = KeySet::new();
    keys.insert(Key::generate("rsa-old", Algorithm::RS256).unwrap())
        .unwrap();
    keys.insert(Key::generate("ec", Algorithm::ES256).unwrap())
        .unwrap();
    keys.rotate(Key::generate("ed-current", Algorithm::EdDSA).unwrap())
        .unwrap();
    let url = serve_json(keys.jwks().to_string());

    for kid in ["rsa-old", "ec", "ed-current"] {
        let mut signer = keys.clone();
        signer.set_active(kid).unwrap();
        let alg = signer.signing_key().unwrap().alg();
        let token = JwtIssuer::new(signer)
            .issue(&Claims::new(
                kid,
                SystemTime::now(),
                Duration::from_secs(600),
            ))
            .unwrap();
        let verified = peer(
            &python,
            "jwks",
            &json!({ "url": url, "token": token, "alg": alg.name() }),
        )
        .unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(verified["sub"], kid);
    }
}
