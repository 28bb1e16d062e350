//! JSON Web Tokens: keys with ids, a rotating key set with JWKS export and import, an issuer
//! and a strict verifier.
//!
//! The verifier takes the algorithm from the key that the token's `kid` names, never from the
//! token: `alg: none`, HS256 signed with an RSA public key, and every other confusion between
//! key types are refused before any signature check. `exp` is always required; `iss`, `aud`
//! and `nbf` are checked when configured or present. `jku`, `x5u` and `jwk` headers are
//! ignored (never fetched), and any `crit` header is refused (RFC 7515 section 4.1.11).
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use auth_core::{Algorithm, Claims, JwtIssuer, JwtVerifier, Key, KeySet};
//!
//! # fn main() -> auth_core::Result<()> {
//! let mut keys = KeySet::new();
//! keys.rotate(Key::generate("2026-11", Algorithm::EdDSA)?)?;
//! let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//!
//! let issuer = JwtIssuer::new(keys.clone()).with_issuer("https://api.example");
//! let token = issuer.issue(&Claims::new("user-42", now, Duration::from_secs(900)))?;
//!
//! let verifier = JwtVerifier::new(keys).with_issuer("https://api.example");
//! let claims: Claims = verifier.verify(&token, now)?;
//! assert_eq!(claims.sub.as_deref(), Some("user-42"));
//! // Sixteen minutes later (past expiry plus the 5 s leeway) the token is refused.
//! assert!(verifier.verify::<Claims>(&token, now + Duration::from_secs(960)).is_err());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The default largest token the verifier reads, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// A JWS signature algorithm (RFC 7518 section 3, RFC 8037 for EdDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm with `alg` header value `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.iter().copied().find(|alg| alg.name() == name)
    }

    fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::HS256 => J::HS256,
            Algorithm::HS384 => J::HS384,
            Algorithm::HS512 => J::HS512,
            Algorithm::RS256 => J::RS256,
            Algorithm::RS384 => J::RS384,
            Algorithm::RS512 => J::RS512,
            Algorithm::PS256 => J::PS256,
            Algorithm::PS384 => J::PS384,
            Algorithm::PS512 => J::PS512,
            Algorithm::ES256 => J::ES256,
            Algorithm::ES384 => J::ES384,
            Algorithm::EdDSA => J::EdDSA,
        }
    }

    /// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
    fn min_hmac_secret(self) -> usize {
        match self {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        }
    }
}

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One key: an id (`kid`), the one algorithm it is used with, a verification key, and the
/// private key when this side signs.
pub struct Key {
    kid: String,
    alg: Algorithm,
    signing: Option<EncodingKey>,
    verifying: DecodingKey,
    public_jwk: Option<Jwk>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("can_sign", &self.signing.is_some())
            .finish_non_exhaustive()
    }
}

fn key_error(error: impl fmt::Display) -> Error {
    Error::Key(error.to_string())
}

impl Key {
    /// An HMAC key. The secret must be at least as long as the hash output (32, 48 or 64
    /// bytes; RFC 7518 section 3.2).
    pub fn hmac(kid: impl Into<String>, alg: Algorithm, secret: &[u8]) -> Result<Self> {
        if !alg.is_hmac() {
            return Err(Error::Key(format!("{alg} is not an HMAC algorithm")));
        }
        if secret.len() < alg.min_hmac_secret() {
            return Err(Error::Key(format!(
                "{alg} needs a secret of at least {} bytes",
                alg.min_hmac_secret()
            )));
        }
        Ok(Self {
            kid: kid.into(),
            alg,
            signing: Some(EncodingKey::from_secret(secret)),
            verifying: DecodingKey::from_secret(secret),
            public_jwk: None,
        })
    }

