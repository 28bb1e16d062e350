//! Starts the showcase binary on an ephemeral port and talks HTTP/1.1 to it over a socket.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use support::{Reply, Server};

fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    serve::testing::send(addr, method, path, &[], b"")
}

#[test]
fn serves_the_landing_page_and_health() {
    let server = Server::start();

    let page = request(server.addr, "GET", "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<h1>backend-kit showcase</h1>"));
    assert!(page.body.contains(r#"href="/healthz""#));

    let health = request(server.addr, "GET", "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.header("content-type"), Some("application/json"));
    assert_eq!(health.body, r#"{"status":"ok"}"#);
}

#[test]
fn head_not_found_and_method_not_allowed() {
    let server = Server::start();

    let head = request(server.addr, "HEAD", "/healthz");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("15"));
    assert_eq!(head.body, "");

    let missing = request(server.addr, "GET", "/no-such-page");
    assert_eq!(missing.status, 404);

    let post = request(server.addr, "POST", "/healthz");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = Server::start();
    assert_eq!(request(server.addr, "GET", "/healthz").status, 200);
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let output = Command::new(env!("CARGO_BIN_EXE_showcase"))
        .env("PORT", port.to_string())
        .env("RUST_LOG", "off")
        .output()
        .expect("run showcase");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port}: address already in use"
        )),
        "stderr was {stderr:?}"
    );
}

#[test]
fn a_bad_port_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_showcase"))
        .env("PORT", "eighty")
        .output()
        .expect("run showcase");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("PORT=\"eighty\" is not a port number"),
        "{stderr:?}"
    );
}

#[test]
fn an_unreachable_redis_is_a_clear_startup_error() {
    // Port 1 on loopback: nothing listens there.
    let output = Command::new(env!("CARGO_BIN_EXE_showcase"))
        .env("PORT", "0")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("RUST_LOG", "off")
        .output()
        .expect("run showcase");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("REDIS_URL: cannot use the Redis at 127.0.0.1:1"),
        "{stderr:?}"
    );
}
