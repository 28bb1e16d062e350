//! The inbox: in Redis (feature `redis`) when the broker or `INBOX_URL` is a `redis://`
//! URL, else in memory.
//!
//! [`Inbox`](broker_core::Inbox) returns `impl Future`, so it is not object safe: this enum
//! forwards each call to the inbox it holds. (The broker is a [`broker_core::AnyBroker`].)

use std::time::Duration;

use broker_core::{Claim, Inbox as _, LeaseToken, MemoryInbox, MessageId, Result};

/// One of the compiled-in inboxes.
#[derive(Debug)]
pub(crate) enum Inbox {
    Memory(MemoryInbox),
    #[cfg(feature = "redis")]
    Redis(broker_core::RedisInbox),
}

/// Runs `$call` on whichever inbox `$inbox` holds, bound as `$i`.
macro_rules! each_inbox {
    ($inbox:expr, $i:ident => $call:expr) => {
        match $inbox {
            Inbox::Memory($i) => $call,
            #[cfg(feature = "redis")]
            Inbox::Redis($i) => $call,
        }
    };
}

impl Inbox {
    /// A Redis inbox at `url` when it is a `redis://` URL, else one in memory.
    pub(crate) async fn connect(url: Option<&str>, prefix: &str) -> Result<Self, String> {
        match url {
            #[cfg(feature = "redis")]
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                broker_core::RedisInbox::connect(url, &format!("{prefix}:"))
                    .await
                    .map(Self::Redis)
                    .map_err(|e| format!("inbox at {url}: {e}"))
            }
            _ => {
                let _ = prefix;
                Ok(Self::Memory(MemoryInbox::new()))
            }
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Inbox::Memory(_) => "memory",
            #[cfg(feature = "redis")]
            Inbox::Redis(_) => "redis",
        }
    }

    pub(crate) async fn claim(&self, id: MessageId, lease: Duration) -> Result<Claim> {
        each_inbox!(self, i => i.claim(id, lease).await)
    }

    pub(crate) async fn complete(
        &self,
        id: MessageId,
        token: &LeaseToken,
        keep: Duration,
    ) -> Result<()> {
        each_inbox!(self, i => i.complete(id, token, keep).await)
    }

    pub(crate) async fn release(&self, id: MessageId, token: &LeaseToken) -> Result<()> {
        each_inbox!(self, i => i.release(id, token).await)
    }
}
