//! Signing keys from configuration, so that every instance of an application signs and
//! verifies with the same keys instead of each making its own at start (with per-process
//! keys, a token issued by one instance is refused by the next).
//!
//! The text form of one key is `kid:ALG:material`, with the material in base64 (standard or
//! URL-safe alphabet, padding optional): the secret for `HS256`/`HS384`/`HS512` (at least
//! 32/48/64 bytes), the 32-byte seed or a PKCS#8 document for `EdDSA`, a PKCS#8 document
//! (DER) for `ES256`, `ES384` and the RSA algorithms. A key set is a list of such keys
//! separated by whitespace or commas: the first signs, the others only verify (keys being
//! retired, so that tokens in flight survive a rotation). [`Key::generate_config`] makes a
//! new key in this form, for an environment variable or a secret store.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{Algorithm, Claims, JwtIssuer, JwtVerifier, Key, KeySet};
//!
//! # fn main() -> auth_core::Result<()> {
//! // Once, by an operator: `JWT_KEYS=$(...)` on every instance.
//! let configured = Key::generate_config("2026-12", Algorithm::EdDSA)?;
//!
//! // Two instances read the same configuration.
//! let one = JwtIssuer::new(KeySet::from_config(&configured)?);
//! let two = JwtVerifier::new(KeySet::from_config(&configured)?);
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let token = one.issue(&Claims::new("alice", now, Duration::from_secs(60)))?;
//! assert_eq!(two.verify::<Claims>(&token, now)?.sub.as_deref(), Some("alice"));
//!
//! // Rotation: a new key first, the old one after it still verifies.
//! let rotated = format!("{} {configured}", Key::generate_config("2027-01", Algorithm::EdDSA)?);
//! let three = JwtVerifier::new(KeySet::from_config(&rotated)?);
//! assert!(three.verify::<Claims>(&token, now).is_ok());
//! # Ok(())
//! # }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::jwt::pem_encode;
use crate::random::random_bytes;
use crate::{Algorithm, Error, Key, KeySet, Result};

fn config_error(what: String) -> Error {
    Error::Key(format!("key configuration: {what}"))
}

/// Base64 in either alphabet, padded or not.
fn decode_material(text: &str) -> Option<Vec<u8>> {
    let unpadded = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

impl Key {
    /// A signing key from its text form `kid:ALG:base64-material`: the HMAC secret, the
    /// Ed25519 seed, or a PKCS#8 private key. Errors name the key id and what is wrong,
    /// never the material.
    pub fn from_config(text: &str) -> Result<Self> {
        let mut parts = text.trim().rsplitn(3, ':');
        let (Some(material), Some(alg), Some(kid)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(config_error(
                "a key is not of the form kid:ALG:base64".into(),
            ));
        };
        if kid.is_empty() {
            return Err(config_error("a key has an empty kid".into()));
        }
        let alg = Algorithm::from_name(alg)
            .ok_or_else(|| config_error(format!("key {kid:?}: unknown algorithm {alg:?}")))?;
        let material = decode_material(material)
            .ok_or_else(|| config_error(format!("key {kid:?}: the material is not base64")))?;
        let pkcs8 = |material: &[u8]| {
            Key::from_pem(kid, alg, pem_encode("PRIVATE KEY", material).as_bytes())
                .map_err(|_| config_error(format!("key {kid:?}: not a PKCS#8 {alg} private key")))
        };
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                Key::hmac(kid, alg, &material)
            }
            Algorithm::EdDSA => match <&[u8; 32]>::try_from(material.as_slice()) {
                Ok(seed) => Key::ed25519_from_seed(kid, seed),
                Err(_) => pkcs8(&material),
            },
            _ => pkcs8(&material),
        }
    }

    /// A new random key for `alg` in the text form [`Key::from_config`] reads: 64 random
    /// bytes for HMAC, a seed for Ed25519, a PKCS#8 document for ECDSA and RSA (2048 bits).
    /// It holds the private key: keep it where secrets are kept.
    pub fn generate_config(kid: &str, alg: Algorithm) -> Result<String> {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        };
        if kid.is_empty() || kid.contains(|c: char| c == ',' || c.is_whitespace()) {
            return Err(config_error(format!(
                "kid {kid:?} must be non-empty, without commas or spaces"
            )));
        }
        let key_error = |error: aws_lc_rs::error::Unspecified| Error::Key(error.to_string());
        let material = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                random_bytes::<64>()?.to_vec()
            }
            Algorithm::EdDSA => random_bytes::<32>()?.to_vec(),
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = EcdsaKeyPair::generate(curve).map_err(key_error)?;
                pair.to_pkcs8v1().map_err(key_error)?.as_ref().to_vec()
            }
            _ => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(key_error)?;
                pair.as_der().map_err(key_error)?.as_ref().to_vec()
            }
        };
        Ok(format!(
            "{kid}:{}:{}",
            alg.name(),
            STANDARD.encode(material)
        ))
    }
}

