//! The schemathesis run of tests/schemathesis.rs again, with the server on PostgreSQL
//! (`DATABASE_URL`) in a schema of its own: the same document, the same zero failures.

#[path = "schemathesis.rs"]
mod suite;