    /// A new random key for `alg`: a 64-byte HMAC secret, a 2048-bit RSA key, a P-256 or
    /// P-384 key, or an Ed25519 key, from the OS random number generator.
    pub fn generate(kid: impl Into<String>, alg: Algorithm) -> Result<Self> {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair,
        };
        let kid = kid.into();
        let signing = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Self::hmac(kid, alg, &crate::random::random_bytes::<64>()?);
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = EcdsaKeyPair::generate(curve).map_err(key_error)?;
                EncodingKey::from_ec_der(pair.to_pkcs8v1().map_err(key_error)?.as_ref())
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().map_err(key_error)?;
                EncodingKey::from_ed_der(pair.to_pkcs8v1().map_err(key_error)?.as_ref())
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(key_error)?;
                let der = pair.as_der().map_err(key_error)?;
                let pem = pem_encode("PRIVATE KEY", der.as_ref());
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(key_error)?
            }
        };
        Self::from_signing_key(kid, alg, signing)
    }

    /// A signing key from a PEM private key: PKCS#1 or PKCS#8 for RSA, PKCS#8 for EC and
    /// Ed25519. The public half is derived for verification and JWKS.
    pub fn from_pem(kid: impl Into<String>, alg: Algorithm, private_pem: &[u8]) -> Result<Self> {
        let signing = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(Error::Key("HMAC keys are secrets, not PEM".into()));
            }
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private_pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            _ => EncodingKey::from_rsa_pem(private_pem),
        }
        .map_err(key_error)?;
        Self::from_signing_key(kid.into(), alg, signing)
    }

    /// A signing key from a raw Ed25519 private key (its 32-byte seed, RFC 8032 section 3.2).
    pub fn ed25519_from_seed(kid: impl Into<String>, seed: &[u8; 32]) -> Result<Self> {
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410 section 7).
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(seed);
        Self::from_signing_key(kid.into(), Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
    }

    fn from_signing_key(kid: String, alg: Algorithm, signing: EncodingKey) -> Result<Self> {
        let mut jwk = Jwk::from_encoding_key(&signing, alg.to_jsonwebtoken()).map_err(key_error)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let verifying = DecodingKey::from_jwk(&jwk).map_err(key_error)?;
        Ok(Self {
            kid,
            alg,
            signing: Some(signing),
            verifying,
            public_jwk: Some(jwk),
        })
    }

    /// A verification-only key from a PEM public key (SPKI, or PKCS#1 for RSA).
    pub fn from_public_pem(
        kid: impl Into<String>,
        alg: Algorithm,
        public_pem: &[u8],
    ) -> Result<Self> {
        let verifying = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                return Err(Error::Key("HMAC keys are secrets, not PEM".into()));
            }
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(public_pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(public_pem),
            _ => DecodingKey::from_rsa_pem(public_pem),
        }
        .map_err(key_error)?;
        Ok(Self {
            kid: kid.into(),
            alg,
            signing: None,
            verifying,
            public_jwk: None,
        })
    }

    /// A verification-only key from one JWK (RFC 7517). It must carry `kid`; `alg` is taken
    /// from the JWK, or inferred from the curve for EC and OKP keys. RSA keys without `alg`
    /// are refused, since RS256 and PS256 share key material and the choice must be explicit.
    /// Symmetric (`oct`) JWKs are refused: a secret has no business in a public key set.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| Error::Key("JWK has no kid".into()))?;
        let named = jwk
            .common
            .key_algorithm
            .and_then(|alg| Algorithm::from_name(&format!("{alg:?}")));
        let inferred = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                Some(Algorithm::EdDSA)
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(Error::Key(format!("JWK {kid:?} is a symmetric key")));
            }
            _ => None,
        };
        let alg = match (named, inferred) {
            (Some(named), Some(inferred)) if named != inferred => {
                return Err(Error::Key(format!(
                    "JWK {kid:?}: alg does not fit the curve"
                )));
            }
            (Some(alg), _) | (None, Some(alg)) => alg,
            (None, None) => {
                return Err(Error::Key(format!("JWK {kid:?}: no supported alg")));
            }
        };
        let verifying = DecodingKey::from_jwk(jwk).map_err(key_error)?;
        Ok(Self {
            kid,
            alg,
            signing: None,
            verifying,
            public_jwk: Some(jwk.clone()),
        })
    }

    /// The key id written to and looked up from the `kid` header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key is used with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// True when this key holds private material and can sign.
    pub fn can_sign(&self) -> bool {
        self.signing.is_some()
    }

    /// Signs `signing_input` (the JWS signing input, `BASE64URL(header) '.' BASE64URL(payload)`)
    /// and returns the base64url signature. For building tokens by hand, as the RFC examples
    /// do; [`JwtIssuer`] is the ordinary way.
    pub fn sign_raw(&self, signing_input: &[u8]) -> Result<String> {
        let signing = self.signing.as_ref().ok_or(Error::NoSigningKey)?;
        jsonwebtoken::crypto::sign(signing_input, signing, self.alg.to_jsonwebtoken())
            .map_err(key_error)
    }

    /// Checks a base64url `signature` over `signing_input` with this key.
    pub fn verify_raw(&self, signing_input: &[u8], signature: &str) -> Result<bool> {
        jsonwebtoken::crypto::verify(
            signature,
            signing_input,
            &self.verifying,
            self.alg.to_jsonwebtoken(),
        )
        .map_err(|_| Error::MalformedToken("the signature is not base64url"))
    }

    /// The public key as a JWK (`kid`, `alg`, `use: "sig"`), or `None` for HMAC keys.
    pub fn public_jwk(&self) -> Option<serde_json::Value> {
        if self.alg.is_hmac() {
            return None;
        }
        self.public_jwk
            .as_ref()
            .and_then(|jwk| serde_json::to_value(jwk).ok())
    }
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The keys of one issuer: one active signing key and any number of older keys that still
/// verify, so that keys rotate without invalidating tokens in flight.
///
/// Cloning is cheap (the keys are shared).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Arc<Key>>,
    active: Option<usize>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key for verification (and signing once made active). Key ids are unique.
    pub fn insert(&mut self, key: Key) -> Result<()> {
        if self.get(key.kid()).is_some() {
            return Err(Error::Key(format!("duplicate kid {:?}", key.kid())));
        }
        self.keys.push(Arc::new(key));
        Ok(())
    }

    /// Adds `key` and makes it the signing key; the previous keys keep verifying.
    pub fn rotate(&mut self, key: Key) -> Result<()> {
        let kid = key.kid().to_owned();
        self.insert(key)?;
        self.set_active(&kid)
    }

    /// Makes the key with `kid` the signing key.
    pub fn set_active(&mut self, kid: &str) -> Result<()> {
        let index = self
            .keys
            .iter()
            .position(|key| key.kid() == kid)
            .ok_or_else(|| Error::Key(format!("no key with kid {kid:?}")))?;
        if !self.keys.get(index).is_some_and(|key| key.can_sign()) {
            return Err(Error::Key(format!("key {kid:?} has no private half")));
        }
        self.active = Some(index);
        Ok(())
    }

    /// Removes a retired key: tokens signed with it stop verifying.
    pub fn remove(&mut self, kid: &str) -> Option<Arc<Key>> {
        let index = self.keys.iter().position(|key| key.kid() == kid)?;
        let active_kid = self.signing_key().map(|key| key.kid().to_owned());
        let removed = self.keys.remove(index);
        self.active =
            active_kid.and_then(|active| self.keys.iter().position(|k| k.kid() == active));
        Some(removed)
    }

    /// The key with `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<Key>> {
        self.keys.iter().find(|key| key.kid() == kid)
    }

    /// The active signing key.
    pub fn signing_key(&self) -> Option<&Arc<Key>> {
        self.active.and_then(|index| self.keys.get(index))
    }

    /// The public keys as a JWK Set (RFC 7517 section 5), for `/.well-known/jwks.json`.
    /// HMAC keys are never included.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .filter_map(|key| key.public_jwk())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// A verification-only key set from another issuer's JWK Set document.
    ///
    /// Keys this crate cannot use (encryption keys, unknown curves, RSA keys with no `alg`,
    /// keys without `kid`) are skipped; their count is returned beside the set. A document
    /// that is not a JWK Set at all is an error.
    pub fn from_jwks(document: &[u8]) -> Result<(Self, usize)> {
        let set: JwkSet = serde_json::from_slice(document)
            .map_err(|error| Error::Key(format!("not a JWK Set: {error}")))?;
        let mut keys = KeySet::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            let usable = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
            let inserted = usable && Key::from_jwk(jwk).is_ok_and(|key| keys.insert(key).is_ok());
            if !inserted {
                skipped += 1;
            }
        }
        Ok((keys, skipped))
    }
}

