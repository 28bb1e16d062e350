//! The App served in this process, so that the test can look into its session store and
//! its login throttle under concurrent requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use auth_core::MemoryStore;
use auth_login::{App, Settings};
use serve::testing::{Reply, call, request};

/// One request to `app`, in process; a POST body is a form.
async fn send(
    app: &Arc<App<MemoryStore>>,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> Reply {
    let mut headers = vec![("host", "127.0.0.1")];
    if !cookie.is_empty() {
        headers.push(("cookie", cookie));
    }
    if method == "POST" {
        headers.push(("content-type", "application/x-www-form-urlencoded"));
    }
    let method = method.parse().unwrap();
    call(app, request(method, path, &headers, body.to_owned().into())).await
}

/// The `name=value` pair of the cookie named `name` that `reply` sets.
fn cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .all("set-cookie")
        .into_iter()
        .map(|value| value.split(';').next().unwrap().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

/// Issue 14, finding 10: every cookieless `GET /` stored a session to hold the login
/// form's CSRF token, so anyone could fill the session store. Now the token lives in a
/// signed cookie: 1000 page views store no session, and the login form still works with
/// the CSRF check enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookieless_page_views_store_no_session_and_login_csrf_still_holds() {
    let app = Arc::new(App::new(MemoryStore::new(), Settings::new("http://127.0.0.1")).unwrap());
    let mut first = None;
    for _ in 0..1000 {
        let home = send(&app, "GET", "/", "", "").await;
        assert_eq!(home.status, 200);
        assert!(cookie(&home, "__Host-session").is_none());
        first.get_or_insert(home);
    }
    assert_eq!(app.session_count(), 0);

    let home = first.unwrap();
    let csrf_cookie = cookie(&home, "__Host-session-csrf").expect("a login CSRF cookie");
    let token = home.csrf();
    let signup = format!("username=ada&password=lovelace1815&csrf={token}");
    // Enforced: no cookie, no token, another token, a token with a made-up cookie.
    assert_eq!(send(&app, "POST", "/signup", "", &signup).await.status, 403);
    let no_token = "username=ada&password=lovelace1815";
    assert_eq!(
        send(&app, "POST", "/signup", &csrf_cookie, no_token)
            .await
            .status,
        403
    );
    let other = send(&app, "GET", "/", "", "").await.csrf();
    let wrong = format!("username=ada&password=lovelace1815&csrf={other}");
    assert_eq!(
        send(&app, "POST", "/signup", &csrf_cookie, &wrong)
            .await
            .status,
        403
    );
    let forged =
        "__Host-session-csrf=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let forged_form = "username=ada&password=lovelace1815&csrf=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        send(&app, "POST", "/signup", forged, forged_form)
            .await
            .status,
        403
    );
    assert_eq!(app.session_count(), 0);
    // The real pair signs up, and only then is a session stored.
    let signed_up = send(&app, "POST", "/signup", &csrf_cookie, &signup).await;
    assert_eq!(signed_up.status, 303);
    let session = cookie(&signed_up, "__Host-session").expect("a session at login");
    assert_eq!(app.session_count(), 1);
    // Logged in, the login token no longer does: the session's own token is needed.
    let both = format!("{session}; {csrf_cookie}");
    let logout = format!("csrf={token}");
    assert_eq!(
        send(&app, "POST", "/logout", &both, &logout).await.status,
        403
    );
    let own = send(&app, "GET", "/", &session, "").await.csrf();
    assert_ne!(own, token);
    let logout = format!("csrf={own}");
    assert_eq!(
        send(&app, "POST", "/logout", &session, &logout)
            .await
            .status,
        303
    );
    assert_eq!(app.session_count(), 0);
    // And the login form works with the CSRF pair.
    let login = format!("username=ada&password=lovelace1815&csrf={token}");
    assert_eq!(
        send(&app, "POST", "/login", &csrf_cookie, &login)
            .await
            .status,
        303
    );
}

/// Issue 14, finding 5: 30 concurrent wrong guesses with one CSRF pair were all checked
/// against a limit of 5 (check, hash, then count). Now at most 5 are checked (401); the
/// others are refused before hashing, 429 by the throttle or 503 when every hashing slot is
/// busy, both with `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_guesses_check_at_most_five() {
    let app = Arc::new(App::new(MemoryStore::new(), Settings::new("http://127.0.0.1")).unwrap());
    let home = send(&app, "GET", "/", "", "").await;
    let cookie = cookie(&home, "__Host-session-csrf").unwrap();
    let token = home.csrf();
    let signup = format!("username=bob&password=correct+horse&csrf={token}");
    assert_eq!(
        send(&app, "POST", "/signup", &cookie, &signup).await.status,
        303
    );
    let guess = format!("username=bob&password=wrong&csrf={token}");
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (app, cookie, guess) = (app.clone(), cookie.clone(), guess.clone());
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                send(&app, "POST", "/login", &cookie, &guess).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let checked = statuses.iter().filter(|status| **status == 401).count();
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| [401, 429, 503].contains(status)),
        "{statuses:?}"
    );
    // Whatever got through, the account is now locked for the right password too, unless
    // fewer than five were checked (busy answers are not failures).
    if checked == 5 {
        let right = format!("username=bob&password=correct+horse&csrf={token}");
        assert_eq!(
            send(&app, "POST", "/login", &cookie, &right).await.status,
            429
        );
    }
}
