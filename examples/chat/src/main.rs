//! A chat server on ws-core: nicknames, rooms, presence and direct messages over one
//! WebSocket per browser tab, with permessage-deflate; plus `/echo`, the echo endpoint
//! Autobahn runs against, served only with `CHAT_ECHO=1` (the tests set it).
//!
//! Run with: `cargo run -p chat`
//!
//! Try:
//!
//! ```text
//! open http://127.0.0.1:8080/            (two tabs, same room)
//! curl -i http://127.0.0.1:8080/healthz
//! CHAT_ECHO=1 cargo run -p chat, then: python3 -m websockets ws://127.0.0.1:8080/echo
//! ```
//!
//! `ALLOWED_ORIGINS` (comma-separated) replaces the origin allow-list of `/ws`, which is by
//! default the server's own address. On Ctrl-C or SIGTERM every chat connection is closed
//! with 1001 after its queue drains. `PORT`, `BIND`, logging and the shutdown grace are the
//! `serve` crate's (examples/serve). With `REDIS_URL` set, rooms are shared through Redis
//! pub/sub (channels `chat:ROOM`) with every other instance on that Redis, and so is
//! presence (`chat-presence:*`): the members of the other instances are listed and their
//! joins and leaves announced live; those of an instance stopped with Ctrl-C or SIGTERM
//! leave at once, those of one that was killed within about 8 s.

use std::process::ExitCode;
use std::sync::Arc;

use chat::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

/// How long an instance's members stay listed after its last presence heartbeat.
const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(6);

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let local = server.local_addr();
    let allowed_origins = match std::env::var("ALLOWED_ORIGINS") {
        Ok(list) => list.split(',').map(|o| o.trim().to_owned()).collect(),
        Err(_) => vec![
            format!("http://{local}"),
            format!("http://localhost:{}", local.port()),
        ],
    };
    let (scale_out, presence) = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (
            Some(
                ws_core::RedisScaleOut::connect(&url, "chat:")
                    .await
                    .map_err(|error| format!("REDIS_URL: {error}"))?,
            ),
            Some(
                ws_core::RedisPresence::connect(&url, "chat-presence:", PRESENCE_TTL)
                    .await
                    .map_err(|error| format!("REDIS_URL: {error}"))?,
            ),
        ),
        _ => (None, None),
    };
    let app = Arc::new(App::new(Settings {
        base_path: String::new(),
        allowed_origins,
        // 32 MiB messages from any origin: for conformance runs only.
        echo: std::env::var("CHAT_ECHO").as_deref() == Ok("1"),
        scale_out,
        presence,
    }));
    tokio::spawn(Arc::clone(&app).run_timers());
    server.serve(app).await
}
