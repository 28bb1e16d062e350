//! task-queue: a job queue on broker-core (see `src/lib.rs`). Workers run in this process.
//!
//! Run with: `cargo run -p task-queue` (the embedded broker), or with a shared broker:
//! `BROKER_URL=redis://127.0.0.1:6379 cargo run -p task-queue --features redis`,
//! `BROKER_URL=nats://127.0.0.1:4222 cargo run -p task-queue --features nats`.
//! Then open <http://127.0.0.1:8080/> to enqueue jobs and watch them.
//!
//! Try:
//!
//! ```text
//! curl -si http://127.0.0.1:8080/jobs -H 'content-type: application/json' \
//!      -H 'Idempotency-Key: order-42' -d '{"kind":"echo","payload":{"hello":"world"}}'
//! curl -s http://127.0.0.1:8080/jobs/ID                 state, attempts, result
//! curl -s http://127.0.0.1:8080/jobs -H 'content-type: application/json' \
//!      -d '{"kind":"flaky","payload":{"fail_times":2}}'    succeeds on attempt 3
//! curl -s http://127.0.0.1:8080/jobs -H 'content-type: application/json' \
//!      -d '{"kind":"fail","payload":{"reason":"card declined"}}'
//! curl -s http://127.0.0.1:8080/jobs/dead               after its 3 attempts
//! curl -s -X POST http://127.0.0.1:8080/jobs/dead/redrive
//! ```
//!
//! Environment: `BROKER_URL` (unset: embedded), `INBOX_URL` (unset: Redis with the Redis
//! broker, memory otherwise; `none` turns the inbox off), `STATE_URL` (unset: job records
//! and `Idempotency-Key`s in this process; `redis://...`: in that Redis, shared by every
//! instance on it, feature `redis`), `BROKER_PREFIX` (default
//! `task-queue`), `WORKERS` (4), `BATCH` (8), `ACK_WAIT_MS` (30000), `MAX_ATTEMPTS` (3),
//! `RETRY_INITIAL_MS` (1000), `EFFECTS_LOG` (a file each job's effect appends a line to).
//! `PORT`, `BIND`, logging and the shutdown (workers settle their batch, then stop) are the
//! `serve` crate's (examples/serve).

use std::process::ExitCode;
use std::sync::Arc;

use task_queue::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let settings = Settings::from_env().map_err(serve::Error::usage)?;
    let server = serve::Server::bind(8080).await?;
    let app = App::new(settings).await?;
    app.spawn_workers();
    server.serve(Arc::new(app)).await
}
