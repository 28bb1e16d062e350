//! Python Authlib (PyPI) as a real OAuth client of the provider: metadata discovery,
//! authorization code + PKCE S256 through the login and consent pages, the protected
//! resource, refresh with rotation, introspection, revocation, and a replayed code refused.
//! Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`); `.ci/run` sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use serve::testing::{Process, peer};

#[test]
fn authlib_client_completes_the_flow() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let mut binary = Command::new(env!("CARGO_BIN_EXE_oauth-provider"));
    binary
        .env("DEMO_PASSWORD", "peer-test-password")
        .env("DEMO_CLIENT_SECRET", "peer-test-secret-0123456789")
        .env_remove("DEMO_REDIRECT_URIS")
        // The embedded stores: tests must not share throttling counts through Redis.
        .env_remove("REDIS_URL");
    let provider = Process::spawn(binary);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authlib_client.py");
    let stdout = serve::testing::run(
        Command::new(python)
            .arg(script)
            .arg(provider.origin())
            .arg("demo-web")
            .arg("peer-test-secret-0123456789")
            .arg("peer-test-password"),
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["me"]["sub"], "alice");
    assert_eq!(seen["me"]["client_id"], "demo-web");
    assert_eq!(seen["scope"], "profile email");
    assert_eq!(seen["introspection"]["active"], true);
    assert_eq!(seen["introspection"]["client_id"], "demo-web");
    assert_eq!(seen["replay_error"], "invalid_grant");
    assert_eq!(
        seen["metadata_endpoints"],
        serde_json::json!([
            "authorization_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
            "token_endpoint"
        ])
    );
}
