//! Our OAuth client (through the oauth-login example) against an authorization server built
//! with Python Authlib (`tests/authlib_server.py`, on Flask): discovery, authorization code +
//! PKCE S256 with `state` and RFC 9207 `iss`, the user info call, refresh, a replayed and a
//! forged callback, and revocation at logout. Public and confidential (`client_secret_basic`)
//! clients; and an OpenID Connect login against Authlib's OpenID provider (nonce, ID token,
//! UserInfo). Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`); `.ci/run` sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use serve::testing::{Process, Reply, peer, send_url};

/// `GET`/`POST` an absolute `http://host:port/path?query` URL; a POST body is a form.
fn send(method: &str, url: &str, cookie: Option<&str>, body: &str) -> Reply {
    let mut headers = vec![];
    if let Some(cookie) = cookie {
        headers.push(("Cookie", cookie));
    }
    if method == "POST" {
        headers.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    send_url(url, method, &headers, body.as_bytes())
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn log_in_with(client_id: &str, secret: Option<&str>) {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let mut authlib = Command::new(python);
    authlib.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/authlib_server.py"
    ));
    let provider = Process::spawn(authlib);
    let mut login = Command::new(env!("CARGO_BIN_EXE_oauth-login"));
    login
        .env("CLIENT_ID", client_id)
        .env_remove("USERINFO_URL")
        .args(["--provider", &provider.origin()]);
    match secret {
        Some(secret) => login.env("CLIENT_SECRET", secret),
        None => login.env_remove("CLIENT_SECRET"),
    };
    let app = Process::spawn(login);

    let home = send("GET", &format!("{}/", app.origin()), None, "");
    assert!(home.body.contains("Log in with backend-kit provider"));

    // Start: our client discovers the Authlib server and sends the browser there.
    let start = send("GET", &format!("{}/login", app.origin()), None, "");
    assert_eq!(start.status, 303, "{start:?}");
    let cookie = start.cookie().expect("a session for the pending login");
    let authorize = start.header("location").unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/authorize?", provider.origin())));
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let state = query_param(&authorize, "state").unwrap();

    // Authlib approves (alice, test-only auto-consent) and redirects back with iss.
    let approved = send("GET", &authorize, None, "");
    assert_eq!(approved.status, 302, "{approved:?}");
    let callback = approved.header("location").unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{}/callback?", app.origin())),
        "{callback}"
    );
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.as_str())
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(provider.origin().as_str())
    );

    // Forged: the right code with another state is refused (403) and does not log in.
    let forged = callback.replace(&format!("state={state}"), "state=forged");
    let refused = send("GET", &forged, Some(&cookie), "");
    assert_eq!(refused.status, 403, "{refused:?}");
    // That spent the pending login; start again for the real one.
    let start = send("GET", &format!("{}/login", app.origin()), Some(&cookie), "");
    let authorize = start.header("location").unwrap().to_owned();
    let callback = send("GET", &authorize, None, "")
        .header("location")
        .unwrap()
        .to_owned();

    let done = send("GET", &callback, Some(&cookie), "");
    assert_eq!(done.status, 303, "{done:?}");
    let session = done.cookie().expect("a new session id at login");
    assert_ne!(session, cookie);
    let home = send("GET", &format!("{}/", app.origin()), Some(&session), "");
    assert!(
        home.body.contains("Logged in as <b>alice</b>"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("scope: <code>profile</code>"),
        "{}",
        home.body
    );

    // A replayed callback: nothing pending any more.
    let replay = send("GET", &callback, Some(&session), "");
    assert_eq!(replay.status, 400, "{replay:?}");

    // Refresh through Authlib's refresh_token grant.
    let csrf = home.csrf();
    let refreshed = send(
        "POST",
        &format!("{}/refresh", app.origin()),
        Some(&session),
        &format!("csrf={csrf}"),
    );
    assert_eq!(refreshed.status, 303, "{refreshed:?}");
    let home = send("GET", &format!("{}/", app.origin()), Some(&session), "");
    assert!(home.body.contains("refreshed 1 times"), "{}", home.body);

    // Logout revokes at the provider.
    let before: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/stats", provider.origin()), None, "").body)
            .unwrap();
    let out = send(
        "POST",
        &format!("{}/logout", app.origin()),
        Some(&session),
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    let after: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/stats", provider.origin()), None, "").body)
            .unwrap();
    assert!(
        after["revoked"].as_u64().unwrap() > before["revoked"].as_u64().unwrap(),
        "{before} -> {after}"
    );
    let home = send("GET", &format!("{}/", app.origin()), Some(&session), "");
    assert!(home.body.contains("Log in with backend-kit provider"));
}

#[test]
fn public_client_logs_in_to_an_authlib_server() {
    log_in_with("rust-app", None);
}

#[test]
fn confidential_client_logs_in_to_an_authlib_server() {
    log_in_with("rust-web", Some("rust-web-secret-0123456789"));
}

/// Our OpenID Connect client (auth-core's, through the oauth-login example) against
/// Authlib's OpenID Connect provider (`authlib_server.py --openid`: the `OpenIDCode` grant
/// extension, ES256 ID tokens with `nonce`, `auth_time` and `at_hash`, `/userinfo`).
#[test]
fn openid_client_logs_in_to_an_authlib_openid_provider() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let mut authlib = Command::new(python);
    authlib
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/authlib_server.py"
        ))
        .arg("--openid");
    let provider = Process::spawn(authlib);
    let mut login = Command::new(env!("CARGO_BIN_EXE_oauth-login"));
    login
        .env("CLIENT_ID", "rust-web")
        .env("CLIENT_SECRET", "rust-web-secret-0123456789")
        .env_remove("USERINFO_URL")
        .args(["--provider", &provider.origin()]);
    let app = Process::spawn(login);

    // Discovery found an OpenID Provider: scope openid with a fresh nonce.
    let start = send("GET", &format!("{}/login", app.origin()), None, "");
    assert_eq!(start.status, 303, "{start:?}");
    let cookie = start.cookie().unwrap();
    let authorize = start.header("location").unwrap().to_owned();
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("openid profile email")
    );
    let nonce = query_param(&authorize, "nonce").expect("a nonce");
    assert_eq!(nonce.len(), 43);

    let callback = send("GET", &authorize, None, "")
        .header("location")
        .unwrap()
        .to_owned();
    let done = send("GET", &callback, Some(&cookie), "");
    assert_eq!(done.status, 303, "{done:?}");
    let session = done.cookie().unwrap();
    let home = send("GET", &format!("{}/", app.origin()), Some(&session), "");
    assert!(
        home.body.contains("Logged in as <b>alice</b>"),
        "{}",
        home.body
    );
    // The name and email come from Authlib's ID token and UserInfo.
    assert!(
        home.body.contains(
            "OpenID Connect: you are <b>Alice Liddell &lt;alice@example.org&gt;</b> (subject <code>alice</code>"
        ),
        "{}",
        home.body
    );
    let stats: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/stats", provider.origin()), None, "").body)
            .unwrap();
    assert_eq!(stats["nonces"], serde_json::json!([nonce]));
    assert_eq!(stats["id_tokens"], 1);
    assert_eq!(stats["userinfo"], 1);

    // Authlib's refresh grant sends no new ID token; the login stays.
    let refreshed = send(
        "POST",
        &format!("{}/refresh", app.origin()),
        Some(&session),
        &format!("csrf={}", home.csrf()),
    );
    assert_eq!(refreshed.status, 303, "{refreshed:?}");
    let home = send("GET", &format!("{}/", app.origin()), Some(&session), "");
    assert!(home.body.contains("refreshed 1 times"), "{}", home.body);
}
