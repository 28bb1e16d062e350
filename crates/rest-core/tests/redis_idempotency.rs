#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `RedisIdempotencyStore` against a real Redis (`REDIS_URL`): two stores on two connections
//! stand for two instances of one application behind a load balancer. The outage test starts
//! its own `redis-server` on a free port and never touches the shared one.
#![cfg(feature = "redis")]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rest_core::{
    Error, Fingerprint, IdempotencyKey, IdempotencyStore, RedisIdempotencyStore, Reservation,
    StoredResponse,
};

fn url() -> Option<String> {
    let url = std::env::var("REDIS_URL").ok();
    if url.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "REDIS_URL must be set under CI=true"
        );
        eprintln!("skipped: REDIS_URL is not set");
    }
    url
}

fn prefix() -> String {
    format!(
        "rest-core-test:{}:{}:",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn key(text: &str) -> IdempotencyKey {
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", HeaderValue::from_str(text).unwrap());
    IdempotencyKey::from_headers(&headers).unwrap().unwrap()
}

fn created(id: u32) -> StoredResponse {
    StoredResponse::new(
        StatusCode::CREATED,
        vec![
            (
                header::LOCATION,
                HeaderValue::from_str(&format!("/users/{id}")).unwrap(),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        Bytes::from(format!("{{\"id\":{id}}}")),
    )
}

const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test]
async fn a_retry_on_another_instance_replays_the_stored_response() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let one = RedisIdempotencyStore::connect(&url, &prefix, DAY)
        .await
        .unwrap();
    let two = RedisIdempotencyStore::connect(&url, &prefix, DAY)
        .await
        .unwrap();
    let now = SystemTime::now();
    let k = key("signup-ada-1");
    let print = Fingerprint::of(&Method::POST, "/users", b"{\"name\":\"Ada\"}");
    let other = Fingerprint::of(&Method::POST, "/users", b"{\"name\":\"Bob\"}");

    assert_eq!(
        one.begin(&k, &print, now).await.unwrap(),
        Reservation::Started
    );
    // While the first instance runs it: 409 for the same request, 422 for another.
    let running = two.begin(&k, &print, now).await.unwrap_err();
    assert_eq!(running, Error::IdempotencyKeyInProgress);
    assert_eq!(running.status(), StatusCode::CONFLICT);
    let reused = two.begin(&k, &other, now).await.unwrap_err();
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Another request's abandonment and completion leave the reservation alone.
    two.abandon(&k, &other).await.unwrap();
    two.complete(&k, &other, created(99), now).await.unwrap();
    assert_eq!(
        two.begin(&k, &print, now).await.unwrap_err(),
        Error::IdempotencyKeyInProgress
    );

    one.complete(&k, &print, created(7), now).await.unwrap();
    // The retry lands on the other instance: the first response, not a second creation.
    assert_eq!(
        two.begin(&k, &print, now).await.unwrap(),
        Reservation::Replay(created(7))
    );
    let replayed = match two.begin(&k, &print, now).await.unwrap() {
        Reservation::Replay(stored) => stored.to_response::<Bytes>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(replayed.status(), StatusCode::CREATED);
    assert_eq!(replayed.headers()[header::LOCATION], "/users/7");
    assert_eq!(replayed.body(), &Bytes::from_static(b"{\"id\":7}"));
    assert_eq!(
        two.begin(&k, &other, now).await.unwrap_err(),
        Error::IdempotencyKeyReused
    );
    // A completed key is not abandoned.
    one.abandon(&k, &print).await.unwrap();
    assert!(matches!(
        one.begin(&k, &print, now).await.unwrap(),
        Reservation::Replay(_)
    ));

    // The completed key lives for the time to live, in Redis's own expiry.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}idem:signup-ada-1"))
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        ttl > (DAY - Duration::from_secs(60)).as_millis() as i64,
        "{ttl}"
    );
}

/// Twenty requests with one key, split over two instances, at once: one creation, and
/// every other request is told the key is in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_instances_create_once() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let stores = [
        Arc::new(
            RedisIdempotencyStore::connect(&url, &prefix, DAY)
                .await
                .unwrap(),
        ),
        Arc::new(
            RedisIdempotencyStore::connect(&url, &prefix, DAY)
                .await
                .unwrap(),
        ),
    ];
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let print = Fingerprint::of(&Method::POST, "/posts", b"hello");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = stores[n % 2].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.begin(&key("race-1"), &print, SystemTime::now()).await
            })
        })
        .collect();
    let mut started = 0;
    let mut in_progress = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(Reservation::Started) => started += 1,
            Err(Error::IdempotencyKeyInProgress) => in_progress += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((started, in_progress), (1, 19));
}

