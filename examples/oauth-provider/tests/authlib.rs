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

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Provider {
    child: Child,
    url: String,
}

impl Provider {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-provider"))
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .env("DEMO_PASSWORD", "peer-test-password")
            .env("DEMO_CLIENT_SECRET", "peer-test-secret-0123456789")
            .env_remove("DEMO_REDIRECT_URIS")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Provider { child, url }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<String> {
    match std::env::var("PEER_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PEER_PYTHON must be set under CI"
            );
            println!("skipped: PEER_PYTHON is not set");
            None
        }
    }
}

#[test]
fn authlib_client_completes_the_flow() {
    let Some(python) = python() else { return };
    let provider = Provider::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authlib_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&provider.url)
        .arg("demo-web")
        .arg("peer-test-secret-0123456789")
        .arg("peer-test-password")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
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
