//! JWT issuing and verification: RFC examples byte for byte, rotation, JWKS, and one test per
//! attack class, each asserting the specific rejection.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::{Algorithm, Audience, Claims, Error, JwtIssuer, JwtVerifier, Key, KeySet};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn keyset(alg: Algorithm) -> KeySet {
    let mut keys = KeySet::new();
    keys.rotate(Key::generate("k1", alg).unwrap()).unwrap();
    keys
}

/// A token with any header and claims, signed by `key` (or with `signature` verbatim).
fn forge(header: serde_json::Value, claims: serde_json::Value, key: &Key) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = key.sign_raw(input.as_bytes()).unwrap();
    format!("{input}.{signature}")
}

fn valid_claims() -> serde_json::Value {
    json!({ "sub": "alice", "exp": NOW + 600 })
}

/// RFC 7520 section 4.4: HMAC-SHA2 integrity protection, reproduced byte for byte.
#[test]
fn rfc7520_section_4_4_hs256() {
    let secret = URL_SAFE_NO_PAD
        .decode("hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg")
        .unwrap();
    let key = Key::hmac(
        "018c0ae5-4d9b-471b-bfd6-eef314bc7037",
        Algorithm::HS256,
        &secret,
    )
    .unwrap();
    let header = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9";
    assert_eq!(
        URL_SAFE_NO_PAD.decode(header).unwrap(),
        br#"{"alg":"HS256","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037"}"#
    );
    let payload = "It\u{2019}s a dangerous business, Frodo, going out your door. You step onto the road, and if you don't keep your feet, there\u{2019}s no knowing where you might be swept off to.";
    let input = format!("{header}.{}", b64(payload));
    let signature = key.sign_raw(input.as_bytes()).unwrap();
    assert_eq!(signature, "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0");
    assert!(key.verify_raw(input.as_bytes(), &signature).unwrap());
}

