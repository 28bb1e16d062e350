//! federation: two Apollo Federation v2 subgraphs served with graphql-core on one port,
//! `products` at `/products/graphql` and `reviews` at `/reviews/graphql`, for a gateway or
//! router to compose (the test runs `@apollo/gateway` with `IntrospectAndCompose` on them).
//!
//! Run with: `cargo run -p federation`, then point a gateway at the two URLs.
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8080/products/graphql -H 'content-type: application/json' \
//!      -d '{"query":"{ _service { sdl } }"}'
//! curl -s http://127.0.0.1:8080/reviews/graphql -H 'content-type: application/json' \
//!      -d '{"query":"query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { reviews { body } } } }","variables":{"r":[{"__typename":"Product","upc":"1","price":100}]}}'
//! ```
//!
//! `PORT`, `BIND`, logging and the shutdown are the `serve` crate's (examples/serve).

use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let app = federation::App::new().map_err(|e| format!("schema: {e}"))?;
    server.serve(Arc::new(app)).await
}
