//! A running rest-api binary and a minimal HTTP/1.1 client over `TcpStream`, so the tests
//! see exactly the bytes a real client sees.
//!
//! The engine follows the test target: `http_postgres` and `schemathesis_postgres` run the
//! suites of `http.rs` and `schemathesis.rs` again with each server on PostgreSQL
//! (`DATABASE_URL`), in a schema of its own that is dropped with the server; the other
//! targets run on SQLite in memory, whatever the environment says.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serve::testing::Process;

/// Whether this test target runs its servers on PostgreSQL (see the module docs).
pub(crate) fn postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_postgres")
}

/// The server process; killed when dropped, then its schema (PostgreSQL) is dropped.
pub(crate) struct Server {
    process: Process,
    #[cfg(feature = "postgres")]
    schema: Option<Schema>,
}

impl Server {
    /// A server on this target's engine; `None` (the test skips) when that is PostgreSQL
    /// and `DATABASE_URL` is not set.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    pub(crate) fn start_with(args: &[&str]) -> Option<Self> {
        Self::start_with_env(args, &[])
    }

    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Option<Self> {
        let mut binary = Command::new(env!("CARGO_BIN_EXE_rest-api"));
        binary
            .args(args)
            .envs(env.iter().copied())
            .env("CORS_ORIGIN", "https://app.example")
            .env_remove("DATABASE_URL")
            .stderr(Stdio::null());
        #[cfg(feature = "postgres")]
        let schema = if postgres() {
            if args.contains(&"--db") {
                println!("skipped on PostgreSQL: the test is about a SQLite file");
                return None;
            }
            let schema = Schema::create()?;
            binary.env("DATABASE_URL", schema.url());
            Some(schema)
        } else {
            None
        };
        #[cfg(not(feature = "postgres"))]
        assert!(
            !postgres(),
            "the PostgreSQL suites need the postgres feature"
        );
        Some(Self {
            process: Process::spawn(binary),
            #[cfg(feature = "postgres")]
            schema,
        })
    }

    pub(crate) fn url(&self) -> String {
        self.process.origin()
    }

    /// Sends one request (raw path bytes allowed) and reads the whole response.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &[u8],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = TcpStream::connect(self.process.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        request.extend_from_slice(method.as_bytes());
        request.push(b' ');
        request.extend_from_slice(path);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        // A server may answer (413) and close before the whole body is written.
        let _ = stream.write_all(&request);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Reply::parse(&raw)
    }

    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path.as_bytes(), headers, b"")
    }

    pub(crate) fn json(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.send(method, path.as_bytes(), &all, body.as_bytes())
    }
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// Asserts an RFC 9457 body with this status and returns it.
    pub(crate) fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert!(problem["title"].is_string());
        problem
    }
}

/// A PostgreSQL schema of its own for one test (`t_` and 16 random hex digits), so that
/// tests running in parallel, and CI runs one after another, never see each other's rows;
/// dropped with everything in it when the value is.
#[cfg(feature = "postgres")]
pub(crate) struct Schema {
    base: String,
    pub(crate) name: String,
}

#[cfg(feature = "postgres")]
impl Schema {
    /// A new schema in `DATABASE_URL`'s database; `None` (skip) when that is unset.
    pub(crate) fn create() -> Option<Self> {
        let base = serve::testing::peer("DATABASE_URL")?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let name = format!(
            "t_{}",
            random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        execute(&base, &format!("CREATE SCHEMA {name}"));
        Some(Self { base, name })
    }

    /// `DATABASE_URL` with this schema as the search path (libpq's `options`).
    pub(crate) fn url(&self) -> String {
        let separator = if self.base.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.base, self.name
        )
    }
}

#[cfg(feature = "postgres")]
impl Drop for Schema {
    fn drop(&mut self) {
        execute(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs `sql` on `url`, on a thread of its own (callers may be inside a runtime).
#[cfg(feature = "postgres")]
pub(crate) fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to DATABASE_URL: {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    })
    .join()
    .unwrap();
}
