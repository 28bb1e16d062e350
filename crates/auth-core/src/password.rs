//! Password hashing with argon2id in PHC strings.
//!
//! ```
//! use auth_core::{Passwords, Verification};
//!
//! # fn main() -> auth_core::Result<()> {
//! // Small parameters keep the doctest fast; use `Passwords::default()` in production.
//! let passwords = Passwords::new(256, 1, 1)?;
//! let stored = passwords.hash("correct horse")?;
//! assert!(stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"));
//! assert_eq!(
//!     passwords.verify("correct horse", &stored)?,
//!     Verification::Match { needs_rehash: false }
//! );
//! assert_eq!(passwords.verify("wrong", &stored)?, Verification::Mismatch);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::Error as PhcError;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};

use crate::{Error, Result};

/// The default limit on password length in bytes. argon2 itself accepts up to 4 GiB; a
/// limit stops a client from making the server hash megabytes per login attempt.
pub const DEFAULT_MAX_PASSWORD_BYTES: usize = 1024;

/// Bounds how many argon2 computations run at once.
///
/// Each hash holds its memory cost (19 MiB by default) and a core for tens of milliseconds;
/// without a bound, a burst of login attempts queues hundreds of them. A permit is taken
/// without waiting: when every slot is busy the caller gets [`Error::HashingBusy`] (503
/// with `Retry-After`) at once. Clones share the slots, so one limiter can cover several
/// [`Passwords`].
///
/// ```
/// use auth_core::{Error, HashLimiter, Passwords};
///
/// let limiter = HashLimiter::new(1);
/// let passwords = Passwords::new(64, 1, 1).unwrap().with_limiter(limiter.clone());
/// let busy = limiter.try_acquire().unwrap(); // another request is hashing
/// assert!(matches!(passwords.hash("pw"), Err(Error::HashingBusy { .. })));
/// drop(busy);
/// assert!(passwords.hash("pw").is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct HashLimiter {
    slots: Arc<Slots>,
}

#[derive(Debug)]
struct Slots {
    in_use: AtomicUsize,
    max: usize,
}

/// One hashing slot of a [`HashLimiter`], given back when dropped.
#[derive(Debug)]
pub struct HashPermit {
    slots: Arc<Slots>,
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        self.slots.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for HashLimiter {
    /// One slot per available core: hashing is CPU-bound, more at once only adds memory.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(4, NonZeroUsize::get))
    }
}

impl HashLimiter {
    /// A limiter allowing `max` hashes at once (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Slots {
                in_use: AtomicUsize::new(0),
                max: max.max(1),
            }),
        }
    }

    /// Takes a slot, or [`Error::HashingBusy`] when all are taken. Never waits.
    pub fn try_acquire(&self) -> Result<HashPermit> {
        self.slots
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.slots.max).then_some(n + 1)
            })
            .map_err(|_| Error::HashingBusy {
                retry_after: Duration::from_secs(1),
            })?;
        Ok(HashPermit {
            slots: self.slots.clone(),
        })
    }

    /// Slots taken now.
    pub fn in_use(&self) -> usize {
        self.slots.in_use.load(Ordering::Acquire)
    }

    /// The number of slots.
    pub fn max(&self) -> usize {
        self.slots.max
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right. When `needs_rehash` is true the stored hash was made with other
    /// parameters than the current ones: hash the password again and store the new hash.
    Match {
        /// The stored hash should be replaced by one with the current parameters.
        needs_rehash: bool,
    },
    /// The password is wrong.
    Mismatch,
}

impl Verification {
    /// True for [`Verification::Match`].
    pub fn is_match(self) -> bool {
        matches!(self, Verification::Match { .. })
    }
}