impl KeySet {
    /// A key set from a list of keys in the text form of [`Key::from_config`], separated by
    /// whitespace or commas: the first one signs, the others only verify.
    pub fn from_config(text: &str) -> Result<Self> {
        let mut keys = KeySet::new();
        let mut entries = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty());
        let first = entries
            .next()
            .ok_or_else(|| config_error("no keys configured".into()))?;
        keys.rotate(Key::from_config(first)?)?;
        for entry in entries {
            keys.insert(Key::from_config(entry)?)?;
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{Claims, JwtIssuer, JwtVerifier};

    #[test]
    fn every_algorithm_round_trips_between_instances() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for alg in [
            Algorithm::HS256,
            Algorithm::HS512,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
        ] {
            let text = Key::generate_config("k1", alg).unwrap();
            let token = JwtIssuer::new(KeySet::from_config(&text).unwrap())
                .issue(&Claims::new("a", now, Duration::from_secs(60)))
                .unwrap();
            let verifier = JwtVerifier::new(KeySet::from_config(&text).unwrap());
            assert!(verifier.verify::<Claims>(&token, now).is_ok(), "{alg}");
            // Another instance that made its own key refuses it.
            let other = Key::generate_config("k1", alg).unwrap();
            let stranger = JwtVerifier::new(KeySet::from_config(&other).unwrap());
            assert!(stranger.verify::<Claims>(&token, now).is_err(), "{alg}");
        }
    }

    #[test]
    fn the_first_key_signs_and_the_rest_verify() {
        let old = Key::generate_config("old", Algorithm::HS256).unwrap();
        let new = Key::generate_config("new", Algorithm::ES256).unwrap();
        let set = KeySet::from_config(&format!("{new},\n  {old}")).unwrap();
        assert_eq!(set.signing_key().unwrap().kid(), "new");
        assert!(set.get("old").is_some());
    }

    #[test]
    fn bad_configuration_is_a_clear_error_without_the_material() {
        let secret = STANDARD.encode([7u8; 16]);
        for (text, expected) in [
            ("", "no keys"),
            ("k1:HS256", "kid:ALG:base64"),
            (":HS256:AAAA", "empty kid"),
            ("k1:HS999:AAAA", "unknown algorithm"),
            ("k1:HS256:***", "not base64"),
            ("k1:ES256:AAAA", "not a PKCS#8"),
        ] {
            let error = KeySet::from_config(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let short = KeySet::from_config(&format!("k1:HS256:{secret}"))
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("32 bytes") && !short.contains(&secret),
            "{short}"
        );
        let twice = Key::generate_config("k1", Algorithm::HS256).unwrap();
        assert!(KeySet::from_config(&format!("{twice} {twice}")).is_err());
        assert!(Key::generate_config("a b", Algorithm::HS256).is_err());
    }

    #[test]
    fn url_safe_and_padded_material_are_read() {
        let seed = [9u8; 32];
        let url_safe = format!("e:EdDSA:{}", URL_SAFE_NO_PAD.encode(seed));
        let padded = format!("e:EdDSA:{}", STANDARD.encode(seed));
        let a = Key::from_config(&url_safe).unwrap().public_jwk();
        let b = Key::from_config(&padded).unwrap().public_jwk();
        assert_eq!(a, b);
        assert!(a.is_some());
    }
}
