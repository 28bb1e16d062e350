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
use serve::testing::{Reply, call, request, submit};

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
    let signup = format!("username=ada&password=lovelace-engine-1815&csrf={token}");
    // Enforced: no cookie, no token, another token, a token with a made-up cookie.
    assert_eq!(send(&app, "POST", "/signup", "", &signup).await.status, 403);
    let no_token = "username=ada&password=lovelace-engine-1815";
    assert_eq!(
        send(&app, "POST", "/signup", &csrf_cookie, no_token)
            .await
            .status,
        403
    );
    let other = send(&app, "GET", "/", "", "").await.csrf();
    let wrong = format!("username=ada&password=lovelace-engine-1815&csrf={other}");
    assert_eq!(
        send(&app, "POST", "/signup", &csrf_cookie, &wrong)
            .await
            .status,
        403
    );
    let forged =
        "__Host-session-csrf=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let forged_form = "username=ada&password=lovelace-engine-1815&csrf=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
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
    let login = format!("username=ada&password=lovelace-engine-1815&csrf={token}");
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
    let signup = format!("username=bob&password=correct+horse+saddle&csrf={token}");
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
        let right = format!("username=bob&password=correct+horse+saddle&csrf={token}");
        assert_eq!(
            send(&app, "POST", "/login", &cookie, &right).await.status,
            429
        );
    }
}

/// A login throttled per client address at 5 failures (and per account at 5), trusting
/// `trusted` proxies.
fn throttled_app(trusted: &[&str]) -> Arc<App<MemoryStore>> {
    let trusted_proxies = proxy_core::TrustedProxies::parse(trusted.iter().copied()).unwrap();
    let settings = Settings {
        deployment: serve::Deployment {
            trusted_proxies,
            ..serve::Deployment::default()
        },
        throttle: auth_core::ThrottlePolicy {
            max_address_failures: 5,
            ..auth_core::ThrottlePolicy::default()
        },
        ..Settings::new("http://127.0.0.1")
    };
    Arc::new(App::new(MemoryStore::new(), settings).unwrap())
}

/// A failed login for a user name of its own (so only the address count can throttle it)
/// from the TCP `peer`, which says the client is `forwarded_for`.
async fn guess(app: &Arc<App<MemoryStore>>, peer: &str, forwarded_for: &str, user: &str) -> u16 {
    let fields = format!("username={user}&password=wrong");
    let headers = [("x-forwarded-for", forwarded_for)];
    let peer = peer.parse().unwrap();
    submit(app, "/", "/login", &fields, peer, &headers)
        .await
        .status
}

/// Issue 14, finding 6: behind our own reverse proxy every user shared the proxy's
/// throttle bucket. With the proxy trusted, the address it forwards in `X-Forwarded-For`
/// is counted: client A's sixth failure is throttled while client B, through the same
/// proxy, still gets a plain login failure.
#[tokio::test]
async fn clients_behind_a_trusted_proxy_have_buckets_of_their_own() {
    let app = throttled_app(&["10.0.0.0/8"]);
    let proxy = "10.0.0.2:50000";
    for n in 0..5 {
        let user = format!("a{n}");
        assert_eq!(guess(&app, proxy, "203.0.113.1", &user).await, 401);
    }
    assert_eq!(guess(&app, proxy, "203.0.113.1", "a5").await, 429);
    // A client's own X-Forwarded-For entry in front of the proxy's does not help either:
    // the rightmost untrusted address is the client.
    assert_eq!(
        guess(&app, proxy, "198.51.100.9, 203.0.113.1", "a6").await,
        429
    );
    assert_eq!(guess(&app, proxy, "203.0.113.2", "b0").await, 401);
}

/// The default trusts nobody: a client that writes its own `X-Forwarded-For` is still
/// counted by its TCP address, however it changes the header.
#[tokio::test]
async fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let app = throttled_app(&[]);
    let client = "192.0.2.50:40000";
    for n in 0..5 {
        let forged = format!("203.0.113.{n}");
        assert_eq!(guess(&app, client, &forged, &format!("u{n}")).await, 401);
    }
    assert_eq!(guess(&app, client, "203.0.113.99", "u5").await, 429);
    assert_eq!(guess(&app, client, "198.51.100.1", "u6").await, 429);
    // Another peer is another bucket.
    assert_eq!(
        guess(&app, "192.0.2.51:40000", "203.0.113.99", "v").await,
        401
    );
}

/// IPv4-mapped IPv6 (what a dual-stack listener reports, and what a proxy may forward) is
/// counted as its IPv4 address: a trusted proxy on `::ffff:10.0.0.2` is recognized, the
/// mapped and plain forms of one client share its bucket, and other mapped clients do not
/// fall into one IPv6 /64 with it.
#[tokio::test]
async fn ipv4_mapped_addresses_are_unmapped_end_to_end() {
    let app = throttled_app(&["10.0.0.0/8"]);
    let proxy = "[::ffff:10.0.0.2]:50000";
    for n in 0..3 {
        let user = format!("m{n}");
        assert_eq!(guess(&app, proxy, "::ffff:203.0.113.1", &user).await, 401);
    }
    for n in 3..5 {
        let user = format!("m{n}");
        assert_eq!(guess(&app, proxy, "203.0.113.1", &user).await, 401);
    }
    assert_eq!(guess(&app, proxy, "::ffff:203.0.113.1", "m5").await, 429);
    assert_eq!(guess(&app, proxy, "::ffff:203.0.113.2", "n0").await, 401);
    // Served directly on a dual-stack listener: two IPv4 peers, two buckets.
    let direct = throttled_app(&[]);
    for n in 0..5 {
        let user = format!("d{n}");
        assert_eq!(guess(&direct, "[::ffff:192.0.2.1]:1", "", &user).await, 401);
    }
    assert_eq!(guess(&direct, "[::ffff:192.0.2.1]:1", "", "d5").await, 429);
    assert_eq!(guess(&direct, "[::ffff:192.0.2.2]:1", "", "e0").await, 401);
}

