//! The embedded engine: SQLite through rusqlite, in memory or in a file, needing nothing
//! installed.
//!
//! Calls are short and run on the request's task behind one mutex: fine for an example and
//! for one process; several instances share PostgreSQL instead (`crate::postgres`).

use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::database::{DbError, DbResult, Versioned};
use crate::{Post, PostInput, User, UserInput};

/// The schema, one step per version; `PRAGMA user_version` records how many ran. Steps
/// only ever get appended.
const MIGRATIONS: &[&str] = &[
    // 1: users and posts. `IF NOT EXISTS`: files made before versioning already have them.
    "
    CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS posts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 1,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS posts_by_user ON posts(user_id, id);
    -- One user per e-mail address (`a@b` and `A@B` are one: NOCASE folds ASCII only).
    CREATE UNIQUE INDEX IF NOT EXISTS users_by_email ON users(email COLLATE NOCASE);
    ",
];

/// One SQLite connection.
pub(crate) struct Sqlite {
    connection: Mutex<Connection>,
}

impl Sqlite {
    /// Opens `path` (`None`: in memory) and runs the migrations it lacks.
    pub(crate) fn open(path: Option<&str>) -> Result<Self, String> {
        let mut connection = match path {
            Some(path) => Connection::open(path)
                .map_err(|error| format!("cannot open the database {path:?}: {error}"))?,
            None => Connection::open_in_memory()
                .map_err(|error| format!("cannot open an in-memory database: {error}"))?,
        };
        // Per connection, and a no-op inside a transaction: first.
        connection
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|error| format!("cannot enable foreign keys: {error}"))?;
        migrate(&mut connection)
            .map_err(|error| format!("cannot migrate the database: {error}"))?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn user(&self, id: i64) -> DbResult<Option<Versioned<User>>> {
        let conn = self.lock();
        conn.prepare_cached("SELECT id, name, email, version, updated_at FROM users WHERE id = ?1")?
            .query_row(params![id], |row| {
                Ok(Versioned {
                    value: User {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        email: row.get(2)?,
                    },
                    version: row.get(3)?,
                    updated_at: row.get(4)?,
                })
            })
            .optional()
            .map_err(DbError::from)
    }

    pub(crate) fn users_after(&self, after: i64, limit: i64) -> DbResult<Vec<User>> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT id, name, email FROM users WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, limit], |row| {
            Ok(User {
                id: row.get(0)?,
                name: row.get(1)?,
                email: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<User>>>()?)
    }

    pub(crate) fn insert_user(&self, input: &UserInput, now: i64) -> DbResult<i64> {
        let conn = self.lock();
        conn.prepare_cached("INSERT INTO users (name, email, updated_at) VALUES (?1, ?2, ?3)")?
            .execute(params![input.name, input.email, now])?;
        Ok(conn.last_insert_rowid())
    }

    pub(crate) fn update_user(
        &self,
        id: i64,
        version: i64,
        input: &UserInput,
        now: i64,
    ) -> DbResult<bool> {
        // The version check in SQL keeps the write atomic with the precondition.
        let changed = self
            .lock()
            .prepare_cached(
                "UPDATE users SET name = ?1, email = ?2, version = version + 1, updated_at = ?3 \
                 WHERE id = ?4 AND version = ?5",
            )?
            .execute(params![input.name, input.email, now, id, version])?;
        Ok(changed > 0)
    }

    pub(crate) fn delete_user(&self, id: i64, version: i64) -> DbResult<bool> {
        let changed = self
            .lock()
            .prepare_cached("DELETE FROM users WHERE id = ?1 AND version = ?2")?
            .execute(params![id, version])?;
        Ok(changed > 0)
    }

    pub(crate) fn post(&self, id: i64) -> DbResult<Option<Versioned<Post>>> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT id, user_id, title, body, version, updated_at FROM posts WHERE id = ?1",
        )?
        .query_row(params![id], |row| {
            Ok(Versioned {
                value: post_from_row(row)?,
                version: row.get(4)?,
                updated_at: row.get(5)?,
            })
        })
        .optional()
        .map_err(DbError::from)
    }

    pub(crate) fn posts_after(&self, after: i64, limit: i64) -> DbResult<Vec<Post>> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT id, user_id, title, body FROM posts WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, limit], post_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<Post>>>()?)
    }

    pub(crate) fn count_user_posts(&self, user_id: i64) -> DbResult<i64> {
        Ok(self
            .lock()
            .prepare_cached("SELECT COUNT(*) FROM posts WHERE user_id = ?1")?
            .query_row(params![user_id], |row| row.get(0))?)
    }

    pub(crate) fn user_posts(&self, user_id: i64, limit: i64, offset: i64) -> DbResult<Vec<Post>> {
        let conn = self.lock();
        let mut statement = conn.prepare_cached(
            "SELECT id, user_id, title, body FROM posts WHERE user_id = ?1 ORDER BY id \
             LIMIT ?2 OFFSET ?3",
        )?;
        let rows = statement.query_map(params![user_id, limit, offset], post_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<Post>>>()?)
    }

    pub(crate) fn insert_post(&self, user_id: i64, input: &PostInput, now: i64) -> DbResult<i64> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO posts (user_id, title, body, updated_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![user_id, input.title, input.body, now])?;
        Ok(conn.last_insert_rowid())
    }

    pub(crate) fn update_post(
        &self,
        id: i64,
        version: i64,
        input: &PostInput,
        now: i64,
    ) -> DbResult<bool> {
        let changed = self
            .lock()
            .prepare_cached(
                "UPDATE posts SET title = ?1, body = ?2, version = version + 1, updated_at = ?3 \
                 WHERE id = ?4 AND version = ?5",
            )?
            .execute(params![input.title, input.body, now, id, version])?;
        Ok(changed > 0)
    }

    pub(crate) fn delete_post(&self, id: i64, version: i64) -> DbResult<bool> {
        let changed = self
            .lock()
            .prepare_cached("DELETE FROM posts WHERE id = ?1 AND version = ?2")?
            .execute(params![id, version])?;
        Ok(changed > 0)
    }
}

/// Runs the steps of [`MIGRATIONS`] the file lacks, in one write transaction: `BEGIN
/// IMMEDIATE` takes SQLite's write lock first, so two processes opening one file at once
/// run each step once.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let done: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, step) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if version > done {
            transaction.execute_batch(step)?;
            // PRAGMA takes no parameters; the value is our own integer.
            transaction.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        }
    }
    transaction.commit()
}

fn post_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        id: row.get(0)?,
        user_id: row.get(1)?,
        title: row.get(2)?,
        body: row.get(3)?,
    })
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, _) = &error {
            match failure.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => return Self::EmailTaken,
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => return Self::NoSuchUser,
                _ => {}
            }
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) {
                return Self::Unavailable(error.to_string());
            }
        }
        Self::Failed(error.to_string())
    }
}