/// RFC 8037 appendix A.4: Ed25519 signing, reproduced byte for byte, and A.2's public key.
#[test]
fn rfc8037_appendix_a4_ed25519() {
    let seed: [u8; 32] = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap()
        .try_into()
        .unwrap();
    let key = Key::ed25519_from_seed("rfc8037", &seed).unwrap();
    let jwk = key.public_jwk().unwrap();
    assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert_eq!(jwk["crv"], "Ed25519");
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    assert_eq!(
        URL_SAFE_NO_PAD.decode("eyJhbGciOiJFZERTQSJ9").unwrap(),
        br#"{"alg":"EdDSA"}"#
    );
    let signature = key.sign_raw(input.as_bytes()).unwrap();
    assert_eq!(
        signature,
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

#[test]
fn every_algorithm_round_trips_with_kid() {
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let keys = keyset(alg);
        let token = JwtIssuer::new(keys.clone())
            .issue(&Claims::new("bob", at(NOW), Duration::from_secs(60)))
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], "k1", "{alg}");
        assert_eq!(header["alg"], alg.name(), "{alg}");
        let claims: Claims = JwtVerifier::new(keys).verify(&token, at(NOW)).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("bob"), "{alg}");
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_until_the_key_is_removed() {
    let mut keys = keyset(Algorithm::ES256);
    let old_token = JwtIssuer::new(keys.clone())
        .issue(&Claims::new("carol", at(NOW), Duration::from_secs(60)))
        .unwrap();
    keys.rotate(Key::generate("k2", Algorithm::EdDSA).unwrap())
        .unwrap();
    let new_token = JwtIssuer::new(keys.clone())
        .issue(&Claims::new("carol", at(NOW), Duration::from_secs(60)))
        .unwrap();
    assert!(new_token.starts_with(&b64(r#"{"alg":"EdDSA","kid":"k2","typ":"JWT"}"#)));
    let verifier = JwtVerifier::new(keys.clone());
    verifier.verify::<Claims>(&old_token, at(NOW)).unwrap();
    verifier.verify::<Claims>(&new_token, at(NOW)).unwrap();

    keys.remove("k1").unwrap();
    let verifier = JwtVerifier::new(keys.clone());
    assert!(matches!(
        verifier.verify::<Claims>(&old_token, at(NOW)),
        Err(Error::UnknownKey)
    ));
    verifier.verify::<Claims>(&new_token, at(NOW)).unwrap();
    assert_eq!(keys.signing_key().unwrap().kid(), "k2");
    assert!(
        keys.insert(Key::generate("k2", Algorithm::ES256).unwrap())
            .is_err()
    );
}

#[test]
fn jwks_exports_public_keys_only_and_imports_for_verification() {
    let mut keys = KeySet::new();
    keys.insert(Key::generate("hmac", Algorithm::HS256).unwrap())
        .unwrap();
    keys.insert(Key::generate("rsa", Algorithm::RS256).unwrap())
        .unwrap();
    keys.insert(Key::generate("ec", Algorithm::ES384).unwrap())
        .unwrap();
    keys.rotate(Key::generate("ed", Algorithm::EdDSA).unwrap())
        .unwrap();
    let jwks = keys.jwks();
    let exported: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert_eq!(exported, ["rsa", "ec", "ed"]);
    for key in jwks["keys"].as_array().unwrap() {
        assert_eq!(key["use"], "sig");
        assert!(key.get("d").is_none(), "private material leaked: {key}");
        assert!(key.get("k").is_none());
    }

    let (imported, skipped) = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(skipped, 0);
    let token = JwtIssuer::new(keys.clone())
        .issue(&Claims::new("dave", at(NOW), Duration::from_secs(60)))
        .unwrap();
    let claims: Claims = JwtVerifier::new(imported.clone())
        .verify(&token, at(NOW))
        .unwrap();
    assert_eq!(claims.sub.as_deref(), Some("dave"));
    // An imported set verifies but cannot sign.
    assert!(matches!(
        JwtIssuer::new(imported).issue(&Claims::default()),
        Err(Error::NoSigningKey)
    ));

    // Encryption keys, symmetric keys and RSA keys without alg are skipped, not trusted.
    let mut odd = jwks.clone();
    let mut enc = odd["keys"][0].clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut no_alg = odd["keys"][0].clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    no_alg["kid"] = json!("no-alg");
    let oct = json!({"kty": "oct", "k": b64([7u8; 32]), "kid": "oct", "alg": "HS256"});
    odd["keys"] = json!([enc, no_alg, oct]);
    let (set, skipped) = KeySet::from_jwks(odd.to_string().as_bytes()).unwrap();
    assert_eq!(skipped, 3);
    assert!(set.get("oct").is_none());
    assert!(KeySet::from_jwks(b"[1,2,3]").is_err());
}

// --- Attack classes --------------------------------------------------------------------------

#[test]
fn alg_none_is_refused() {
    let keys = keyset(Algorithm::HS256);
    let verifier = JwtVerifier::new(keys);
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"none","kid":"k1"}"#),
        b64(valid_claims().to_string())
    );
    // The classic form: empty signature.
    assert!(matches!(
        verifier.verify::<Claims>(&format!("{input}."), at(NOW)),
        Err(Error::MalformedToken(_))
    ));
    // With some signature: the alg does not match the key's.
    assert!(matches!(
        verifier.verify::<Claims>(&format!("{input}.AAAA"), at(NOW)),
        Err(Error::AlgorithmMismatch)
    ));
    // Case games do not help.
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"nOnE","kid":"k1"}"#),
        b64(valid_claims().to_string())
    );
    assert!(matches!(
        verifier.verify::<Claims>(&format!("{input}.AAAA"), at(NOW)),
        Err(Error::AlgorithmMismatch)
    ));
}

/// HS256 "signed" with the public key of an RSA or EC key: the key's algorithm decides.
#[test]
fn hmac_with_a_public_key_is_refused() {
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let keys = keyset(alg);
        let public = keys.jwks()["keys"][0].to_string();
        let mut secret = public.into_bytes();
        secret.resize(secret.len().max(32), b' ');
        let attacker = Key::hmac("k1", Algorithm::HS256, &secret).unwrap();
        let token = forge(
            json!({"alg": "HS256", "kid": "k1"}),
            valid_claims(),
            &attacker,
        );
        assert!(
            matches!(
                JwtVerifier::new(keys).verify::<Claims>(&token, at(NOW)),
                Err(Error::AlgorithmMismatch)
            ),
            "{alg}"
        );
    }
}

#[test]
fn a_token_signed_by_another_key_with_our_kid_is_refused() {
    let keys = keyset(Algorithm::ES256);
    let attacker = Key::generate("k1", Algorithm::ES256).unwrap();
    let token = forge(
        json!({"alg": "ES256", "kid": "k1"}),
        valid_claims(),
        &attacker,
    );
    assert!(matches!(
        JwtVerifier::new(keys).verify::<Claims>(&token, at(NOW)),
        Err(Error::InvalidSignature)
    ));
}