/// A JWT's registered claims (RFC 7519 section 4.1) plus any private claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer; filled in by [`JwtIssuer`] when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: one string or several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// Claims for `sub`, issued at `now`, expiring `ttl` later.
    pub fn new(sub: impl Into<String>, now: SystemTime, ttl: Duration) -> Self {
        let iat = unix_seconds(now);
        Self {
            sub: Some(sub.into()),
            iat: Some(iat),
            exp: iat.saturating_add(ttl.as_secs()),
            ..Self::default()
        }
    }
}

/// The `aud` claim: a single string or an array (RFC 7519 section 4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(one) => one == wanted,
            Audience::Many(many) => many.iter().any(|aud| aud == wanted),
        }
    }
}

fn is_json_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[derive(Serialize)]
struct OutgoingHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

/// Signs tokens with the active key of a [`KeySet`], writing `kid` into every header.
#[derive(Debug, Clone)]
pub struct JwtIssuer {
    keys: KeySet,
    issuer: Option<String>,
}

impl JwtIssuer {
    /// An issuer over `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self { keys, issuer: None }
    }

    /// The key set this issuer signs with.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The `iss` this issuer writes, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Sets `iss` on [`Claims`] issued through [`JwtIssuer::issue`].
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Signs `claims`, setting `iss` when the issuer has one and the claims have none.
    pub fn issue(&self, claims: &Claims) -> Result<String> {
        match (&self.issuer, &claims.iss) {
            (Some(issuer), None) => {
                let mut claims = claims.clone();
                claims.iss = Some(issuer.clone());
                self.sign(&claims)
            }
            _ => self.sign(claims),
        }
    }

    /// Signs any serializable claims as they are. The caller is responsible for `exp`: the
    /// verifier refuses tokens without it.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String> {
        self.sign_typed(claims, "JWT")
    }

    /// Signs claims with another `typ` header, such as `at+jwt` for OAuth access tokens
    /// (RFC 9068 section 2.1), so that one kind of token cannot pass for another.
    pub fn sign_typed<T: Serialize>(&self, claims: &T, typ: &str) -> Result<String> {
        let key = self.keys.signing_key().ok_or(Error::NoSigningKey)?;
        let header = OutgoingHeader {
            alg: key.alg.name(),
            kid: &key.kid,
            typ,
        };
        let header = serde_json::to_vec(&header).map_err(|error| Error::Key(error.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|error| Error::Key(error.to_string()))?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = key.sign_raw(token.as_bytes())?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

/// The header members the verifier reads; everything else (`jku`, `x5u`, `jwk`, ...) is
/// ignored and never dereferenced.
#[derive(Deserialize)]
struct IncomingHeader<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    crit: Option<Vec<String>>,
    #[serde(borrow, default)]
    typ: Option<std::borrow::Cow<'a, str>>,
}

/// The time claims and `iss`/`aud`, read apart from the caller's claim type.
#[derive(Deserialize)]
struct RegisteredClaims<'a> {
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(borrow, default)]
    iss: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// Verifies tokens against a [`KeySet`] with strict defaults.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: KeySet,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    max_bytes: usize,
    typ: Option<String>,
}

