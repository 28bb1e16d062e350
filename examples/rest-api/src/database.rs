//! The data layer: users and posts on one of two engines, behind one set of calls.
//!
//! [`Database`] is the repository the handlers use. Each engine writes its own SQL (SQLite's
//! and PostgreSQL's dialects differ in ids, upserts and case folding), and both keep the
//! same rules: ids never reused, one user per e-mail address (ASCII case folded), a post's
//! user must exist, and writes that name a `version` change nothing when it is stale.

use crate::{Post, PostInput, User, UserInput};

/// A row with the validators the HTTP layer derives its `ETag` and `Last-Modified` from.
#[derive(Debug)]
pub(crate) struct Versioned<T> {
    /// The row.
    pub(crate) value: T,
    /// Bumped by every write; the strong ETag is `"v{version}"`.
    pub(crate) version: i64,
    /// Seconds since the Unix epoch of the last write.
    pub(crate) updated_at: i64,
}

/// What a data-layer call can fail with.
#[derive(Debug)]
pub(crate) enum DbError {
    /// The unique e-mail index refused the write (409).
    EmailTaken,
    /// The user a post is written for does not exist, or was deleted meanwhile (404).
    NoSuchUser,
    /// The engine cannot be reached: refused, lost or timed out (503, try again).
    Unavailable(String),
    /// Anything else the engine reported (500).
    Failed(String),
}

/// The result of a data-layer call.
pub(crate) type DbResult<T> = Result<T, DbError>;

/// The engine the data lives in.
pub(crate) enum Database {
    /// Embedded SQLite: in memory or a file.
    Sqlite(crate::sqlite::Sqlite),
    /// A PostgreSQL server, shared by every instance.
    #[cfg(feature = "postgres")]
    Postgres(crate::postgres::Postgres),
}

/// Calls the same method on whichever engine this is.
macro_rules! each_engine {
    ($self:ident, $engine:ident => $call:expr) => {
        match $self {
            Database::Sqlite($engine) => $call,
            #[cfg(feature = "postgres")]
            Database::Postgres($engine) => $call.await,
        }
    };
}

impl Database {
    /// Opens the database `db` names: `None` is SQLite in memory, a `postgres://` or
    /// `postgresql://` URL is PostgreSQL (connected to lazily; see [`Database::migrate`]),
    /// anything else is a SQLite file. SQLite's migrations run here.
    pub(crate) fn open(db: Option<&str>) -> Result<Self, String> {
        match db {
            Some(url) if is_postgres_url(url) => Self::open_postgres(url),
            other => crate::sqlite::Sqlite::open(other).map(Self::Sqlite),
        }
    }

    #[cfg(feature = "postgres")]
    fn open_postgres(url: &str) -> Result<Self, String> {
        crate::postgres::Postgres::new(url).map(Self::Postgres)
    }

    #[cfg(not(feature = "postgres"))]
    fn open_postgres(_url: &str) -> Result<Self, String> {
        Err(
            "the database is a PostgreSQL URL, but rest-api was built without its \
             `postgres` feature (cargo run -p rest-api --features postgres)"
                .to_owned(),
        )
    }

    /// The engine's name, for logs and the landing page.
    pub(crate) fn engine(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "SQLite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "PostgreSQL",
        }
    }

    /// Connects now and brings the schema up to date (PostgreSQL; SQLite did it on open).
    pub(crate) async fn migrate(&self) -> Result<(), String> {
        match self {
            Self::Sqlite(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Self::Postgres(engine) => engine.migrate().await,
        }
    }

    pub(crate) async fn user(&self, id: i64) -> DbResult<Option<Versioned<User>>> {
        each_engine!(self, engine => engine.user(id))
    }

    /// At most `limit` users with an id above `after`, by id.
    pub(crate) async fn users_after(&self, after: i64, limit: i64) -> DbResult<Vec<User>> {
        each_engine!(self, engine => engine.users_after(after, limit))
    }

    /// The new user's id.
    pub(crate) async fn insert_user(&self, input: &UserInput, now: i64) -> DbResult<i64> {
        each_engine!(self, engine => engine.insert_user(input, now))
    }

    /// Whether the user was at `version` and is replaced.
    pub(crate) async fn update_user(
        &self,
        id: i64,
        version: i64,
        input: &UserInput,
        now: i64,
    ) -> DbResult<bool> {
        each_engine!(self, engine => engine.update_user(id, version, input, now))
    }

    /// Whether the user was at `version` and is deleted (with their posts).
    pub(crate) async fn delete_user(&self, id: i64, version: i64) -> DbResult<bool> {
        each_engine!(self, engine => engine.delete_user(id, version))
    }

    pub(crate) async fn post(&self, id: i64) -> DbResult<Option<Versioned<Post>>> {
        each_engine!(self, engine => engine.post(id))
    }

    /// At most `limit` posts with an id above `after`, by id.
    pub(crate) async fn posts_after(&self, after: i64, limit: i64) -> DbResult<Vec<Post>> {
        each_engine!(self, engine => engine.posts_after(after, limit))
    }

    /// How many posts a user has.
    pub(crate) async fn count_user_posts(&self, user_id: i64) -> DbResult<i64> {
        each_engine!(self, engine => engine.count_user_posts(user_id))
    }

    /// One numbered page of a user's posts, by id.
    pub(crate) async fn user_posts(
        &self,
        user_id: i64,
        limit: i64,
        offset: i64,
    ) -> DbResult<Vec<Post>> {
        each_engine!(self, engine => engine.user_posts(user_id, limit, offset))
    }

    /// The new post's id; [`DbError::NoSuchUser`] if the user is gone.
    pub(crate) async fn insert_post(
        &self,
        user_id: i64,
        input: &PostInput,
        now: i64,
    ) -> DbResult<i64> {
        each_engine!(self, engine => engine.insert_post(user_id, input, now))
    }

    /// Whether the post was at `version` and is replaced.
    pub(crate) async fn update_post(
        &self,
        id: i64,
        version: i64,
        input: &PostInput,
        now: i64,
    ) -> DbResult<bool> {
        each_engine!(self, engine => engine.update_post(id, version, input, now))
    }

    /// Whether the post was at `version` and is deleted.
    pub(crate) async fn delete_post(&self, id: i64, version: i64) -> DbResult<bool> {
        each_engine!(self, engine => engine.delete_post(id, version))
    }
}

/// Whether `db` names a PostgreSQL server rather than a SQLite file.
fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}
