//! Issue 22, items 4 and 6, against the showcase binary: a GraphQL subscription over POST is
//! a request error that names the WebSocket; the login pages share the showcase's look,
//! are titled by feature, refuse in words with the status kept and a way back; the API
//! token page shows a curl command that works. Then the same in headless Chromium, with
//! screenshots in `CARGO_TARGET_TMPDIR`.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::process::Command;

use support::{Chromium, ReplyExt as _, Server};

const GRAPHQL_RESPONSE: (&str, &str) = ("Accept", "application/graphql-response+json");
const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

#[test]
fn a_subscription_over_post_says_to_use_the_websocket() {
    let server = Server::start();
    let mut client = server.client();
    let subscription = serde_json::json!({"query": "subscription { bookAdded { title } }"});
    let refused = client.send_json(
        "POST",
        "/graphql/graphql",
        &[GRAPHQL_RESPONSE],
        &subscription,
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    let body = refused.json();
    assert!(body.get("data").is_none(), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("WebSocket") && message.contains("graphql-transport-ws"),
        "{message}"
    );
    assert!(
        !refused.body.contains("Cannot return null"),
        "{}",
        refused.body
    );
    // application/json: the same error with 200 (GraphQL over HTTP, section 6.4).
    let legacy = client.send_json(
        "POST",
        "/graphql/graphql",
        &[("Accept", "application/json")],
        &subscription,
    );
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.json()["errors"][0]["message"], message);
}

#[test]
fn the_graphql_page_is_in_the_shared_shell_and_self_contained() {
    let server = Server::start();
    let page = server.get("/graphql/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"<a id=back href="/">"#), "no way back");
    assert!(page.body.contains(serve::page::STYLE));
    assert!(page.body.contains("<title>GraphQL: "), "title");
    // Offline: no script, style or font from elsewhere.
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.body.contains(external), "{external}");
    }
    assert!(
        page.body
            .contains(r#"new WebSocket(url, "graphql-transport-ws")"#)
    );
}

/// `/auth/` through one browser, with its CSRF token at hand.
fn auth_form(browser: &mut support::Client) -> String {
    let page = browser.get("/auth/");
    assert_eq!(page.status, 200);
    page.csrf()
}