/// Hashes and verifies passwords with argon2id (RFC 9106), version 0x13.
///
/// The defaults follow OWASP's password storage recommendation for argon2id: 19 MiB of
/// memory, 2 iterations, parallelism 1. An optional pepper (argon2's secret input) is mixed
/// into every hash; keep it outside the database.
///
/// Every [`hash`](Self::hash), [`verify`](Self::verify) and
/// [`verify_unknown_user`](Self::verify_unknown_user) takes a slot of a [`HashLimiter`]
/// (by default one per core, shared by clones) and fails with [`Error::HashingBusy`] when
/// none is free.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    pepper: Option<Vec<u8>>,
    max_bytes: usize,
    limiter: HashLimiter,
    /// A hash of a random password with the current parameters, verified against when the
    /// user does not exist so that both paths cost the same.
    dummy: std::sync::Arc<OnceLock<String>>,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .field("pepper", &self.pepper.as_ref().map(|_| "<redacted>"))
            .field("max_bytes", &self.max_bytes)
            .field("max_concurrent_hashes", &self.limiter.max())
            .finish()
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::with_params(Params::DEFAULT)
    }
}

impl Passwords {
    /// argon2id with `m_cost_kib` KiB of memory, `t_cost` iterations and `p_cost` lanes.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|error| Error::InvalidParams(error.to_string()))?;
        Ok(Self::with_params(params))
    }

    fn with_params(params: Params) -> Self {
        Self {
            params,
            pepper: None,
            max_bytes: DEFAULT_MAX_PASSWORD_BYTES,
            limiter: HashLimiter::default(),
            dummy: Default::default(),
        }
    }

    /// Takes hashing slots from `limiter` (default: a limiter of its own, one slot per core).
    pub fn with_limiter(mut self, limiter: HashLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// The limiter bounding concurrent hashes.
    pub fn limiter(&self) -> &HashLimiter {
        &self.limiter
    }

    /// Mixes `pepper` into every hash and verification as argon2's secret input.
    ///
    /// Hashes made with a pepper verify only with the same pepper.
    pub fn with_pepper(mut self, pepper: impl Into<Vec<u8>>) -> Self {
        self.pepper = Some(pepper.into());
        self.dummy = Default::default();
        self
    }

    /// Refuses passwords longer than `max_bytes` (default [`DEFAULT_MAX_PASSWORD_BYTES`]).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn argon2(&self) -> Result<Argon2<'_>> {
        argon2_with(self.pepper.as_deref(), self.params.clone())
    }

    fn check_length(&self, password: &[u8]) -> Result<()> {
        if password.len() > self.max_bytes {
            return Err(Error::PasswordTooLong {
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Hashes `password` with a fresh 16-byte salt into a PHC string
    /// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    ///
    /// # Errors
    ///
    /// [`Error::PasswordTooLong`]; [`Error::HashingBusy`] when every slot is taken.
    pub fn hash(&self, password: impl AsRef<[u8]>) -> Result<String> {
        let password = password.as_ref();
        self.check_length(password)?;
        let _permit = self.limiter.try_acquire()?;
        self.hash_unlimited(password)
    }

    fn hash_unlimited(&self, password: &[u8]) -> Result<String> {
        let hash = self
            .argon2()?
            .hash_password(password)
            .map_err(|error| Error::Hashing(error.to_string()))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against a stored PHC string.
    ///
    /// The stored string's own parameters are used for the check; `needs_rehash` tells
    /// whether they differ from the current ones (so hashes upgrade at the next login).
    pub fn verify(&self, password: impl AsRef<[u8]>, stored: &str) -> Result<Verification> {
        let password = password.as_ref();
        self.check_length(password)?;
        let _permit = self.limiter.try_acquire()?;
        self.verify_unlimited(password, stored)
    }

    fn verify_unlimited(&self, password: &[u8], stored: &str) -> Result<Verification> {
        let parsed = PasswordHash::new(stored)
            .map_err(|error| Error::InvalidPasswordHash(error.to_string()))?;
        match self.argon2()?.verify_password(password, &parsed) {
            Ok(()) => Ok(Verification::Match {
                needs_rehash: self.differs(&parsed),
            }),
            Err(PhcError::PasswordInvalid) => Ok(Verification::Mismatch),
            Err(error) => Err(Error::InvalidPasswordHash(error.to_string())),
        }
    }

    /// Checks `password` for a user whose stored PHC string is `stored`, or `None` when no
    /// such user exists: [`Passwords::verify`] or [`Passwords::verify_unknown_user`], so
    /// that both cases take the same time.
    pub fn verify_user(
        &self,
        password: impl AsRef<[u8]>,
        stored: Option<&str>,
    ) -> Result<Verification> {
        match stored {
            Some(stored) => self.verify(password, stored),
            None => self.verify_unknown_user(password),
        }
    }

    /// Spends the same work as [`Passwords::verify`] and answers [`Verification::Mismatch`]:
    /// call it when the user name is unknown so that response time does not reveal which
    /// accounts exist.
    pub fn verify_unknown_user(&self, password: impl AsRef<[u8]>) -> Result<Verification> {
        let password = password.as_ref();
        self.check_length(password)?;
        let _permit = self.limiter.try_acquire()?;
        let dummy = match self.dummy.get() {
            Some(dummy) => dummy,
            None => {
                let random = crate::random::random_token()?;
                let hash = self.hash_unlimited(random.as_bytes())?;
                self.dummy.get_or_init(|| hash)
            }
        };
        // The dummy's password is random and unknown: this can only mismatch.
        self.verify_unlimited(password, dummy)?;
        Ok(Verification::Mismatch)
    }

    /// True when `stored` was made with other parameters than the current ones, or is not an
    /// argon2id v0x13 hash at all.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        PasswordHash::new(stored).map_or(true, |parsed| self.differs(&parsed))
    }

    fn differs(&self, parsed: &PasswordHash) -> bool {
        if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version != Some(0x13) {
            return true;
        }
        match Params::try_from(parsed) {
            Ok(stored) => {
                stored.m_cost() != self.params.m_cost()
                    || stored.t_cost() != self.params.t_cost()
                    || stored.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

fn argon2_with(pepper: Option<&[u8]>, params: Params) -> Result<Argon2<'_>> {
    match pepper {
        Some(secret) => {
            Argon2::new_with_secret(secret, Algorithm::Argon2id, Version::V0x13, params)
                .map_err(|error| Error::InvalidParams(error.to_string()))
        }
        None => Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Passwords {
        Passwords::new(64, 1, 1).unwrap()
    }

    /// RFC 9106 section 5.3: the argon2id test vector, through the same construction
    /// (`argon2_with`) that hashing with a pepper uses (the pepper is argon2's secret).
    #[test]
    fn rfc9106_argon2id_vector() {
        let params = argon2::ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(argon2::AssociatedData::new(&[0x04; 12]).unwrap())
            .output_len(32)
            .build()
            .unwrap();
        let secret = [0x03u8; 8];
        let mut tag = [0u8; 32];
        argon2_with(Some(&secret), params)
            .unwrap()
            .hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag)
            .unwrap();
        let expected = [
            0x0d, 0x64, 0x0d, 0xf5, 0x8d, 0x78, 0x76, 0x6c, 0x08, 0xc0, 0x37, 0xa3, 0x4a, 0x8b,
            0x53, 0xc9, 0xd0, 0x1e, 0xf0, 0x45, 0x2d, 0x75, 0xb6, 0x5e, 0xb5, 0x25, 0x20, 0xe9,
            0x6b, 0x01, 0xe6, 0x59,
        ];
        assert_eq!(tag, expected);
    }

    #[test]
    fn defaults_follow_owasp() {
        let passwords = Passwords::default();
        assert_eq!(passwords.params.m_cost(), 19 * 1024);
        assert_eq!(passwords.params.t_cost(), 2);
        assert_eq!(passwords.params.p_cost(), 1);
    }

    #[test]
    fn hash_and_verify() {
        let passwords = fast();
        let stored = passwords.hash("hunter2").unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            passwords.verify("hunter2", &stored).unwrap(),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            passwords.verify("hunter3", &stored).unwrap(),
            Verification::Mismatch
        );
        // Salted: the same password hashes differently each time.
        assert_ne!(stored, passwords.hash("hunter2").unwrap());
    }

    #[test]
    fn changed_parameters_ask_for_a_rehash() {
        let old = Passwords::new(64, 1, 1).unwrap();
        let new = Passwords::new(128, 2, 1).unwrap();
        let stored = old.hash("pw").unwrap();
        assert_eq!(
            new.verify("pw", &stored).unwrap(),
            Verification::Match { needs_rehash: true }
        );
        assert!(new.needs_rehash(&stored));
        assert!(!old.needs_rehash(&stored));
        assert!(new.needs_rehash("not a phc string"));
    }

    #[test]
    fn pepper_is_required_to_verify() {
        let peppered = fast().with_pepper(b"pepper".to_vec());
        let stored = peppered.hash("pw").unwrap();
        assert!(peppered.verify("pw", &stored).unwrap().is_match());
        assert_eq!(
            fast().verify("pw", &stored).unwrap(),
            Verification::Mismatch
        );
        assert!(!format!("{peppered:?}").contains("pepper\""));
    }

    #[test]
    fn long_passwords_are_refused_before_hashing() {
        let passwords = fast().with_max_bytes(8);
        assert!(matches!(
            passwords.hash("123456789"),
            Err(Error::PasswordTooLong { max: 8 })
        ));
        let stored = passwords.hash("12345678").unwrap();
        assert!(matches!(
            passwords.verify("123456789", &stored),
            Err(Error::PasswordTooLong { max: 8 })
        ));
        assert!(matches!(
            passwords.verify_unknown_user("123456789"),
            Err(Error::PasswordTooLong { .. })
        ));
    }

    /// Issue 14, finding 5: up to 512 argon2 hashes could run at once. With every slot
    /// taken, hashing and verifying are refused at once with `HashingBusy` (503); a slot
    /// given back is usable again, and clones share the slots.
    #[test]
    fn hashing_is_bounded_by_the_limiter() {
        let limiter = HashLimiter::new(2);
        let passwords = fast().with_limiter(limiter.clone());
        let stored = passwords.hash("pw").unwrap();
        let clone = passwords.clone();
        let first = limiter.try_acquire().unwrap();
        let second = limiter.try_acquire().unwrap();
        assert!(limiter.try_acquire().is_err());
        for result in [
            clone.hash("pw").map(|_| ()),
            clone.verify("pw", &stored).map(|_| ()),
            passwords.verify_unknown_user("pw").map(|_| ()),
        ] {
            let error = result.unwrap_err();
            assert!(matches!(error, Error::HashingBusy { .. }), "{error:?}");
            assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        }
        drop(first);
        assert!(passwords.verify("pw", &stored).unwrap().is_match());
        assert!(!passwords.verify_unknown_user("pw").unwrap().is_match());
        assert_eq!(limiter.in_use(), 1);
        drop(second);
        assert_eq!(limiter.in_use(), 0);
        // Many threads at once: never more than the limit inside, the rest refused.
        let limiter = HashLimiter::new(3);
        let passwords = fast().with_limiter(limiter.clone());
        let outcomes: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| passwords.verify("pw", &stored).is_ok()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(outcomes.iter().any(|ok| *ok));
        assert_eq!(limiter.in_use(), 0);
    }

    #[test]
    fn unknown_users_never_match_and_garbage_hashes_are_errors() {
        let passwords = fast();
        assert_eq!(
            passwords.verify_unknown_user("").unwrap(),
            Verification::Mismatch
        );
        assert_eq!(
            passwords.verify_unknown_user("x").unwrap(),
            Verification::Mismatch
        );
        assert!(matches!(
            passwords.verify("x", "$argon2id$garbage"),
            Err(Error::InvalidPasswordHash(_))
        ));
    }
}
