//! In-process checks of the pages that need no provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use http::Request;
use serve::testing::call;

fn app() -> Arc<oauth_login::App> {
    Arc::new(oauth_login::App::new(oauth_login::Settings {
        redirect_uri: "http://127.0.0.1:8080/oauth-login/callback".to_owned(),
        base_path: "/oauth-login".to_owned(),
        ..oauth_login::Settings::new("http://127.0.0.1:8080/oauth", "http://127.0.0.1:8080")
    }))
}

fn get(path: &str, host: Option<&str>) -> Request<serve::Body> {
    let mut request = Request::get(path);
    if let Some(host) = host {
        request = request.header("host", host);
    }
    request.body(serve::full(bytes::Bytes::new())).unwrap()
}

/// Opened at `localhost`, the login would end on `127.0.0.1`, where the session cookie set
/// on `localhost` is not sent ("no login in progress"): the page sends the browser to the
/// redirect URI's host first, keeping the path and query.
#[tokio::test]
async fn pages_opened_on_another_host_move_to_the_callback_host() {
    let app = app();
    for (path, expected) in [
        ("/oauth-login/", "http://127.0.0.1:8080/oauth-login/"),
        (
            "/oauth-login/login?x=1",
            "http://127.0.0.1:8080/oauth-login/login?x=1",
        ),
    ] {
        let reply = call(&app, get(path, Some("localhost:8080"))).await;
        assert_eq!(reply.status, 307, "{path}: {}", reply.body);
        assert_eq!(reply.header("location"), Some(expected), "{path}");
    }
    let reply = call(&app, get("/oauth-login/", Some("[::1]:8080"))).await;
    assert_eq!(reply.status, 307);
}

/// Only another loopback name for the same port moves: any other Host is served as it is
/// (a public redirect URI behind a proxy that rewrites Host must not loop), and the target
/// is never taken from the request.
#[tokio::test]
async fn other_hosts_are_not_redirected() {
    let app = app();
    for host in ["evil.example", "localhost:9090", "127.0.0.2:8080"] {
        let reply = call(&app, get("/oauth-login/", Some(host))).await;
        assert_eq!(reply.status, 200, "{host}: {}", reply.body);
    }
    let public = Arc::new(oauth_login::App::new(oauth_login::Settings {
        redirect_uri: "https://app.example/oauth-login/callback".to_owned(),
        base_path: "/oauth-login".to_owned(),
        ..oauth_login::Settings::new("https://id.example", "https://app.example")
    }));
    let reply = call(&public, get("/oauth-login/", Some("localhost:8080"))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn pages_on_the_callback_host_are_served() {
    let app = app();
    for host in [Some("127.0.0.1:8080"), None] {
        let reply = call(&app, get("/oauth-login/", host)).await;
        assert_eq!(reply.status, 200, "{host:?}: {}", reply.body);
    }
}
