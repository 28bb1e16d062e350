//! The transactional outbox: messages written in the same database transaction as the
//! business data, then relayed to the broker and marked sent. In SQLite
//! (`SqliteOutbox`, feature `outbox-sqlite`) and in PostgreSQL (`PostgresOutbox`, feature
//! `outbox-postgres`).
//!
//! A service that updates its database and publishes a message can lose one of the two in a
//! crash between them. With the outbox it writes the message into a table of the same
//! database, in the same transaction: both commit or neither. A relay publishes the
//! pending rows in order and marks each sent. A crash after a publish and before its mark
//! publishes that message again, with the same [`MessageId`](crate::MessageId): NATS drops
//! the copy (`Nats-Msg-Id`), and a consumer with an [`Inbox`](crate::Inbox) has its effect
//! once on every backend.

#[cfg(feature = "outbox-postgres")]
mod postgres;
#[cfg(feature = "outbox-sqlite")]
mod sqlite;

#[cfg(feature = "outbox-postgres")]
pub use postgres::PostgresOutbox;
#[cfg(feature = "outbox-sqlite")]
pub use sqlite::SqliteOutbox;

use crate::Envelope;

/// A message waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Its row, in the order messages were added.
    pub seq: i64,
    /// The queue it goes to.
    pub queue: String,
    /// The message.
    pub envelope: Envelope,
}

/// 1 to `max` of `a-z 0-9 _`, starting with a letter: a name that needs no quoting and
/// cannot carry SQL.
fn check_table_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
