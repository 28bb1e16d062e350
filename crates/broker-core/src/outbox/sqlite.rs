//! The transactional outbox in SQLite (feature `outbox-sqlite`); see [`crate::outbox`] for
//! the contract. A relay ([`SqliteOutbox::relay`]) publishes the pending rows in order and
//! marks each sent.
//!
//! ```
//! use broker_core::{Broker, EmbeddedBroker, Envelope, QueueConfig, SqliteOutbox};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let outbox = SqliteOutbox::new("outbox")?;
//! let mut db = rusqlite::Connection::open_in_memory().unwrap();
//! db.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)").unwrap();
//! outbox.create_table(&db)?;
//!
//! // The order and its event commit together.
//! let tx = db.transaction().unwrap();
//! tx.execute("INSERT INTO orders (item) VALUES ('book')", []).unwrap();
//! outbox.add(&tx, "orders", &Envelope::new("order placed"))?;
//! tx.commit().unwrap();
//!
//! let broker = EmbeddedBroker::new();
//! broker.declare("orders", &QueueConfig::default()).await?;
//! let db = std::sync::Mutex::new(db);
//! assert_eq!(outbox.relay(&db, &broker, 100).await?, 1);
//! assert_eq!(outbox.relay(&db, &broker, 100).await?, 0); // marked sent
//! # Ok::<(), broker_core::Error>(())
//! # }).unwrap();
//! ```

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::{OutboxMessage, check_table_name};
use crate::{Broker, Envelope, Error, Result};

