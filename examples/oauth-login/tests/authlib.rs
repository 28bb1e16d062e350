//! Our OAuth client (through the oauth-login example) against an authorization server built
//! with Python Authlib (`tests/authlib_server.py`, on Flask): discovery, authorization code +
//! PKCE S256 with `state` and RFC 9207 `iss`, the user info call, refresh, a replayed and a
//! forged callback, and revocation at logout. Public and confidential (`client_secret_basic`)
//! clients. Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`); `.ci/run` sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Process {
    child: Child,
    url: String,
}

impl Process {
    fn start(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Process { child, url }
    }
}

impl Drop for Process {
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

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn cookie(&self) -> Option<String> {
        self.header("set-cookie")
            .map(|value| value.split(';').next().unwrap().to_owned())
    }

    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

/// `GET`/`POST` an absolute `http://host:port/path?query` URL.
fn send(method: &str, url: &str, cookie: Option<&str>, body: &str) -> Reply {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, target) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).unwrap();
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    if let Some(cookie) = cookie {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn log_in_with(client_id: &str, secret: Option<&str>) {
    let Some(python) = python() else { return };
    let mut authlib = Command::new(python);
    authlib.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/authlib_server.py"
    ));
    let provider = Process::start(authlib);
    let mut login = Command::new(env!("CARGO_BIN_EXE_oauth-login"));
    login
        .env("PORT", "0")
        .env("RUST_LOG", "warn")
        .env("CLIENT_ID", client_id)
        .env_remove("USERINFO_URL")
        .args(["--provider", &provider.url]);
    match secret {
        Some(secret) => login.env("CLIENT_SECRET", secret),
        None => login.env_remove("CLIENT_SECRET"),
    };
    let app = Process::start(login);

    let home = send("GET", &format!("{}/", app.url), None, "");
    assert!(home.body.contains("Log in with backend-kit provider"));

    // Start: our client discovers the Authlib server and sends the browser there.
    let start = send("GET", &format!("{}/login", app.url), None, "");
    assert_eq!(start.status, 303, "{start:?}");
    let cookie = start.cookie().expect("a session for the pending login");
    let authorize = start.header("location").unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/authorize?", provider.url)));
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
        callback.starts_with(&format!("{}/callback?", app.url)),
        "{callback}"
    );
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.as_str())
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(provider.url.as_str())
    );

    // Forged: the right code with another state is refused (403) and does not log in.
    let forged = callback.replace(&format!("state={state}"), "state=forged");
    let refused = send("GET", &forged, Some(&cookie), "");
    assert_eq!(refused.status, 403, "{refused:?}");
    // That spent the pending login; start again for the real one.
    let start = send("GET", &format!("{}/login", app.url), Some(&cookie), "");
    let authorize = start.header("location").unwrap().to_owned();
    let callback = send("GET", &authorize, None, "")
        .header("location")
        .unwrap()
        .to_owned();

    let done = send("GET", &callback, Some(&cookie), "");
    assert_eq!(done.status, 303, "{done:?}");
    let session = done.cookie().expect("a new session id at login");
    assert_ne!(session, cookie);
    let home = send("GET", &format!("{}/", app.url), Some(&session), "");
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
        &format!("{}/refresh", app.url),
        Some(&session),
        &format!("csrf={csrf}"),
    );
    assert_eq!(refreshed.status, 303, "{refreshed:?}");
    let home = send("GET", &format!("{}/", app.url), Some(&session), "");
    assert!(home.body.contains("refreshed 1 times"), "{}", home.body);

    // Logout revokes at the provider.
    let before: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/stats", provider.url), None, "").body)
            .unwrap();
    let out = send(
        "POST",
        &format!("{}/logout", app.url),
        Some(&session),
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    let after: serde_json::Value =
        serde_json::from_str(&send("GET", &format!("{}/stats", provider.url), None, "").body)
            .unwrap();
    assert!(
        after["revoked"].as_u64().unwrap() > before["revoked"].as_u64().unwrap(),
        "{before} -> {after}"
    );
    let home = send("GET", &format!("{}/", app.url), Some(&session), "");
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
