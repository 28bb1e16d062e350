//! Drives the auth-login example over HTTP: sign-up, CSRF, login throttling, API tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::process::Command;

use serve::testing::{Process, Reply};

fn start(redis: bool) -> Process {
    let mut binary = Command::new(env!("CARGO_BIN_EXE_auth-login"));
    if redis {
        // Accounts and throttling counts live in Redis too: a prefix of this run's own.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        binary.env(
            "REDIS_PREFIX",
            format!("auth-login-test:{}:{nanos}:", std::process::id()),
        );
    } else {
        binary.env_remove("REDIS_URL");
    }
    Process::spawn(binary)
}

/// The `name=value` pair of the first cookie a reply sets (the session's), if any.
fn session_cookie(reply: &Reply) -> Option<String> {
    reply
        .header("set-cookie")
        .map(|value| value.split(';').next().unwrap().to_owned())
}

/// A request; a POST body is a form.
fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = headers.to_vec();
    if method == "POST" {
        all.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    serve::testing::send(addr, method, path, &all, body.as_bytes())
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&")
}

fn signup_login_token_logout(server: &Process) {
    let addr = server.addr;
    let home = send(addr, "GET", "/", &[], "");
    assert_eq!(home.status, 200);
    // No session for an anonymous page view: the login form's CSRF token is in a signed
    // cookie (issue 14, finding 10).
    let anonymous = session_cookie(&home).expect("a login CSRF cookie for the form");
    assert!(anonymous.starts_with("__Host-session-csrf="), "{anonymous}");
    let set_cookie = home.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let csrf = home.csrf();
    let cookie = [("Cookie", anonymous.as_str())];

    // CSRF: no token, a wrong token, or a token without its cookie are refused.
    let body = form(&[("username", "ada"), ("password", "lovelace-engine-1815")]);
    assert_eq!(send(addr, "POST", "/signup", &cookie, &body).status, 403);
    let wrong = form(&[
        ("username", "ada"),
        ("password", "lovelace-engine-1815"),
        ("csrf", "nope"),
    ]);
    assert_eq!(send(addr, "POST", "/signup", &cookie, &wrong).status, 403);
    let good = form(&[
        ("username", "ada"),
        ("password", "lovelace-engine-1815"),
        ("csrf", &csrf),
    ]);
    assert_eq!(send(addr, "POST", "/signup", &[], &good).status, 403);

    let short = form(&[("username", "ada"), ("password", "short"), ("csrf", &csrf)]);
    assert_eq!(send(addr, "POST", "/signup", &cookie, &short).status, 422);
    let signed_up = send(addr, "POST", "/signup", &cookie, &good);
    assert_eq!(signed_up.status, 303);
    let session = session_cookie(&signed_up).expect("a new id at login");
    assert!(session.starts_with("__Host-session="), "{session}");
    // Logged in, the login form's token is not enough: the session's own is needed.
    let both = format!("{session}; {anonymous}");
    assert_eq!(
        send(addr, "POST", "/signup", &[("Cookie", both.as_str())], &good).status,
        403
    );

    let cookie = [("Cookie", session.as_str())];
    let home = send(addr, "GET", "/", &cookie, "");
    assert!(
        home.body.contains("Logged in as <b>ada</b>"),
        "{}",
        home.body
    );
    let csrf = home.csrf();
    // With the session's token: the name is taken.
    let again = form(&[
        ("username", "ada"),
        ("password", "lovelace-engine-1815"),
        ("csrf", &csrf),
    ]);
    assert_eq!(send(addr, "POST", "/signup", &cookie, &again).status, 409);

    // An API token, and the API that takes it.
    let issued = send(addr, "POST", "/token", &cookie, &form(&[("csrf", &csrf)]));
    assert_eq!(issued.status, 200);
    assert_eq!(issued.header("cache-control"), Some("no-store"));
    let token: serde_json::Value = serde_json::from_str(&issued.body).unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let anonymous_api = send(addr, "GET", "/api/me", &[], "");
    assert_eq!(anonymous_api.status, 401);
    assert_eq!(
        anonymous_api.header("www-authenticate"),
        Some(r#"Bearer realm="auth-login""#)
    );
    let bearer = format!("Bearer {token}");
    let me = send(addr, "GET", "/api/me", &[("Authorization", &bearer)], "");
    assert_eq!(me.status, 200);
    assert!(me.body.contains(r#""user":"ada""#), "{}", me.body);
    let forged = format!("Bearer {}x", &token[..token.len() - 1]);
    let refused = send(addr, "GET", "/api/me", &[("Authorization", &forged)], "");
    assert_eq!(refused.status, 401);
    assert!(
        refused
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&send(addr, "GET", "/.well-known/jwks.json", &[], "").body).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    // Logout removes the cookie and the session.
    let logout = send(addr, "POST", "/logout", &cookie, &form(&[("csrf", &csrf)]));
    assert_eq!(logout.status, 303);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = send(addr, "GET", "/", &cookie, "");
    assert!(after.body.contains("Sign up"));
}

#[test]
fn memory_sessions_signup_login_token_logout() {
    let server = start(false);
    signup_login_token_logout(&server);
}

#[test]
fn redis_sessions_signup_login_token_logout() {
    if std::env::var("REDIS_URL").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        eprintln!("skipped: REDIS_URL is not set");
        return;
    }
    let server = start(true);
    signup_login_token_logout(&server);
}

#[test]
fn failed_logins_are_throttled_and_do_not_reveal_accounts() {
    let server = start(false);
    let addr = server.addr;
    let home = send(addr, "GET", "/", &[], "");
    let cookie = session_cookie(&home).unwrap();
    let cookie = [("Cookie", cookie.as_str())];
    let csrf = home.csrf();
    let signup = form(&[
        ("username", "bob"),
        ("password", "correct horse saddle"),
        ("csrf", &csrf),
    ]);
    assert_eq!(send(addr, "POST", "/signup", &cookie, &signup).status, 303);

    // Same answer for a wrong password and an unknown user.
    let home = send(addr, "GET", "/", &[], "");
    let fresh = session_cookie(&home).unwrap();
    let cookie = [("Cookie", fresh.as_str())];
    let csrf = home.csrf();
    let unknown = send(
        addr,
        "POST",
        "/login",
        &cookie,
        &form(&[("username", "nobody"), ("password", "x"), ("csrf", &csrf)]),
    );
    let wrong = form(&[("username", "bob"), ("password", "wrong"), ("csrf", &csrf)]);
    let first = send(addr, "POST", "/login", &cookie, &wrong);
    assert_eq!((unknown.status, first.status), (401, 401));
    assert_eq!(unknown.body, first.body);
    for _ in 0..4 {
        assert_eq!(send(addr, "POST", "/login", &cookie, &wrong).status, 401);
    }
    // Five failures: the sixth attempt is refused before the password is checked, even
    // with the right password.
    let right = form(&[
        ("username", "bob"),
        ("password", "correct horse saddle"),
        ("csrf", &csrf),
    ]);
    let throttled = send(addr, "POST", "/login", &cookie, &right);
    assert_eq!(throttled.status, 429);
    let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
}

#[test]
fn oversized_forms_and_unknown_routes() {
    let server = start(false);
    let big = "a".repeat(20_000);
    assert_eq!(send(server.addr, "POST", "/login", &[], &big).status, 413);
    assert_eq!(send(server.addr, "GET", "/nope", &[], "").status, 404);
    assert_eq!(send(server.addr, "DELETE", "/login", &[], "").status, 405);
}