fn sqlite(e: &rusqlite::Error) -> Error {
    Error::Backend {
        backend: "sqlite",
        detail: e.to_string(),
    }
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // rusqlite leaves the connection usable after a panic elsewhere.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An outbox table in a SQLite database: `seq` (the order), `id` (the message id, unique),
/// `queue`, `headers` (the wire header block), `payload`, `created_ms`, `sent_ms` (null
/// until relayed).
#[derive(Clone, Debug)]
pub struct SqliteOutbox {
    table: String,
}

impl SqliteOutbox {
    /// An outbox in `table` (1 to 64 of `a-z 0-9 _`, starting with a letter).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another name.
    pub fn new(table: &str) -> Result<Self> {
        if !check_table_name(table, 64) {
            return Err(Error::InvalidConfig(
                "outbox table: use 1 to 64 of a-z 0-9 _, starting with a letter",
            ));
        }
        Ok(Self {
            table: table.to_owned(),
        })
    }

    /// Creates the table and its index of pending rows if they do not exist.
    ///
    /// # Errors
    /// [`Error::Backend`] from SQLite.
    pub fn create_table(&self, db: &Connection) -> Result<()> {
        let t = &self.table;
        db.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                queue TEXT NOT NULL,
                headers BLOB NOT NULL,
                payload BLOB NOT NULL,
                created_ms INTEGER NOT NULL,
                sent_ms INTEGER
            );
            CREATE INDEX IF NOT EXISTS {t}_pending ON {t}(seq) WHERE sent_ms IS NULL;"
        ))
        .map_err(|e| sqlite(&e))
    }

    /// Adds a message for `queue` on `db`: pass the transaction that writes the business
    /// data (a `rusqlite::Transaction` is a `Connection`), so both commit or neither.
    ///
    /// # Errors
    /// [`Error::InvalidQueueName`], or [`Error::Backend`] from SQLite (a message id
    /// already in the outbox among them).
    pub fn add(&self, db: &Connection, queue: &str, envelope: &Envelope) -> Result<()> {
        crate::check_queue_name(queue)?;
        db.execute(
            &format!(
                "INSERT INTO {} (id, queue, headers, payload, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                self.table
            ),
            params![
                envelope.id().to_string(),
                queue,
                envelope.to_wire_headers(),
                envelope.payload().as_ref(),
                now_ms()
            ],
        )
        .map(|_| ())
        .map_err(|e| sqlite(&e))
    }

    /// Up to `max` messages not yet sent, oldest first.
    ///
    /// # Errors
    /// [`Error::Backend`] from SQLite; [`Error::WireHeader`] for a row whose headers do not
    /// parse.
    pub fn pending(&self, db: &Connection, max: usize) -> Result<Vec<OutboxMessage>> {
        let mut statement = db
            .prepare_cached(&format!(
                "SELECT seq, queue, headers, payload FROM {} WHERE sent_ms IS NULL ORDER BY seq LIMIT ?1",
                self.table
            ))
            .map_err(|e| sqlite(&e))?;
        let rows = statement
            .query_map([i64::try_from(max).unwrap_or(i64::MAX)], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(|e| sqlite(&e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, queue, headers, payload) = row.map_err(|e| sqlite(&e))?;
            let envelope = Envelope::from_wire(&headers, Bytes::from(payload))?;
            out.push(OutboxMessage {
                seq,
                queue,
                envelope,
            });
        }
        Ok(out)
    }

    /// Marks the message in row `seq` sent.
    ///
    /// # Errors
    /// [`Error::Backend`] from SQLite.
    pub fn mark_sent(&self, db: &Connection, seq: i64) -> Result<()> {
        db.execute(
            &format!("UPDATE {} SET sent_ms = ?1 WHERE seq = ?2", self.table),
            params![now_ms(), seq],
        )
        .map(|_| ())
        .map_err(|e| sqlite(&e))
    }

    /// Deletes sent messages older than `before`; returns how many.
    ///
    /// # Errors
    /// [`Error::Backend`] from SQLite.
    pub fn purge_sent(&self, db: &Connection, before: SystemTime) -> Result<usize> {
        let before = before
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        db.execute(
            &format!(
                "DELETE FROM {} WHERE sent_ms IS NOT NULL AND sent_ms < ?1",
                self.table
            ),
            [before],
        )
        .map_err(|e| sqlite(&e))
    }

    /// Publishes up to `max` pending messages in order, marking each sent after the broker
    /// confirmed it; returns how many were sent. The database lock is not held while
    /// publishing. Stops at the first failure (later messages wait for the next relay, so
    /// the order holds); a message published but not marked is published again next time.
    ///
    /// # Errors
    /// The first error from SQLite or the broker.
    pub async fn relay(
        &self,
        db: &Mutex<Connection>,
        broker: &impl Broker,
        max: usize,
    ) -> Result<usize> {
        let pending = self.pending(&lock(db), max)?;
        let mut sent = 0;
        for message in pending {
            broker.publish(&message.queue, message.envelope).await?;
            self.mark_sent(&lock(db), message.seq)?;
            sent += 1;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(SqliteOutbox::new("outbox_1").is_ok());
        for bad in ["", "1x", "Outbox", "a;drop", &"a".repeat(65)] {
            assert!(SqliteOutbox::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rows_keep_the_envelope_and_purge_removes_sent_ones() {
        let db = Connection::open_in_memory().unwrap();
        let outbox = SqliteOutbox::new("outbox").unwrap();
        outbox.create_table(&db).unwrap();
        let envelope = Envelope::new("hi")
            .with_header("correlation-id", "7")
            .unwrap();
        outbox.add(&db, "q", &envelope).unwrap();
        // The same message twice is refused (the id is unique).
        assert!(outbox.add(&db, "q", &envelope).is_err());
        assert!(outbox.add(&db, "bad queue", &Envelope::new("x")).is_err());
        let pending = outbox.pending(&db, 10).unwrap();
        assert_eq!(pending.len(), 1);
        let first = pending.first().unwrap();
        assert_eq!(first.envelope.id(), envelope.id());
        assert_eq!(first.envelope.headers().correlation_id(), Some("7"));
        assert_eq!(first.envelope.payload().as_ref(), b"hi");
        outbox.mark_sent(&db, first.seq).unwrap();
        assert!(outbox.pending(&db, 10).unwrap().is_empty());
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert_eq!(outbox.purge_sent(&db, later).unwrap(), 1);
    }
}