/// Issue 22, item 8: "password", "12345678" and eight spaces were accepted at sign-up. Now
/// each is refused with the reason in the page, and a passphrase is accepted.
#[tokio::test]
async fn weak_passwords_are_refused_with_the_reason() {
    let app = Arc::new(App::new(MemoryStore::new(), Settings::new("http://127.0.0.1")).unwrap());
    let home = send(&app, "GET", "/", "", "").await;
    assert!(home.body.contains(r#"minlength="15""#), "{}", home.body);
    let cookie = cookie(&home, "__Host-session-csrf").unwrap();
    let token = home.csrf();
    for weak in ["password", "12345678", "++++++++"] {
        let form = format!("username=eve&password={weak}&csrf={token}");
        let refused = send(&app, "POST", "/signup", &cookie, &form).await;
        assert_eq!(refused.status, 422, "{weak}: {}", refused.body);
        assert!(
            refused
                .body
                .contains("at least 15 characters (this one has 8)"),
            "{weak}: {}",
            refused.body
        );
    }
    // Long enough, but common, repetitive or holding the user name.
    for (weak, reason) in [
        ("passwordpassword", "most commonly used"),
        ("+++++++++++++++", "repeats the same characters"),
        ("abcdefghijklmnopq", "consecutive characters"),
        ("eve-likes-apples-a-lot", "contains your user name"),
    ] {
        let form = format!("username=eve&password={weak}&csrf={token}");
        let refused = send(&app, "POST", "/signup", &cookie, &form).await;
        assert_eq!(refused.status, 422, "{weak}");
        assert!(refused.body.contains(reason), "{weak}: {}", refused.body);
    }
    let good = format!("username=eve&password=purple+elephants+dance&csrf={token}");
    assert_eq!(
        send(&app, "POST", "/signup", &cookie, &good).await.status,
        303
    );
}

/// Issue 22, item 9: a 401 from the JSON API had an empty body. It is an RFC 9457 problem
/// document now, with the `WWW-Authenticate` challenge kept.
#[tokio::test]
async fn api_refusals_are_problem_documents() {
    let app = Arc::new(App::new(MemoryStore::new(), Settings::new("http://127.0.0.1")).unwrap());
    let cases = [("", None), ("Bearer not-a-jwt", Some("invalid_token"))];
    for (authorization, error) in cases {
        let mut headers = vec![("host", "127.0.0.1")];
        if !authorization.is_empty() {
            headers.push(("authorization", authorization));
        }
        let request = request(
            "GET".parse().unwrap(),
            "/api/me",
            &headers,
            String::new().into(),
        );
        let reply = call(&app, request).await;
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"auth-login\""),
            "{challenge}"
        );
        if let Some(error) = error {
            assert!(
                challenge.contains(&format!("error=\"{error}\"")),
                "{challenge}"
            );
        }
        let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(problem["status"], 401);
        assert_eq!(problem["title"], "Unauthorized");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{problem}");
    }
}

/// Issue 22, item 7: after five wrong passwords the page gave no time, and anyone could
/// lock any known user out. The page now says how long to wait, and the count is per
/// (account, client address): the owner at another address still logs in.
#[tokio::test]
async fn a_lockout_names_the_wait_and_spares_the_owner_elsewhere() {
    let app = Arc::new(App::new(MemoryStore::new(), Settings::new("http://127.0.0.1")).unwrap());
    let owner: std::net::SocketAddr = "192.0.2.10:40000".parse().unwrap();
    let attacker: std::net::SocketAddr = "203.0.113.9:40000".parse().unwrap();
    let signup = "username=zoe&password=purple+elephants+dance";
    assert_eq!(
        submit(&app, "/", "/signup", signup, owner, &[])
            .await
            .status,
        303
    );
    let wrong = "username=zoe&password=not+her+password+at+all";
    for _ in 0..5 {
        assert_eq!(
            submit(&app, "/", "/login", wrong, attacker, &[])
                .await
                .status,
            401
        );
    }
    let locked = submit(&app, "/", "/login", wrong, attacker, &[]).await;
    assert_eq!(locked.status, 429);
    assert!(locked.header("retry-after").is_some());
    assert!(
        locked.body.contains("try again in 15 minutes")
            || locked.body.contains("try again in 14 minutes"),
        "{}",
        locked.body
    );
    // The right password from the attacker's address is refused too (no checking there)...
    let right = "username=zoe&password=purple+elephants+dance";
    assert_eq!(
        submit(&app, "/", "/login", right, attacker, &[])
            .await
            .status,
        429
    );
    // ...but the owner, at their own address, is not locked out.
    assert_eq!(
        submit(&app, "/", "/login", right, owner, &[]).await.status,
        303
    );
}
