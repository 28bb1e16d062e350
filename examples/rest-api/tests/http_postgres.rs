#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The HTTP suite of tests/http.rs again, each server on PostgreSQL (`DATABASE_URL`) in a
//! schema of its own, and what only a shared engine has: two instances that migrate at once
//! and race for one e-mail address, and a database that is down.

#[path = "http.rs"]
mod suite;

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use rest_api::{App, Settings};
use serve::testing::{Reply, call, get, request};
use suite::support::Schema;

/// A request: method, path, headers, JSON body.
type Call<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a str);

fn app(url: &str) -> Arc<App> {
    Arc::new(
        App::new(&Settings {
            db: Some(url.to_owned()),
            ..Settings::default()
        })
        .unwrap(),
    )
}

async fn send(
    app: &Arc<App>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    call(
        app,
        request(method, path, &all, Bytes::from(body.to_owned())),
    )
    .await
}

async fn create_user(app: Arc<App>, email: String) -> Reply {
    let body = format!(r#"{{"name":"Racer","email":"{email}"}}"#);
    send(&app, Method::POST, "/users", &[], &body).await
}

/// One value of `sql` on `url`.
async fn scalar(url: &str, sql: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_migrate_at_once_and_race_for_one_email() {
    let Some(schema) = Schema::create() else {
        return;
    };
    let url = schema.url();
    let (a, b) = (app(&url), app(&url));

    // Both start at once on an empty schema: the advisory lock makes them take turns, and
    // each step is applied once.
    let (first, second) = tokio::join!(a.migrate(), b.migrate());
    first.unwrap();
    second.unwrap();
    assert_eq!(
        scalar(
            &url,
            "SELECT count(*) FROM rest_api_migrations WHERE version = 1"
        )
        .await,
        1
    );
    // A restart finds the work done.
    app(&url).migrate().await.unwrap();
    assert_eq!(
        scalar(&url, "SELECT count(*) FROM rest_api_migrations").await,
        1
    );

    // The same address created on both instances at once: the unique index decides, one
    // 201 and one 409, every round. Odd rounds differ in case only (ASCII folding).
    let rounds = 25;
    for round in 0..rounds {
        let email = format!("racer{round}@example.com");
        let other = if round % 2 == 1 {
            email.to_ascii_uppercase()
        } else {
            email.clone()
        };
        let on_a = tokio::spawn(create_user(Arc::clone(&a), email));
        let on_b = tokio::spawn(create_user(Arc::clone(&b), other));
        let (on_a, on_b) = (on_a.await.unwrap(), on_b.await.unwrap());
        let mut statuses = [on_a.status, on_b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}: {on_a:?} {on_b:?}");
        let loser = if on_a.status == 409 { &on_a } else { &on_b };
        assert_eq!(
            loser.header("content-type"),
            Some("application/problem+json")
        );
        let problem: serde_json::Value = serde_json::from_str(&loser.body).unwrap();
        assert_eq!(problem["status"], 409);
        assert_eq!(problem["pointer"], "/email");
    }
    assert_eq!(scalar(&url, "SELECT count(*) FROM users").await, rounds);

    // What one instance wrote, the other reads, with the same validators.
    let created = send(
        &a,
        Method::POST,
        "/users",
        &[],
        r#"{"name":"Ada","email":"ada@example.com"}"#,
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let location = created.header("location").unwrap().to_owned();
    let read = get(&b, &location).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.header("etag"), Some("\"v1\""));
    // A write on B makes A's copy stale.
    let replaced = send(
        &b,
        Method::PUT,
        &location,
        &[("if-match", "\"v1\"")],
        r#"{"name":"Ada L.","email":"ada@example.com"}"#,
    )
    .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    let stale = send(
        &a,
        Method::PUT,
        &location,
        &[("if-match", "\"v1\"")],
        r#"{"name":"Ada","email":"ada@example.com"}"#,
    )
    .await;
    assert_eq!(stale.status, 412, "{stale:?}");
}

/// Nothing listens on the port: every call that needs the database is a 503 problem with
/// `Retry-After`, saying nothing of the driver's error; liveness stays up.
#[tokio::test]
async fn a_database_that_is_down_is_a_503_problem() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = app(&format!("postgres://postgres:secret@127.0.0.1:{port}/test"));
    let error = app.migrate().await.unwrap_err();
    assert!(error.starts_with("PostgreSQL database: "), "{error}");
    assert!(!error.contains("secret"), "{error}");

    let ada = r#"{"name":"Ada","email":"ada@example.com"}"#;
    let post = r#"{"title":"t","body":"b"}"#;
    let calls: [Call<'_>; 11] = [
        (Method::GET, "/users", &[], ""),
        (Method::GET, "/users/1", &[], ""),
        (Method::POST, "/users", &[], ada),
        (Method::POST, "/users", &[("idempotency-key", "k-1")], ada),
        (Method::PUT, "/users/1", &[("if-match", "\"v1\"")], ada),
        (Method::DELETE, "/users/1", &[("if-match", "\"v1\"")], ""),
        (Method::GET, "/users/1/posts", &[], ""),
        (Method::POST, "/users/1/posts", &[], post),
        (Method::GET, "/posts", &[], ""),
        (Method::GET, "/posts/1", &[], ""),
        (Method::PUT, "/posts/1", &[("if-match", "\"v1\"")], post),
    ];
    for (method, path, headers, body) in calls {
        let reply = send(&app, method.clone(), path, headers, body).await;
        assert_eq!(reply.status, 503, "{method} {path}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(reply.header("retry-after"), Some("5"));
        let problem: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(problem["status"], 503);
        assert_eq!(
            problem["detail"],
            "the database is unavailable; try again later"
        );
        for leak in ["refused", "os error", "connect", "postgres", "secret"] {
            assert!(!reply.body.to_lowercase().contains(leak), "{reply:?}");
        }
    }
    // The key of the failed creation was released: the same request may be retried.
    let retried = send(
        &app,
        Method::POST,
        "/users",
        &[("idempotency-key", "k-1")],
        ada,
    )
    .await;
    assert_eq!(retried.status, 503, "{retried:?}");
    assert_eq!(get(&app, "/healthz").await.status, 200);
    assert_eq!(get(&app, "/openapi.json").await.status, 200);
}
