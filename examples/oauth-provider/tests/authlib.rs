//! Python Authlib (PyPI) as a real OAuth client of the provider: metadata discovery,
//! authorization code + PKCE S256 through the login and consent pages, the protected
//! resource, refresh with rotation, introspection, revocation, and a replayed code refused;
//! then Authlib as an OpenID Connect client: discovery, the ID token validated by Authlib
//! (`CodeIDToken`: signature, iss, aud, nonce, at_hash), UserInfo, refresh, `prompt=none`.
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
            "token_endpoint",
            "userinfo_endpoint"
        ])
    );
    // OpenID Connect, as Authlib's CodeIDToken saw it (it checked the signature with our
    // JWKS, iss, aud, exp, the nonce and at_hash).
    let oidc = &seen["oidc"];
    assert_eq!(oidc["alg"], "RS256");
    assert_eq!(oidc["aud"], "demo-web");
    assert_eq!(oidc["sub"], "alice");
    assert_eq!(oidc["name"], "Alice Liddell");
    assert_eq!(oidc["email"], "alice@example.org");
    assert_eq!(oidc["nonce_echoed"], true);
    assert_eq!(
        oidc["userinfo"],
        serde_json::json!({
            "sub": "alice",
            "name": "Alice Liddell",
            "given_name": "Alice",
            "family_name": "Liddell",
            "preferred_username": "alice",
            "email": "alice@example.org",
            "email_verified": true
        })
    );
    assert_eq!(
        oidc["prompt_none"],
        serde_json::json!({"logged_in": "consent_required", "anonymous": "login_required"})
    );
    assert_eq!(oidc["revoked_userinfo"], 401);
}
