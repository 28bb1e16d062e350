//! The transactional outbox in PostgreSQL (feature `outbox-postgres`, on `tokio-postgres`);
//! see [`crate::outbox`] for the contract.
//!
//! [`PostgresOutbox::add`] takes the caller's transaction (any `tokio_postgres`
//! [`GenericClient`]), so the message commits with the business data or not at all.
//! [`PostgresOutbox::relay`] runs in a transaction of its own: it locks up to `max` pending
//! rows with `SELECT … ORDER BY seq … FOR UPDATE SKIP LOCKED`, publishes them in that order,
//! marks the published ones sent and commits. Several relays (several instances of a
//! service) can run at once: a row locked by one relay is skipped by the others, and a row
//! a relay committed as sent is no longer pending for the next, so in normal operation each
//! row is published once. A relay that dies before its commit (process killed, connection
//! lost) leaves its rows unlocked and unmarked, and the next relay publishes them again
//! with the same [`MessageId`](crate::MessageId).
//!
//! With several relays at once each one publishes its own batch in order, but the batches
//! interleave. Where the order across all messages matters, make the relays take turns:
//! [`PostgresOutbox::exclusive_relay`] has each relay first take a transaction-scoped
//! advisory lock (`pg_try_advisory_xact_lock`) keyed by the table name; a relay that does
//! not get it publishes nothing and returns 0.
//!
//! Order is `seq` order (a `bigint` identity). Two writer transactions can commit in the
//! opposite order to their `seq`s; a relay running between the two commits publishes the
//! later `seq` first. Messages whose order matters are best written by one transaction or
//! one writer at a time.
//!
//! ```no_run
//! use broker_core::{Broker, EmbeddedBroker, Envelope, PostgresOutbox, QueueConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (mut db, connection) =
//!     tokio_postgres::connect("postgres://postgres@127.0.0.1/app", tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let outbox = PostgresOutbox::new("app.outbox")?;
//! outbox.create_table(&db).await?;
//!
//! // The order and its event commit together.
//! let tx = db.transaction().await?;
//! tx.execute("INSERT INTO app.orders (item) VALUES ('book')", &[]).await?;
//! outbox.add(&tx, "orders", &Envelope::new("order placed")).await?;
//! tx.commit().await?;
//!
//! let broker = EmbeddedBroker::new();
//! broker.declare("orders", &QueueConfig::default()).await?;
//! assert_eq!(outbox.relay(&mut db, &broker, 100).await?, 1);
//! # Ok(())
//! # }
//! ```

use std::time::SystemTime;

use bytes::Bytes;
use tokio_postgres::{Client, GenericClient, Row};

use super::{OutboxMessage, check_table_name};
use crate::{Broker, Envelope, Error, Result};

fn pg(e: &tokio_postgres::Error) -> Error {
    Error::Backend {
        backend: "postgres",
        detail: e.to_string(),
    }
}

/// FNV-1a of the table name: the advisory lock key of [`PostgresOutbox::exclusive_relay`].
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// An outbox table in a PostgreSQL database: `seq` (a `bigint` identity, the order), `id`
/// (the message id, unique), `queue`, `headers` (the wire header block), `payload`,
/// `created_at`, `sent_at` (null until relayed), and a partial index of the pending rows.
#[derive(Clone, Debug)]
pub struct PostgresOutbox {
    /// The table as SQL: `"table"` or `"schema"."table"`.
    table: String,
    /// `table` or `table_pending` without the schema, for the index name.
    index: String,
    exclusive: bool,
    lock_key: i64,
}