#[test]
fn kid_is_only_ever_a_lookup_key() {
    let keys = keyset(Algorithm::HS256);
    let attacker = Key::hmac("x", Algorithm::HS256, &[0u8; 32]).unwrap();
    for kid in [
        "../../../../dev/null",
        "' OR '1'='1' --",
        "k1\u{0}",
        "",
        "K1",
    ] {
        let token = forge(
            json!({"alg": "HS256", "kid": kid}),
            valid_claims(),
            &attacker,
        );
        assert!(
            matches!(
                JwtVerifier::new(keys.clone()).verify::<Claims>(&token, at(NOW)),
                Err(Error::UnknownKey)
            ),
            "{kid:?}"
        );
    }
    let token = forge(json!({"alg": "HS256"}), valid_claims(), &attacker);
    assert!(matches!(
        JwtVerifier::new(keys).verify::<Claims>(&token, at(NOW)),
        Err(Error::MissingKeyId)
    ));
}

/// `jku`, `x5u` and an embedded `jwk` are ignored: nothing is fetched, and an attacker's
/// embedded key is not used.
#[test]
fn jku_x5u_and_embedded_jwk_are_never_used() {
    let keys = keyset(Algorithm::ES256);
    let our_key = keys.get("k1").unwrap();
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", trap.local_addr().unwrap());

    // Signed by us, with fetchable headers: verifies, and nothing connects to the trap.
    let token = forge(
        json!({"alg": "ES256", "kid": "k1", "jku": url, "x5u": url}),
        valid_claims(),
        our_key,
    );
    JwtVerifier::new(keys.clone())
        .verify::<Claims>(&token, at(NOW))
        .unwrap();
    assert!(
        trap.accept().is_err(),
        "the verifier connected to the jku/x5u URL"
    );

    // Signed by an attacker who embeds their own public key: refused.
    let attacker = Key::generate("k1", Algorithm::ES256).unwrap();
    let token = forge(
        json!({"alg": "ES256", "kid": "k1", "jwk": attacker.public_jwk().unwrap(), "jku": url}),
        valid_claims(),
        &attacker,
    );
    assert!(matches!(
        JwtVerifier::new(keys).verify::<Claims>(&token, at(NOW)),
        Err(Error::InvalidSignature)
    ));
    assert!(trap.accept().is_err());
}

#[test]
fn unknown_crit_is_refused() {
    let keys = keyset(Algorithm::HS256);
    let key = keys.get("k1").unwrap();
    let token = forge(
        json!({"alg": "HS256", "kid": "k1", "crit": ["exp-ext"], "exp-ext": 1}),
        valid_claims(),
        key,
    );
    match JwtVerifier::new(keys.clone()).verify::<Claims>(&token, at(NOW)) {
        Err(Error::UnsupportedCritical(name)) => assert_eq!(name, "exp-ext"),
        other => panic!("{other:?}"),
    }
    let token = forge(
        json!({"alg": "HS256", "kid": "k1", "crit": []}),
        valid_claims(),
        key,
    );
    assert!(matches!(
        JwtVerifier::new(keys).verify::<Claims>(&token, at(NOW)),
        Err(Error::UnsupportedCritical(_))
    ));
}

#[test]
fn time_claims_are_enforced_with_small_leeway() {
    let keys = keyset(Algorithm::HS256);
    let key = keys.get("k1").unwrap();
    let verifier = JwtVerifier::new(keys.clone());
    let header = json!({"alg": "HS256", "kid": "k1"});

    let expired = forge(header.clone(), json!({"exp": NOW - 6}), key);
    assert!(matches!(
        verifier.verify::<Claims>(&expired, at(NOW)),
        Err(Error::Expired)
    ));
    let within_leeway = forge(header.clone(), json!({"exp": NOW - 4}), key);
    verifier.verify::<Claims>(&within_leeway, at(NOW)).unwrap();

    let early = forge(
        header.clone(),
        json!({"exp": NOW + 60, "nbf": NOW + 10}),
        key,
    );
    assert!(matches!(
        verifier.verify::<Claims>(&early, at(NOW)),
        Err(Error::NotYetValid)
    ));
    verifier.verify::<Claims>(&early, at(NOW + 10)).unwrap();

    let no_exp = forge(header.clone(), json!({"sub": "x"}), key);
    assert!(matches!(
        verifier.verify::<Claims>(&no_exp, at(NOW)),
        Err(Error::MissingClaim("exp"))
    ));
    let string_exp = forge(header.clone(), json!({"exp": "soon"}), key);
    assert!(matches!(
        verifier.verify::<Claims>(&string_exp, at(NOW)),
        Err(Error::MalformedToken(_)) | Err(Error::MissingClaim("exp"))
    ));
    // Fractional NumericDate values are allowed (RFC 7519 section 2).
    let fractional = forge(header, json!({"exp": (NOW as f64) + 0.5}), key);
    JwtVerifier::new(keys)
        .verify::<serde_json::Value>(&fractional, at(NOW))
        .unwrap();
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let keys = keyset(Algorithm::ES256);
    let issuer = JwtIssuer::new(keys.clone()).with_issuer("https://id.example");
    let mut claims = Claims::new("erin", at(NOW), Duration::from_secs(60));
    claims.aud = Some(Audience::Many(vec!["api".into(), "web".into()]));
    let token = issuer.issue(&claims).unwrap();

    let good = JwtVerifier::new(keys.clone())
        .with_issuer("https://id.example")
        .with_audience("web");
    let verified: Claims = good.verify(&token, at(NOW)).unwrap();
    assert_eq!(verified.iss.as_deref(), Some("https://id.example"));

    let wrong_iss = JwtVerifier::new(keys.clone()).with_issuer("https://evil.example");
    assert!(matches!(
        wrong_iss.verify::<Claims>(&token, at(NOW)),
        Err(Error::InvalidIssuer)
    ));
    let wrong_aud = JwtVerifier::new(keys.clone()).with_audience("admin");
    assert!(matches!(
        wrong_aud.verify::<Claims>(&token, at(NOW)),
        Err(Error::InvalidAudience)
    ));

    let no_aud = issuer
        .issue(&Claims::new("erin", at(NOW), Duration::from_secs(60)))
        .unwrap();
    let needs_aud = JwtVerifier::new(keys).with_audience("api");
    assert!(matches!(
        needs_aud.verify::<Claims>(&no_aud, at(NOW)),
        Err(Error::InvalidAudience)
    ));
}