/// A reservation whose instance died is released after the lease, and an abandoned one at
/// once.
#[tokio::test]
async fn leases_expire_and_abandoned_keys_run_again() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let one = RedisIdempotencyStore::connect(&url, &prefix, DAY)
        .await
        .unwrap()
        .with_lease(Duration::from_millis(200));
    let two = RedisIdempotencyStore::connect(&url, &prefix, DAY)
        .await
        .unwrap();
    let print = Fingerprint::of(&Method::POST, "/users", b"x");
    let now = SystemTime::now();
    assert_eq!(
        one.begin(&key("crash"), &print, now).await.unwrap(),
        Reservation::Started
    );
    assert!(two.begin(&key("crash"), &print, now).await.is_err());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        two.begin(&key("crash"), &print, now).await.unwrap(),
        Reservation::Started
    );

    assert_eq!(
        one.begin(&key("fails"), &print, now).await.unwrap(),
        Reservation::Started
    );
    one.abandon(&key("fails"), &print).await.unwrap();
    assert_eq!(
        two.begin(&key("fails"), &print, now).await.unwrap(),
        Reservation::Started
    );
}

/// A `redis-server` of the test's own on a free port, persisting every write to its
/// append-only file in a fresh directory.
struct OwnRedis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    fn start(port: u16, dir: &std::path::Path) -> Option<Self> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "redis-server must be installed under CI=true: {error}"
                );
                eprintln!("skipped: cannot run redis-server: {error}");
                return None;
            }
        };
        let server = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        // Up means answering PING (a restarted server accepts connections while it still
        // loads its append-only file).
        for _ in 0..100 {
            if pong(port) {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the Redis on `port` answers `PING` with `+PONG`.
fn pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Redis goes away: every call is a 503 (never a second creation or a lost response);
/// Redis comes back from its append-only file: the very first call after it replays the
/// stored response and new keys work, on the same store value (it reconnects by itself and
/// runs the command that found the connection gone once more), and so does a store that
/// was not used during the outage (its old connection is found dead on its first use).
#[tokio::test]
async fn an_outage_is_a_503_and_the_store_recovers() {
    if url().is_none() {
        return;
    }
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rest-core-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(mut server) = OwnRedis::start(port, &dir) else {
        return;
    };
    let store = RedisIdempotencyStore::connect(&server.url(), "outage:", DAY)
        .await
        .unwrap();
    let idle = RedisIdempotencyStore::connect(&server.url(), "outage:", DAY)
        .await
        .unwrap();
    let print = Fingerprint::of(&Method::POST, "/users", b"ada");
    let now = SystemTime::now();
    assert_eq!(
        store.begin(&key("kept"), &print, now).await.unwrap(),
        Reservation::Started
    );
    store
        .complete(&key("kept"), &print, created(1), now)
        .await
        .unwrap();

    server.kill();
    for _ in 0..3 {
        let error = store.begin(&key("during"), &print, now).await.unwrap_err();
        assert!(
            matches!(error, Error::IdempotencyStoreUnavailable(_)),
            "{error:?}"
        );
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let problem = error.to_problem();
        assert!(
            !problem
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("127.0.0.1"),
            "the client is not told the store's address"
        );
    }

    let server = OwnRedis::start(port, &dir).unwrap();
    assert_eq!(
        store.begin(&key("kept"), &print, now).await.unwrap(),
        Reservation::Replay(created(1))
    );
    assert_eq!(
        store.begin(&key("after"), &print, now).await.unwrap(),
        Reservation::Started
    );
    // The idle store's first command finds its connection dead and runs again: a claim
    // whose first attempt may have reached Redis recognises its own reservation (started,
    // not "in progress").
    assert_eq!(
        idle.begin(&key("idle"), &print, now).await.unwrap(),
        Reservation::Started
    );
    assert_eq!(
        idle.begin(&key("idle"), &print, now)
            .await
            .unwrap_err()
            .status(),
        StatusCode::CONFLICT
    );
    drop(server);
}