impl PostgresOutbox {
    /// An outbox in `table`: a name, or `schema.name` for a table in another schema
    /// (which must exist); each part 1 to 55 of `a-z 0-9 _`, starting with a letter. The
    /// name is checked, never spliced in unchecked; it is quoted in every statement.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another name.
    pub fn new(table: &str) -> Result<Self> {
        let (schema, name) = match table.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, table),
        };
        // 55 leaves room for the index name `<name>_pending` in PostgreSQL's 63 bytes.
        let valid = check_table_name(name, 55) && schema.is_none_or(|s| check_table_name(s, 55));
        if !valid {
            return Err(Error::InvalidConfig(
                "outbox table: use `name` or `schema.name`, each 1 to 55 of a-z 0-9 _, \
                 starting with a letter",
            ));
        }
        let quoted = match schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        };
        Ok(Self {
            table: quoted,
            index: format!("\"{name}_pending\""),
            exclusive: false,
            lock_key: lock_key(table),
        })
    }

    /// With `true`, one relay at a time publishes (the others return 0 at once), so the
    /// order holds across all messages even with several relays running; see the module
    /// docs. Off by default: relays share the pending rows through `SKIP LOCKED`.
    #[must_use]
    pub fn exclusive_relay(mut self, on: bool) -> Self {
        self.exclusive = on;
        self
    }

    /// Creates the table and its index of pending rows if they do not exist.
    ///
    /// # Errors
    /// [`Error::Backend`] from PostgreSQL.
    pub async fn create_table(&self, db: &impl GenericClient) -> Result<()> {
        let (t, i) = (&self.table, &self.index);
        db.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id text NOT NULL UNIQUE,
                queue text NOT NULL,
                headers bytea NOT NULL,
                payload bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                sent_at timestamptz
            );
            CREATE INDEX IF NOT EXISTS {i} ON {t} (seq) WHERE sent_at IS NULL;"
        ))
        .await
        .map_err(|e| pg(&e))
    }

    /// Adds a message for `queue` on `db`: pass the transaction that writes the business
    /// data, so both commit or neither.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`], or [`Error::Backend`] from PostgreSQL (a message id
    /// already in the outbox among them).
    pub async fn add(
        &self,
        db: &impl GenericClient,
        queue: &str,
        envelope: &Envelope,
    ) -> Result<()> {
        crate::check_queue_name(queue)?;
        let id = envelope.id().to_string();
        let headers = envelope.to_wire_headers();
        let payload: &[u8] = envelope.payload().as_ref();
        db.execute(
            &format!(
                "INSERT INTO {} (id, queue, headers, payload) VALUES ($1, $2, $3, $4)",
                self.table
            ),
            &[&id, &queue, &headers, &payload],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg(&e))
    }

    /// Up to `max` messages not yet sent, oldest first (a plain read: no rows are locked).
    ///
    /// # Errors
    /// [`Error::Backend`] from PostgreSQL; [`Error::WireHeader`] for a row whose headers
    /// do not parse.
    pub async fn pending(&self, db: &impl GenericClient, max: usize) -> Result<Vec<OutboxMessage>> {
        self.select(db, max, "").await
    }

    /// Like [`pending`](Self::pending), and locks the rows it returns (`FOR UPDATE SKIP
    /// LOCKED`): inside a transaction, other relays skip them until it ends. What
    /// [`relay`](Self::relay) does first; for a relay of your own.
    ///
    /// # Errors
    /// As [`pending`](Self::pending).
    pub async fn claim(&self, tx: &impl GenericClient, max: usize) -> Result<Vec<OutboxMessage>> {
        self.select(tx, max, " FOR UPDATE SKIP LOCKED").await
    }

    async fn select(
        &self,
        db: &impl GenericClient,
        max: usize,
        lock: &str,
    ) -> Result<Vec<OutboxMessage>> {
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = db
            .query(
                &format!(
                    "SELECT seq, queue, headers, payload FROM {} WHERE sent_at IS NULL \
                     ORDER BY seq LIMIT $1{lock}",
                    self.table
                ),
                &[&limit],
            )
            .await
            .map_err(|e| pg(&e))?;
        rows.iter().map(message).collect()
    }

    /// Marks the messages in rows `seqs` sent.
    ///
    /// # Errors
    /// [`Error::Backend`] from PostgreSQL.
    pub async fn mark_sent(&self, db: &impl GenericClient, seqs: &[i64]) -> Result<()> {
        db.execute(
            &format!(
                "UPDATE {} SET sent_at = now() WHERE seq = ANY($1)",
                self.table
            ),
            &[&seqs],
        )
        .await
        .map(|_| ())
        .map_err(|e| pg(&e))
    }

    /// Deletes sent messages marked before `before`; returns how many.
    ///
    /// # Errors
    /// [`Error::Backend`] from PostgreSQL.
    pub async fn purge_sent(&self, db: &impl GenericClient, before: SystemTime) -> Result<u64> {
        db.execute(
            &format!(
                "DELETE FROM {} WHERE sent_at IS NOT NULL AND sent_at < $1",
                self.table
            ),
            &[&before],
        )
        .await
        .map_err(|e| pg(&e))
    }

    /// In a transaction of its own on `db`: locks up to `max` pending messages (skipping
    /// rows another relay holds), publishes them in order, marks those the broker confirmed
    /// sent, and commits; returns how many were sent. Stops at the first publish that
    /// fails (later messages wait for the next relay, so the order holds), still committing
    /// the marks of those before it. A message published but not marked (a relay that died
    /// before its commit) is published again next time, with the same id.
    ///
    /// The transaction stays open while the batch is published: `max` bounds how long.
    ///
    /// # Errors
    /// The first error from PostgreSQL or the broker.
    pub async fn relay(&self, db: &mut Client, broker: &impl Broker, max: usize) -> Result<usize> {
        let tx = db.transaction().await.map_err(|e| pg(&e))?;
        if self.exclusive {
            let row = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&self.lock_key])
                .await
                .map_err(|e| pg(&e))?;
            let locked: bool = row.try_get(0).map_err(|e| pg(&e))?;
            if !locked {
                return Ok(0);
            }
        }
        let batch = self.claim(&tx, max).await?;
        let mut sent = Vec::with_capacity(batch.len());
        let mut failure = None;
        for message in batch {
            match broker.publish(&message.queue, message.envelope).await {
                Ok(()) => sent.push(message.seq),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !sent.is_empty() {
            self.mark_sent(&tx, &sent).await?;
        }
        tx.commit().await.map_err(|e| pg(&e))?;
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len()),
        }
    }
}

