//! Drives the oauth-provider example over HTTP with auth-core's own OAuth client: discovery,
//! login and consent pages (CSRF, framing headers), authorization code + PKCE, the
//! protected resource, denial, an untrusted redirect URI shown to the user, client
//! credentials.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use auth_core::oauth::client::{OAuthClient, ServerMetadata, parse_token_response};
use http::StatusCode;
use serve::testing::{Process, Reply, send_url};

const PASSWORD: &str = "site-test-password";
const SECRET: &str = "site-test-secret-0123456789";

fn start() -> Process {
    let mut binary = Command::new(env!("CARGO_BIN_EXE_oauth-provider"));
    binary
        .env("DEMO_PASSWORD", PASSWORD)
        .env("DEMO_CLIENT_SECRET", SECRET)
        .env_remove("DEMO_REDIRECT_URIS")
        // The embedded stores: tests must not share throttling counts through Redis.
        .env_remove("REDIS_URL");
    Process::spawn(binary)
}

/// A request to `url`; a POST without a content type is a form.
fn send(url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut all = headers.to_vec();
    if method == "POST"
        && !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        all.push(("Content-Type", "application/x-www-form-urlencoded"));
    }
    send_url(url, method, &all, body)
}

/// Sends an `http::Request` built by the client.
fn send_request(request: &http::Request<Vec<u8>>) -> Reply {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    send(
        &request.uri().to_string(),
        request.method().as_str(),
        &headers,
        request.body(),
    )
}

fn metadata(provider: &Process) -> ServerMetadata {
    let request = ServerMetadata::request(&provider.origin()).unwrap();
    let reply = send_request(&request);
    assert_eq!(reply.status, 200);
    ServerMetadata::parse(reply.body.as_bytes(), &provider.origin()).unwrap()
}

/// Logs alice in on the authorization page; returns the session cookie and the consent page.
fn log_in(authorize: &str) -> (String, Reply) {
    let page = send(authorize, "GET", &[], b"");
    assert_eq!(page.status, 200, "{page:?}");
    // Clickjacking and Referer leakage defenses on the login page (RFC 9700 4.16, 4.2.4).
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        page.header("content-security-policy"),
        Some("frame-ancestors 'none'")
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.body.contains("Log in to continue"));
    let cookie = page.cookie().unwrap();
    // Issue 14: an anonymous visit stores no session; the request rides in the login form.
    assert!(
        cookie.split("; ").all(|pair| pair.contains("-csrf=")),
        "only the login CSRF cookie: {cookie}"
    );
    let pending = page
        .hidden("authorize")
        .expect("the request in the login form");
    assert_eq!(pending, authorize.split_once('?').unwrap().1);
    let base = &authorize[..authorize.find("/authorize").unwrap()];
    let form = format!(
        "username=alice&password={PASSWORD}&csrf={}&authorize={}",
        page.csrf(),
        form_urlencoded::byte_serialize(pending.as_bytes()).collect::<String>()
    );
    // Without the CSRF token, or with a wrong password: refused.
    let no_csrf = send(
        &format!("{base}/login"),
        "POST",
        &[("Cookie", &cookie)],
        format!("username=alice&password={PASSWORD}").as_bytes(),
    );
    assert_eq!(no_csrf.status, 403);
    let wrong = send(
        &format!("{base}/login"),
        "POST",
        &[("Cookie", &cookie)],
        format!("username=alice&password=nope&csrf={}", page.csrf()).as_bytes(),
    );
    assert_eq!(wrong.status, 401);
    let logged_in = send(
        &format!("{base}/login"),
        "POST",
        &[("Cookie", &cookie)],
        form.as_bytes(),
    );
    assert_eq!(logged_in.status, 303, "{logged_in:?}");
    assert_eq!(logged_in.header("location"), Some("/consent"));
    let session = logged_in.cookie().unwrap();
    assert_ne!(session, cookie, "a new session id at login");
    let consent = send(
        &format!("{base}/consent"),
        "GET",
        &[("Cookie", &session)],
        b"",
    );
    assert_eq!(consent.status, 200);
    assert!(
        consent.body.contains("<b>demo-app</b> asks for"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains("<li>profile</li>"));
    (session, consent)
}

