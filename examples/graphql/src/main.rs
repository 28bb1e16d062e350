//! graphql: a small library served with graphql-core. `/graphql` speaks GraphQL over HTTP
//! (GET and POST, `application/graphql-response+json` or `application/json`, mutations
//! refused over GET), streams `@defer` and `@stream` results as `multipart/mixed` parts to a
//! client whose `Accept` allows it, and runs subscriptions on a WebSocket with the
//! `graphql-transport-ws` subprotocol (the npm `graphql-ws` client's protocol) or over
//! Server-Sent Events (`Accept: text/event-stream`, the npm `graphql-sse` client's protocol,
//! both of its modes). `/` is a page
//! to send queries from a browser, run a subscription over the WebSocket and watch the books
//! arrive, and explore the schema; `/healthz` answers `ok`. `Book.author` is loaded through
//! a per-request DataLoader: a list of books costs one author lookup (`{ authorBatches }`
//! counts them).
//!
//! Run with: `cargo run -p graphql`, then open <http://127.0.0.1:8080/>.
//!
//! Try:
//!
//! ```text
//! curl -s 'http://127.0.0.1:8080/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D'
//! curl -s http://127.0.0.1:8080/graphql -H 'content-type: application/json' \
//!      -H 'accept: application/graphql-response+json' \
//!      -d '{"query":"mutation($t: String!) { addBook(title: $t, authorId: \"1\") { id title } }","variables":{"t":"Dune"}}'
//! curl -si 'http://127.0.0.1:8080/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D'  # 405
//! curl -si http://127.0.0.1:8080/graphql -H 'content-type: application/json' \
//!      -H 'accept: application/graphql-response+json' \
//!      -d '{"query":"subscription { bookAdded { title } }"}'  # 400: use the WebSocket
//! curl -sN http://127.0.0.1:8080/graphql -H 'content-type: application/json' \
//!      -H 'accept: multipart/mixed;incrementalSpec=v0.2, application/json' \
//!      -d '{"query":"{ book(id: \"1\") { id ... @defer { year author { name } } } }"}'  # parts
//! curl -si 'http://127.0.0.1:8080/graphql?query=%7Bauthors%7Bname%7D%7D' | grep -i cache-control
//!      # max-age=300, public (@cacheControl hints)
//! curl -s http://127.0.0.1:8080/graphql -H 'apollo-require-preflight: true' \
//!      -F operations='{"query":"mutation($f: Upload!) { attachCover(bookId: \"1\", file: $f) { cover { size } } }","variables":{"f":null}}' \
//!      -F map='{"0":["variables.f"]}' -F 0=@Cargo.toml  # a file upload (multipart request)
//! curl -sN http://127.0.0.1:8080/graphql -H 'accept: text/event-stream' \
//!      -H 'content-type: application/json' \
//!      -d '{"query":"subscription { bookAdded { title } }"}'  # Server-Sent Events
//! ```
//!
//! A subscription: `subscription { bookAdded { title } }` over the WebSocket, then add a book
//! with the mutation above. With `REDIS_URL` set, several instances share their `bookAdded`
//! events (Redis pub/sub, channel `graphql:bookAdded`); with `NATS_URL` and the `nats`
//! feature, over NATS instead (subject `graphql.bookAdded`). `PORT`, `BIND`, logging and the
//! shutdown are the `serve` crate's (examples/serve).

use std::process::ExitCode;
use std::sync::Arc;

use graphql::{App, Events, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    // With NATS_URL (feature `nats`) or REDIS_URL, subscribers on every instance get every
    // instance's events.
    let events = events().await?;
    let app = Arc::new(App::new(Settings {
        events,
        ..Settings::default()
    })?);
    tokio::spawn(Arc::clone(&app).run_events());
    server.serve(app).await
}

/// `NATS_URL` (with the `nats` feature), else `REDIS_URL`, else none.
async fn events() -> Result<Option<Events>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|url| !url.is_empty());
    #[cfg(feature = "nats")]
    if let Some(url) = var("NATS_URL") {
        let nats = graphql::NatsEvents::connect(&url, "graphql.bookAdded")
            .await
            .map_err(|error| format!("NATS_URL: {error}"))?;
        return Ok(Some(Events::Nats(nats)));
    }
    match var("REDIS_URL") {
        Some(url) => Ok(Some(Events::Redis(
            ws_core::RedisScaleOut::connect(&url, "graphql:")
                .await
                .map_err(|error| format!("REDIS_URL: {error}"))?,
        ))),
        None => Ok(None),
    }
}