fn message(row: &Row) -> Result<OutboxMessage> {
    let seq: i64 = row.try_get(0).map_err(|e| pg(&e))?;
    let queue: String = row.try_get(1).map_err(|e| pg(&e))?;
    let headers: Vec<u8> = row.try_get(2).map_err(|e| pg(&e))?;
    let payload: Vec<u8> = row.try_get(3).map_err(|e| pg(&e))?;
    let envelope = Envelope::from_wire(&headers, Bytes::from(payload))?;
    Ok(OutboxMessage {
        seq,
        queue,
        envelope,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn table_names_are_checked_and_quoted() {
        let outbox = PostgresOutbox::new("outbox_1").unwrap();
        assert_eq!(outbox.table, "\"outbox_1\"");
        assert_eq!(outbox.index, "\"outbox_1_pending\"");
        let outbox = PostgresOutbox::new("app.outbox").unwrap();
        assert_eq!(outbox.table, "\"app\".\"outbox\"");
        assert_eq!(outbox.index, "\"outbox_pending\"");
        for bad in [
            "",
            "1x",
            "Outbox",
            "a;drop table x",
            "a\"b",
            "a.b.c",
            ".a",
            "a.",
            "a b",
            &"a".repeat(56),
        ] {
            assert!(PostgresOutbox::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_keys_differ_by_table() {
        assert_ne!(lock_key("a.outbox"), lock_key("b.outbox"));
        assert_eq!(lock_key("outbox"), lock_key("outbox"));
    }
}
