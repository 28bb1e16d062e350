//! rest-api: users and posts over SQLite, served with rest-core primitives: full CRUD,
//! cursor and page paging with `Link` headers, ETags on reads, `If-Match` on writes (428
//! without it), CORS, idempotent POSTs (`Idempotency-Key`) and an OpenAPI 3.1 document.
//! Every error is an RFC 9457 `application/problem+json` body.
//!
//! Run with: `cargo run -p rest-api` (in memory),
//! `cargo run -p rest-api -- --db rest-api.sqlite` (a file that survives restarts), or
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run -p rest-api --features
//! postgres` (PostgreSQL, shared by every instance; migrated at start).
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8080/openapi.json | head -c 300
//! curl -i -X POST http://127.0.0.1:8080/users -H 'content-type: application/json' \
//!      -H 'idempotency-key: signup-ada-1' -d '{"name":"Ada","email":"ada@example.com"}'
//! curl -i http://127.0.0.1:8080/users/1                          # ETag: "v1"
//! curl -i http://127.0.0.1:8080/users/1 -H 'if-none-match: "v1"'  # 304
//! curl -i -X PUT http://127.0.0.1:8080/users/1 -H 'content-type: application/json' \
//!      -H 'if-match: "v1"' -d '{"name":"Ada L.","email":"ada@example.com"}'
//! curl -i -X PUT http://127.0.0.1:8080/users/1 -H 'content-type: application/json' \
//!      -d '{"name":"x","email":"x@y"}'                            # 428
//! curl -i -X POST http://127.0.0.1:8080/users/1/posts -H 'content-type: application/json' \
//!      -d '{"title":"Hello","body":"First post"}'
//! curl -i 'http://127.0.0.1:8080/users?limit=1'                   # Link: <...>; rel="next"
//! curl -i 'http://127.0.0.1:8080/users/1/posts?page=1&per_page=10'
//! curl -i -X DELETE http://127.0.0.1:8080/users/1 -H 'if-match: "v2"'
//! ```
//!
//! `--db FILE` or `--memory` win over `DATABASE_URL`, which may also name a SQLite file.
//! `CORS_ORIGIN` (default `http://localhost:3000`) is the one origin CORS allows; `CURSOR_KEY`
//! (32 bytes or more) signs paging cursors, the same on every instance. `PORT`,
//! `BIND`, `RUST_LOG`, `LOG_FORMAT=json` and the graceful shutdown are the `serve` crate's
//! (examples/serve).

use std::process::ExitCode;
use std::sync::Arc;

use rest_api::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let settings = Settings {
        db: database_from_args()?,
        cors_origin: std::env::var("CORS_ORIGIN")
            .unwrap_or_else(|_| "http://localhost:3000".to_owned()),
        // Set the same CURSOR_KEY (32+ bytes) on every instance behind one load balancer;
        // unset, each process draws its own at random.
        cursor_key: std::env::var("CURSOR_KEY").ok().map(String::into_bytes),
        ..Settings::default()
    };
    let app = App::new(&settings)?;
    app.migrate().await?;
    tracing::info!(engine = app.database_engine(), "database ready");
    let app = Arc::new(app);
    serve::Server::bind(8080).await?.serve(app).await
}

/// `--db FILE` (a SQLite file) or `--memory`; without either, `DATABASE_URL` (a
/// `postgres://` URL or a SQLite file), and without it, in memory.
fn database_from_args() -> Result<Option<String>, serve::Error> {
    let mut db = std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => {
                db = Some(
                    args.next()
                        .ok_or(serve::Error::usage("--db needs a file path"))?,
                )
            }
            "--memory" => db = None,
            "--help" | "-h" => {
                let usage = "usage: rest-api [--db FILE | --memory] \
                             (default: DATABASE_URL if set, else in memory)";
                return Err(serve::Error::usage(usage));
            }
            other => {
                return Err(serve::Error::usage(format!(
                    "unknown argument {other:?} (try --help)"
                )));
            }
        }
    }
    Ok(db)
}