#[test]
fn stripped_truncated_and_malformed_tokens_are_refused() {
    let keys = keyset(Algorithm::HS256);
    let verifier = JwtVerifier::new(keys.clone());
    let token = JwtIssuer::new(keys)
        .issue(&Claims::new("f", at(NOW), Duration::from_secs(60)))
        .unwrap();
    let (input, _) = token.rsplit_once('.').unwrap();
    let cases = [
        format!("{input}."),      // stripped signature
        input.to_string(),        // two parts
        format!("{token}.extra"), // four parts
        String::new(),
        "...".into(),
        format!("{input}.!!!not-base64!!!"), // signature not base64url
        format!("%%%.{}", token.split('.').nth(1).unwrap()) + ".AAAA", // header not base64url
        format!("{}.e30.AAAA", b64("not json")),
        format!("{}.e30.AAAA", b64("[\"alg\"]")),
    ];
    for case in &cases {
        assert!(
            matches!(
                verifier.verify::<Claims>(case, at(NOW)),
                Err(Error::MalformedToken(_))
            ),
            "{case:?} gave {:?}",
            verifier.verify::<Claims>(case, at(NOW))
        );
    }
    // A flipped signature bit.
    let mut bytes = token.clone().into_bytes();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(bytes).unwrap();
    assert!(matches!(
        verifier.verify::<Claims>(&flipped, at(NOW)),
        Err(Error::InvalidSignature)
    ));
    // Claims that are valid base64 but not JSON, under a valid signature.
    let key = Key::hmac("k1", Algorithm::HS256, &[9u8; 32]).unwrap();
    let mut set = KeySet::new();
    set.rotate(Key::hmac("k1", Algorithm::HS256, &[9u8; 32]).unwrap())
        .unwrap();
    let input = format!(
        "{}.{}",
        b64(r#"{"alg":"HS256","kid":"k1"}"#),
        b64("{not json")
    );
    let garbage = format!("{input}.{}", key.sign_raw(input.as_bytes()).unwrap());
    assert!(matches!(
        JwtVerifier::new(set).verify::<Claims>(&garbage, at(NOW)),
        Err(Error::MalformedToken(_))
    ));
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let keys = keyset(Algorithm::HS256);
    let verifier = JwtVerifier::new(keys).with_max_bytes(1024);
    let huge = "a".repeat(1025);
    assert!(matches!(
        verifier.verify::<Claims>(&huge, at(NOW)),
        Err(Error::TokenTooLarge { max: 1024 })
    ));
    let default = JwtVerifier::new(KeySet::new());
    assert!(matches!(
        default.verify::<Claims>(&"a".repeat(10 << 20), at(NOW)),
        Err(Error::TokenTooLarge { .. })
    ));
}

#[test]
fn weak_hmac_secrets_and_mismatched_keys_are_refused() {
    assert!(Key::hmac("k", Algorithm::HS256, &[0u8; 31]).is_err());
    assert!(Key::hmac("k", Algorithm::HS512, &[0u8; 63]).is_err());
    assert!(Key::hmac("k", Algorithm::RS256, &[0u8; 64]).is_err());
    assert!(
        Key::from_pem(
            "k",
            Algorithm::RS256,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err()
    );
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Key>();
    check::<KeySet>();
    check::<JwtIssuer>();
    check::<JwtVerifier>();
    check::<Claims>();
    check::<Error>();
}