impl JwtVerifier {
    /// A verifier over `keys`: `exp` required, leeway [`DEFAULT_LEEWAY`], tokens up to
    /// [`DEFAULT_MAX_TOKEN_BYTES`], no `iss`/`aud` requirement until configured.
    pub fn new(keys: KeySet) -> Self {
        Self {
            keys,
            issuer: None,
            audience: None,
            leeway: DEFAULT_LEEWAY,
            max_bytes: DEFAULT_MAX_TOKEN_BYTES,
            typ: None,
        }
    }

    /// Requires the `typ` header to be `typ` (compared without case, with or without the
    /// `application/` prefix, RFC 7515 section 4.1.9); `at+jwt` accepts only OAuth access
    /// tokens (RFC 9068 section 4).
    pub fn with_type(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Requires `iss` to equal `issuer`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to be or contain `audience`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The clock-skew allowance for `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The largest token read, in bytes.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The key set (for example to serve it as JWKS).
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Verifies `token` at time `now` and returns its claims.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, now: SystemTime) -> Result<T> {
        let claims = self.verified_claims(token, now)?;
        serde_json::from_slice(&claims)
            .map_err(|_| Error::MalformedToken("claims do not have the expected shape"))
    }

    /// Checks everything and returns the decoded claims JSON.
    fn verified_claims(&self, token: &str, now: SystemTime) -> Result<Vec<u8>> {
        if token.len() > self.max_bytes {
            return Err(Error::TokenTooLarge {
                max: self.max_bytes,
            });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::MalformedToken("a JWS has three dot-separated parts"));
        };
        if signature.is_empty() {
            return Err(Error::MalformedToken("the signature is empty"));
        }
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| Error::MalformedToken("the header is not base64url"))?;
        // serde would read a struct from a JSON array too; a JOSE header is an object.
        if !is_json_object(&header_json) {
            return Err(Error::MalformedToken("the header is not a JSON object"));
        }
        let header: IncomingHeader<'_> = serde_json::from_slice(&header_json)
            .map_err(|_| Error::MalformedToken("the header is not a JSON object with alg"))?;
        if let Some(crit) = header.crit {
            // This verifier implements no extensions, so any critical one is unsupported;
            // an empty list is itself invalid (RFC 7515 section 4.1.11).
            let first = crit.into_iter().next().unwrap_or_default();
            return Err(Error::UnsupportedCritical(first));
        }
        if let Some(wanted) = &self.typ {
            let typ = header.typ.as_deref().unwrap_or("");
            let typ = typ
                .get(..12)
                .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
                .and_then(|_| typ.get(12..))
                .unwrap_or(typ);
            if !typ.eq_ignore_ascii_case(wanted) {
                return Err(Error::WrongTokenType);
            }
        }
        let kid = header.kid.ok_or(Error::MissingKeyId)?;
        let key = self.keys.get(&kid).ok_or(Error::UnknownKey)?;
        if header.alg != key.alg.name() {
            return Err(Error::AlgorithmMismatch);
        }
        let message_len = header_b64.len() + 1 + claims_b64.len();
        let message = token
            .as_bytes()
            .get(..message_len)
            .ok_or(Error::MalformedToken("truncated token"))?;
        if !key.verify_raw(message, signature)? {
            return Err(Error::InvalidSignature);
        }
        let claims = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| Error::MalformedToken("the claims are not base64url"))?;
        self.check_registered(&claims, now)?;
        Ok(claims)
    }

    fn check_registered(&self, claims: &[u8], now: SystemTime) -> Result<()> {
        if !is_json_object(claims) {
            return Err(Error::MalformedToken("the claims are not a JSON object"));
        }
        let registered: RegisteredClaims<'_> = serde_json::from_slice(claims)
            .map_err(|_| Error::MalformedToken("the claims are not a JSON object"))?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        let leeway = self.leeway.as_secs_f64();
        let exp = registered
            .exp
            .and_then(|exp| exp.as_f64())
            .ok_or(Error::MissingClaim("exp"))?;
        if now > exp + leeway {
            return Err(Error::Expired);
        }
        if let Some(nbf) = registered.nbf {
            let nbf = nbf.as_f64().ok_or(Error::MissingClaim("nbf"))?;
            if now + leeway < nbf {
                return Err(Error::NotYetValid);
            }
        }
        if let Some(issuer) = &self.issuer
            && registered.iss.as_deref() != Some(issuer.as_str())
        {
            return Err(Error::InvalidIssuer);
        }
        if let Some(audience) = &self.audience
            && !registered.aud.is_some_and(|aud| aud.contains(audience))
        {
            return Err(Error::InvalidAudience);
        }
        Ok(())
    }
}