#[test]
fn login_refusals_are_pages_with_their_status_and_a_way_back() {
    let server = Server::start();
    let mut browser = server.client();
    let home = browser.get("/auth/");
    assert!(
        home.body
            .contains("<title>Password login and API tokens</title>"),
        "{}",
        home.body
    );
    assert!(home.body.contains(r#"<a id=back href="/">"#));
    let csrf = auth_form(&mut browser);
    for (path, fields, status, heading, reason) in [
        (
            "/auth/signup",
            vec![("username", "grace"), ("password", "short")],
            422,
            "Sign-up failed",
            "a password of at least 15 characters",
        ),
        (
            "/auth/signup",
            vec![
                ("username", "no spaces"),
                ("password", "a long enough password"),
            ],
            422,
            "Sign-up failed",
            "User names are 1 to 64",
        ),
        (
            "/auth/login",
            vec![("username", "nobody"), ("password", "whatever it is")],
            401,
            "Login failed",
            "Wrong user name or password",
        ),
    ] {
        let mut all = fields.clone();
        all.push(("csrf", &csrf));
        let refused = browser.post_form(path, &all);
        assert_eq!(refused.status, status, "{path}: {}", refused.body);
        assert_eq!(
            refused.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(
            refused.body.contains(&format!("<h1>{heading}</h1>")),
            "{}",
            refused.body
        );
        let error = refused.body.split("id=error").nth(1).unwrap();
        assert!(error.contains(reason), "{path}: {error}");
        assert!(
            refused
                .body
                .contains(r#"<a id=again href="/auth/">Back to the login page</a>"#)
        );
    }
    // Without the form's token: 403, said in words.
    let forged = browser.post_form("/auth/login", &[("username", "x"), ("password", "y")]);
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("security token"), "{}", forged.body);
    // Throttled: 429 with Retry-After kept on the page.
    let mut last = None;
    for _ in 0..8 {
        let reply = browser.post_form(
            "/auth/login",
            &[
                ("username", "nobody"),
                ("password", "guess"),
                ("csrf", &csrf),
            ],
        );
        if reply.status == 429 {
            last = Some(reply);
            break;
        }
    }
    let throttled = last.expect("never throttled");
    assert!(throttled.header("retry-after").is_some());
    assert!(
        throttled.body.contains("try again in"),
        "{}",
        throttled.body
    );
    // The JSON API keeps its problem documents.
    let api = browser.get("/auth/api/me");
    assert_eq!(api.status, 401);
    assert_eq!(api.header("content-type"), Some("application/problem+json"));
}

#[test]
fn the_token_page_shows_a_curl_command_that_works() {
    let server = Server::start();
    let mut browser = server.client();
    let csrf = auth_form(&mut browser);
    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "ada"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(signed_up.status, 303);
    let csrf = auth_form(&mut browser);
    let body = format!("csrf={csrf}");
    let page = browser.send(
        "POST",
        "/auth/token",
        &[("Content-Type", "application/x-www-form-urlencoded"), HTML],
        body.as_bytes(),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.body.contains("<title>Your API token</title>"));
    assert!(page.body.contains("data-copy=token"), "no copy button");
    let curl = support::unescape(
        page.body
            .split("<pre id=curl><code>")
            .nth(1)
            .unwrap()
            .split("</code>")
            .next()
            .unwrap(),
    );
    assert!(
        curl.contains(&format!("{}/auth/api/me", server.origin())),
        "{curl}"
    );
    let answer = serve::testing::run(Command::new("sh").arg("-c").arg(&curl));
    let me: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(me["user"], "ada", "{answer}");
    // Scripts without an HTML Accept still get the JSON token response.
    let json = browser.post_form("/auth/token", &[("csrf", &csrf)]);
    assert_eq!(json.status, 200);
    assert!(json.json()["access_token"].is_string());
}

#[test]
fn a_denied_consent_is_explained_on_the_client_with_a_way_back() {
    let server = Server::start();
    let origin = server.origin();
    let mut browser = server.client();
    let start = browser.get("/oauth-login/login");
    let authorize = start.location_path(&origin);
    let login_page = browser.get(&authorize);
    assert!(
        login_page
            .body
            .contains("<title>Log in to the OAuth 2.0 provider</title>"),
        "{}",
        login_page.body
    );
    let csrf = login_page.csrf();
    let pending = login_page.hidden("authorize").unwrap();
    // A wrong password: the way back is this sign-in request's login form.
    let wrong = browser.post_form(
        "/oauth/login",
        &[
            ("csrf", &csrf),
            ("authorize", &pending),
            ("username", "alice"),
            ("password", "nope"),
        ],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("x-frame-options"), Some("DENY"));
    assert_eq!(wrong.header("referrer-policy"), Some("no-referrer"));
    let back = support::unescape(
        wrong
            .body
            .split("<a id=again href=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    );
    assert_eq!(back, authorize);
    let logged_in = browser.post_form(
        "/oauth/login",
        &[
            ("csrf", &csrf),
            ("authorize", &pending),
            ("username", "alice"),
            ("password", "wonderland-rabbit"),
        ],
    );
    assert_eq!(logged_in.status, 303);
    let consent = browser.get("/oauth/consent");
    assert!(
        consent
            .body
            .contains("<title>Allow access to your account?</title>")
    );
    let denied = browser.post_form(
        "/oauth/consent",
        &[("csrf", &consent.csrf()), ("decision", "deny")],
    );
    assert_eq!(denied.status, 303);
    let callback = browser.get(&denied.location_path(&origin));
    assert_eq!(callback.status, 403, "{}", callback.body);
    assert!(
        callback
            .body
            .contains("<h1>Login with the provider failed</h1>")
    );
    assert!(callback.body.contains("access_denied"), "{}", callback.body);
    assert!(
        callback
            .body
            .contains(r#"<a id=again href="/oauth-login/">"#)
    );
}

/// Issue 22, item 4 in Chromium: the explorer and a live subscription.
#[test]
fn chromium_graphql_explorer_and_live_subscription() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "graphql_browser.js",
        &server,
        &[
            "showcase-graphql-explorer-query.png",
            "showcase-graphql-explorer-subscription.png",
            "showcase-graphql-subscription-live.png",
        ],
    );
}

/// Issue 22, item 6 in Chromium: the login pages, their refusals and the token page.
#[test]
fn chromium_login_pages_refuse_in_words_with_a_way_back() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "auth_browser.js",
        &server,
        &[
            "showcase-auth-home.png",
            "showcase-auth-weak-password.png",
            "showcase-auth-token.png",
            "showcase-auth-wrong-password.png",
            "showcase-auth-throttled.png",
            "showcase-auth-csrf-refused.png",
            "showcase-oauth-login-home.png",
            "showcase-oauth-provider-wrong-password.png",
            "showcase-oauth-consent.png",
            "showcase-oauth-denied.png",
            "showcase-oauth-logged-in.png",
        ],
    );
}
