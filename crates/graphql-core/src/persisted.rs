//! Automatic persisted queries (Apollo's APQ protocol) and a trusted-documents mode.
//!
//! A client sends `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}`,
//! first without the query text; the server answers `PersistedQueryNotFound` if it does not
//! know the hash, the client retries with the text, and the server checks the hash and
//! remembers it. In trusted-documents mode only documents registered ahead of time run
//! (by hash, or by the exact text), which shuts out arbitrary queries.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::RwLock;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::execution::Request;
use crate::response::GraphQLError;

/// Whether unknown documents may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistedMode {
    /// Any document runs; APQ hashes are learnt when the text is sent.
    Automatic,
    /// Only registered documents run; APQ cannot add new ones.
    TrustedOnly,
}

/// A bounded in-memory store of documents by SHA-256 hash (lowercase hex).
#[derive(Debug)]
pub struct PersistedQueries {
    mode: PersistedMode,
    capacity: usize,
    documents: RwLock<HashMap<String, String>>,
}

fn error(message: &str, code: &str) -> GraphQLError {
    let mut e = GraphQLError::new(message, vec![]);
    let mut ext = Map::new();
    ext.insert("code".to_owned(), Value::String(code.to_owned()));
    e.extensions = Some(ext);
    e
}

/// The SHA-256 of a document, lowercase hex (the APQ hash).
pub fn document_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl PersistedQueries {
    /// A store in `mode` remembering at most `capacity` learnt documents (cleared when
    /// full; registered documents count too).
    pub fn new(mode: PersistedMode, capacity: usize) -> Self {
        PersistedQueries {
            mode,
            capacity: capacity.max(1),
            documents: RwLock::new(HashMap::new()),
        }
    }

    /// Registers a trusted document; returns its hash.
    pub fn register(&self, text: &str) -> String {
        let hash = document_hash(text);
        if let Ok(mut docs) = self.documents.write() {
            docs.insert(hash.clone(), text.to_owned());
        }
        hash
    }

    /// Completes or checks `request` before execution: fills in the text of a known hash,
    /// learns a new one (APQ), and in trusted mode refuses unregistered documents.
    ///
    /// # Errors
    ///
    /// `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`) for an unknown hash
    /// without text, a hash mismatch (`PERSISTED_QUERY_HASH_MISMATCH`), an unsupported
    /// version, or an untrusted document (`PERSISTED_QUERY_NOT_TRUSTED`).
    pub fn apply(
        &self,
        request: &mut Request,
        extensions: Option<&Value>,
    ) -> Result<(), GraphQLError> {
        let persisted = extensions.and_then(|e| e.get("persistedQuery"));
        let Some(persisted) = persisted else {
            return self.check_trusted(&request.query);
        };
        if persisted.get("version").and_then(Value::as_i64) != Some(1) {
            return Err(error(
                "Unsupported persisted query version.",
                "PERSISTED_QUERY_VERSION_NOT_SUPPORTED",
            ));
        }
        let Some(hash) = persisted.get("sha256Hash").and_then(Value::as_str) else {
            return Err(error(
                "persistedQuery.sha256Hash is missing.",
                "BAD_REQUEST",
            ));
        };
        let hash = hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let known = self
                .documents
                .read()
                .ok()
                .and_then(|d| d.get(&hash).cloned());
            return match known {
                Some(text) => {
                    request.query = text;
                    Ok(())
                }
                None => Err(error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")),
            };
        }
        if document_hash(&request.query) != hash {
            return Err(error(
                "provided sha does not match query",
                "PERSISTED_QUERY_HASH_MISMATCH",
            ));
        }
        self.check_trusted(&request.query)?;
        if self.mode == PersistedMode::Automatic
            && let Ok(mut docs) = self.documents.write()
        {
            if docs.len() >= self.capacity {
                docs.clear();
            }
            docs.insert(hash, request.query.clone());
        }
        Ok(())
    }

    fn check_trusted(&self, text: &str) -> Result<(), GraphQLError> {
        if self.mode == PersistedMode::Automatic {
            return Ok(());
        }
        let trusted = self
            .documents
            .read()
            .is_ok_and(|d| d.contains_key(&document_hash(text)));
        if trusted {
            Ok(())
        } else {
            Err(error(
                "Only trusted documents may run on this server.",
                "PERSISTED_QUERY_NOT_TRUSTED",
            ))
        }
    }
}