#[test]
fn our_client_through_login_and_consent() {
    let provider = start();
    let metadata = metadata(&provider);
    assert!(metadata.authorization_response_iss_parameter_supported);
    let client = OAuthClient::new(metadata, "demo-app", "http://127.0.0.1:45678/callback");
    let (authorize, pending) = client.authorization_url(&["profile"]).unwrap();
    let (session, consent) = log_in(&authorize);

    // The consent form needs its CSRF token.
    let forged = send(
        &format!("{}/consent", provider.origin()),
        "POST",
        &[("Cookie", &session)],
        b"decision=allow",
    );
    assert_eq!(forged.status, 403);
    let allowed = send(
        &format!("{}/consent", provider.origin()),
        "POST",
        &[("Cookie", &session)],
        format!("decision=allow&csrf={}", consent.csrf()).as_bytes(),
    );
    assert_eq!(allowed.status, 303, "{allowed:?}");
    let callback = allowed.header("location").unwrap();
    assert!(callback.starts_with("http://127.0.0.1:45678/callback?"));
    let code = client
        .callback(&pending, callback.split_once('?').unwrap().1)
        .unwrap();
    // A second consent POST finds no request: one answer per authorization.
    let again = send(
        &format!("{}/consent", provider.origin()),
        "POST",
        &[("Cookie", &session)],
        format!("decision=allow&csrf={}", consent.csrf()).as_bytes(),
    );
    assert_eq!(again.status, 400);

    let reply = send_request(&client.token_request(&code, &pending).unwrap());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let tokens = parse_token_response(
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.as_bytes(),
    )
    .unwrap();
    assert_eq!(tokens.scope.as_deref(), Some(&["profile".to_owned()][..]));
    let me = send(
        &format!("{}/api/me", provider.origin()),
        "GET",
        &[("Authorization", &format!("Bearer {}", tokens.access_token))],
        b"",
    );
    assert_eq!(me.status, 200, "{me:?}");
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["client_id"], "demo-app");

    // Replaying the code: invalid_grant, and the grant is revoked (introspection then says
    // inactive, see tests/authlib.rs; a JWT verified locally lives until it expires).
    let replay = send_request(&client.token_request(&code, &pending).unwrap());
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("invalid_grant"));

    // Refresh and revoke with the client's requests.
    let refresh = tokens.refresh_token.unwrap();
    let reply = send_request(&client.refresh_request(&refresh, None).unwrap());
    assert_eq!(
        reply.status, 400,
        "the grant was revoked by the replay: {}",
        reply.body
    );

    // A fresh login (already logged in: straight to consent), then deny.
    let (authorize, pending) = client.authorization_url(&["profile"]).unwrap();
    let consent = send(&authorize, "GET", &[("Cookie", &session)], b"");
    assert!(consent.body.contains("asks for"), "{}", consent.body);
    let denied = send(
        &format!("{}/consent", provider.origin()),
        "POST",
        &[("Cookie", &session)],
        format!("decision=deny&csrf={}", consent.csrf()).as_bytes(),
    );
    let callback = denied.header("location").unwrap();
    match client.callback(&pending, callback.split_once('?').unwrap().1) {
        Err(auth_core::Error::OAuthServer { error, .. }) => assert_eq!(error, "access_denied"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn untrusted_redirects_are_shown_not_followed() {
    let provider = start();
    let client = OAuthClient::new(
        metadata(&provider),
        "demo-app",
        "http://127.0.0.1:45678/callback",
    );
    let (authorize, _) = client.authorization_url(&["profile"]).unwrap();
    for (from, to) in [
        ("127.0.0.1%3A45678%2Fcallback", "evil.example%2Fcallback"),
        ("%2Fcallback", "%2Fcallback%2F..%2Fevil"),
        ("http%3A%2F%2F127.0.0.1", "https%3A%2F%2F127.0.0.1"),
    ] {
        let bad = authorize.replace(from, to);
        assert_ne!(bad, authorize);
        let page = send(&bad, "GET", &[], b"");
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.header("location").is_none());
        assert!(page.body.contains("invalid_request"), "{}", page.body);
    }
    // A trusted redirect URI with a bad parameter goes back with a 303, never 307.
    let plain = authorize.replace("code_challenge_method=S256", "code_challenge_method=plain");
    let back = send(&plain, "GET", &[], b"");
    assert_eq!(back.status, 303);
    let location = back.header("location").unwrap();
    assert!(
        location.contains("error=invalid_request") && location.contains("iss="),
        "{location}"
    );
}

#[test]
fn client_credentials_and_bearer_errors() {
    let provider = start();
    let basic = format!(
        "Basic {}",
        base64_encode(format!("demo-web:{SECRET}").as_bytes())
    );
    let reply = send(
        &format!("{}/token", provider.origin()),
        "POST",
        &[("Authorization", &basic)],
        b"grant_type=client_credentials&scope=api",
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = parse_token_response(StatusCode::OK, reply.body.as_bytes()).unwrap();
    let me = send(
        &format!("{}/api/me", provider.origin()),
        "GET",
        &[("Authorization", &format!("Bearer {}", tokens.access_token))],
        b"",
    );
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["sub"], "demo-web");
    let wrong = send(
        &format!("{}/token", provider.origin()),
        "POST",
        &[("Authorization", "Basic ZGVtby13ZWI6d3Jvbmc=")],
        b"grant_type=client_credentials",
    );
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("invalid_client"));
    let none = send(&format!("{}/api/me", provider.origin()), "GET", &[], b"");
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let big = vec![b'a'; 20_000];
    let huge = send(&format!("{}/token", provider.origin()), "POST", &[], &big);
    assert_eq!(huge.status, 413);
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Issue 14, finding 10: a cookieless visit to the login page stored a session to hold the
/// CSRF token. Now the token is in a signed cookie and no session cookie is set; the login
/// still needs that cookie and token.
#[test]
fn anonymous_login_page_stores_no_session() {
    let provider = start();
    let home = send(&format!("{}/", provider.origin()), "GET", &[], b"");
    assert_eq!(home.status, 200);
    let cookies = home.cookie().unwrap();
    assert!(!cookies.contains(';'), "one cookie only: {cookies}");
    assert!(cookies.contains("-csrf="), "{cookies}");
    let form = format!("username=alice&password={PASSWORD}&csrf={}", home.csrf());
    let login = format!("{}/login", provider.origin());
    assert_eq!(send(&login, "POST", &[], form.as_bytes()).status, 403);
    let logged_in = send(&login, "POST", &[("Cookie", &cookies)], form.as_bytes());
    assert_eq!(logged_in.status, 303, "{logged_in:?}");
    assert!(!logged_in.cookie().unwrap().contains("-csrf="));
}

/// Issue 14: an anonymous `GET /authorize` stored a session to hold the pending request.
/// Now the request rides in the login form, so it is validated again at login: a form whose
/// request names a redirect URI the client never registered gets no consent page.
#[test]
fn login_form_request_is_validated_again() {
    let provider = start();
    let client = OAuthClient::new(
        metadata(&provider),
        "demo-app",
        "http://127.0.0.1:45678/callback",
    );
    let (authorize, _) = client.authorization_url(&["profile"]).unwrap();
    let page = send(&authorize, "GET", &[], b"");
    assert_eq!(page.status, 200);
    let cookie = page.cookie().unwrap();
    assert!(!cookie.contains("session="), "no session yet: {cookie}");
    let forged = page
        .hidden("authorize")
        .unwrap()
        .replace("127.0.0.1%3A45678", "attacker.example");
    let form = format!(
        "username=alice&password={PASSWORD}&csrf={}&authorize={}",
        page.csrf(),
        form_urlencoded::byte_serialize(forged.as_bytes()).collect::<String>()
    );
    let answer = send(
        &format!("{}/login", provider.origin()),
        "POST",
        &[("Cookie", &cookie)],
        form.as_bytes(),
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body.contains("invalid"), "{}", answer.body);
}
