//! [`Either`]: one of two stores, chosen at run time, behind one type.
//!
//! The stores' traits return `impl Future`, so they cannot be trait objects; an application
//! that picks its store from its configuration (in memory for one process, Redis when
//! several instances share state) holds an `Either<MemoryStore, RedisStore>` and calls it
//! like either.
//!
//! ```
//! use auth_core::{Either, MemoryStore, SessionConfig, Sessions};
//!
//! # #[derive(Clone)] struct Elsewhere;
//! # impl auth_core::SessionStore for Elsewhere {
//! #     async fn load(&self, _: &auth_core::SessionId) -> auth_core::Result<Option<auth_core::SessionRecord>> { Ok(None) }
//! #     async fn save(&self, _: &auth_core::SessionId, _: &auth_core::SessionChange<'_>) -> auth_core::Result<()> { Ok(()) }
//! #     async fn delete(&self, _: &auth_core::SessionId) -> auth_core::Result<()> { Ok(()) }
//! #     async fn delete_user(&self, _: &str) -> auth_core::Result<usize> { Ok(0) }
//! # }
//! let shared: Option<Elsewhere> = None; // from the configuration
//! let store = match shared {
//!     Some(store) => Either::Right(store),
//!     None => Either::Left(MemoryStore::new()),
//! };
//! let sessions = Sessions::new(store, SessionConfig::default());
//! # let _ = sessions;
//! ```

use crate::Result;
use crate::refresh::{RefreshRecord, RefreshStore, TokenHash};
use crate::session::{SessionChange, SessionId, SessionRecord, SessionStore};
use crate::throttle::{AttemptCount, AttemptStore, Reservation};

/// One of two stores, chosen at run time; it implements each store trait both implement,
/// by handing every call to the one it holds.
#[derive(Debug, Clone)]
pub enum Either<A, B> {
    /// The first kind (by convention the embedded, in-memory one).
    Left(A),
    /// The second kind (by convention the shared one, such as Redis).
    Right(B),
}

impl<A, B> Either<A, B> {
    /// The first kind's store, if that is the one held.
    pub fn left(&self) -> Option<&A> {
        match self {
            Self::Left(store) => Some(store),
            Self::Right(_) => None,
        }
    }

    /// The second kind's store, if that is the one held.
    pub fn right(&self) -> Option<&B> {
        match self {
            Self::Left(_) => None,
            Self::Right(store) => Some(store),
        }
    }
}

/// Hands one call to whichever store is held.
macro_rules! forward {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Either::Left($store) => $call.await,
            Either::Right($store) => $call.await,
        }
    };
}

impl<A: SessionStore, B: SessionStore> SessionStore for Either<A, B> {
    async fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        forward!(self, store => store.load(id))
    }

    async fn save(&self, id: &SessionId, change: &SessionChange<'_>) -> Result<()> {
        forward!(self, store => store.save(id, change))
    }

    async fn delete(&self, id: &SessionId) -> Result<()> {
        forward!(self, store => store.delete(id))
    }

    async fn delete_user(&self, user: &str) -> Result<usize> {
        forward!(self, store => store.delete_user(user))
    }
}

impl<A: AttemptStore, B: AttemptStore> AttemptStore for Either<A, B> {
    async fn get(&self, key: &str, now: u64) -> Result<Option<AttemptCount>> {
        forward!(self, store => store.get(key, now))
    }

    async fn increment(&self, key: &str, window: u64, now: u64) -> Result<AttemptCount> {
        forward!(self, store => store.increment(key, window, now))
    }

    async fn reset(&self, key: &str) -> Result<()> {
        forward!(self, store => store.reset(key))
    }

    async fn reserve(&self, key: &str, limit: u32, window: u64, now: u64) -> Result<Reservation> {
        forward!(self, store => store.reserve(key, limit, window, now))
    }

    async fn release(&self, key: &str, now: u64) -> Result<()> {
        forward!(self, store => store.release(key, now))
    }
}

impl<A: RefreshStore, B: RefreshStore> RefreshStore for Either<A, B> {
    async fn insert(&self, record: RefreshRecord) -> Result<()> {
        forward!(self, store => store.insert(record))
    }

    async fn take(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        forward!(self, store => store.take(hash))
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        forward!(self, store => store.revoke_family(family))
    }

    async fn get(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        forward!(self, store => store.get(hash))
    }
}

#[cfg(feature = "oauth")]
mod oauth {
    use super::Either;
    use crate::oauth::server::{AccessRecord, CodeRecord, Grant, GrantStore};
    use crate::{Result, TokenHash};

    impl<A: GrantStore, B: GrantStore> GrantStore for Either<A, B> {
        async fn insert_code(&self, hash: TokenHash, record: CodeRecord) -> Result<()> {
            forward!(self, store => store.insert_code(hash, record))
        }

        async fn take_code(&self, hash: &TokenHash) -> Result<Option<CodeRecord>> {
            forward!(self, store => store.take_code(hash))
        }

        async fn insert_grant(&self, grant: Grant) -> Result<()> {
            forward!(self, store => store.insert_grant(grant))
        }

        async fn extend_grant(&self, id: &str, expires_at: u64) -> Result<bool> {
            forward!(self, store => store.extend_grant(id, expires_at))
        }

        async fn grant(&self, id: &str) -> Result<Option<Grant>> {
            forward!(self, store => store.grant(id))
        }

        async fn revoke_grant(&self, id: &str) -> Result<()> {
            forward!(self, store => store.revoke_grant(id))
        }

        async fn insert_access_token(&self, hash: TokenHash, record: AccessRecord) -> Result<()> {
            forward!(self, store => store.insert_access_token(hash, record))
        }

        async fn access_token(&self, hash: &TokenHash) -> Result<Option<AccessRecord>> {
            forward!(self, store => store.access_token(hash))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::{Error, LoginThrottle, MemoryAttemptStore, ThrottlePolicy};

    #[tokio::test]
    async fn hands_calls_to_the_store_it_holds() {
        let policy = ThrottlePolicy {
            max_account_failures: 1,
            ..ThrottlePolicy::default()
        };
        let store: Either<MemoryAttemptStore, MemoryAttemptStore> =
            Either::Right(MemoryAttemptStore::new());
        assert!(store.left().is_none());
        let throttle = LoginThrottle::new(store, policy);
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        throttle.reserve("eve", addr, now).await.unwrap().failed();
        assert!(matches!(
            throttle.reserve("eve", addr, now).await,
            Err(Error::Throttled { .. })
        ));
    }
}
