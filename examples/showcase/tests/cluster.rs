//! Two showcase instances on one Redis (`REDIS_URL`; skipped without it, a failure under
//! `CI=true`) behind examples/reverse-proxy's `Proxy`, laid out as `scripts/cluster.sh`
//! lays them out: the proxy is the one public origin, round robin spreads the requests, and
//! the proxy's health checks and retries carry the users through the death of an instance.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{Client, OwnRedis, ReplyExt, Server};

/// A proxy listening on a port chosen now (so that the instances can be told their public
/// origin before it runs) and two instances sharing Redis under a fresh prefix and one
/// SQLite file for the REST API's rows; `None` when `REDIS_URL` is unset.
struct Cluster {
    proxy: SocketAddr,
    instances: Vec<Server>,
}

fn cluster(test: &str) -> Option<Cluster> {
    let url = serve::testing::peer("REDIS_URL")?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("showcase-cluster:{test}:{}:{nanos}:", std::process::id());
    let db = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cluster-{test}-{}-{nanos}.sqlite",
        std::process::id()
    ));
    let db = db.to_str().unwrap().to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = listener.local_addr().unwrap();
    let origin = format!("http://{proxy}");
    let env = [
        ("PUBLIC_ORIGIN", origin.as_str()),
        ("API_SQLITE_FILE", db.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    let instances = vec![
        Server::start_shared(&url, &prefix, &env),
        Server::start_shared(&url, &prefix, &env),
    ];
    let upstreams: Vec<String> = instances
        .iter()
        .map(|instance| format!(r#"{{ address = "{}" }}"#, instance.addr))
        .collect();
    let config = format!(
        r#"
[server]
listen = "{proxy}"
workers = 1
pseudonym = "cluster-test"
trusted_proxies = []
access_log = false
metrics_path = "/__proxy/metrics"

[[pools]]
name = "showcase"
algorithm = "round-robin"
upstreams = [{upstreams}]
connect_timeout_ms = 500
request_timeout_ms = 10000
idle_timeout_ms = 30000
max_retries = 2
retry_statuses = [502, 503]
panic_threshold = 0.5
[pools.health]
path = "/healthz"
interval_ms = 200
timeout_ms = 500
healthy_threshold = 1
unhealthy_threshold = 1

[[routes]]
prefix = "/"
pool = "showcase"
"#,
        upstreams = upstreams.join(", ")
    );
    let config = reverse_proxy::ServerConfig::parse(&config).unwrap();
    listener.set_nonblocking(true).unwrap();
    // The proxy runs on a runtime of its own thread for the rest of the test process.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let proxy = reverse_proxy::Proxy::new(&config).await.unwrap();
            proxy.spawn_background();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, peer)) = listener.accept().await {
                tokio::spawn(proxy.serve(stream, peer));
            }
        });
    });
    Some(Cluster { proxy, instances })
}

/// One `GET path` through a fresh connection; the status, or the reason there was none.
fn status_of(addr: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|error| error.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|error| format!("write: {error}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|error| format!("read: {error}"))?;
    let head = String::from_utf8_lossy(&response);
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", head.lines().next()))
}

#[test]
fn a_session_made_through_the_proxy_holds_on_every_instance() {
    let Some(cluster) = cluster("session") else {
        return;
    };
    let mut browser = Client {
        addr: cluster.proxy,
        cookies: Default::default(),
    };
    let csrf = browser.get("/auth/").csrf();
    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "ada-cluster"),
            ("password", "analytical engine 1843"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    // Round robin over two instances: these requests alternate between them, and every
    // one sees the signed-in user.
    for round in 0..40 {
        let page = browser.get("/auth/");
        assert_eq!(page.status, 200, "round {round}: {}", page.body);
        assert!(
            page.body.contains("Logged in as <b>ada-cluster</b>"),
            "round {round}: the session is not seen: {}",
            page.body
        );
    }
    // And each instance, asked directly, knows the session too.
    for instance in &cluster.instances {
        let mut direct = Client {
            addr: instance.addr,
            cookies: browser.cookies.clone(),
        };
        let page = direct.get("/auth/");
        assert!(
            page.body.contains("Logged in as <b>ada-cluster</b>"),
            "{}",
            page.body
        );
    }
}

#[test]
fn an_oauth_login_started_on_one_instance_finishes_on_another() {
    let Some(cluster) = cluster("oauth-login") else {
        return;
    };
    let origin = format!("http://{}", cluster.proxy);
    let (a, b) = (&cluster.instances[0], &cluster.instances[1]);
    // The login starts on A: the pending login (state, PKCE verifier, nonce) is stored in
    // the client app's session, in Redis.
    let mut on_a = a.client();
    let start = on_a.get("/oauth-login/login");
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = start.location_path(&origin);
    assert!(authorize.starts_with("/oauth/authorize?"), "{authorize}");
    // The provider's pages, and the way back, on B.
    let mut on_b = Client {
        addr: b.addr,
        cookies: on_a.cookies.clone(),
    };
    let login_page = on_b.get(&authorize);
    assert_eq!(login_page.status, 200, "{}", login_page.body);
    let csrf = login_page.csrf();
    let pending = login_page
        .hidden("authorize")
        .expect("the request in the form");
    let logged_in = on_b.post_form(
        "/oauth/login",
        &[
            ("csrf", &csrf),
            ("authorize", &pending),
            ("username", "alice"),
            ("password", "wonderland-rabbit"),
        ],
    );
    assert_eq!(logged_in.status, 303, "{}", logged_in.body);
    let consent = on_b.get("/oauth/consent");
    assert_eq!(consent.status, 200, "{}", consent.body);
    let allowed = on_b.post_form(
        "/oauth/consent",
        &[("csrf", &consent.csrf()), ("decision", "allow")],
    );
    assert_eq!(allowed.status, 303, "{}", allowed.body);
    let callback = allowed.location_path(&origin);
    assert!(
        callback.starts_with("/oauth-login/callback?code="),
        "{callback}"
    );
    // The callback lands on B, which did not start the login.
    let finished = on_b.get(&callback);
    assert_eq!(finished.status, 303, "{}", finished.body);
    // Logged in, on both instances.
    for instance in [a, b] {
        let mut direct = Client {
            addr: instance.addr,
            cookies: on_b.cookies.clone(),
        };
        let home = direct.get("/oauth-login/");
        assert!(
            home.body
                .contains("Logged in as <b>alice</b> via backend-kit provider"),
            "{}",
            home.body
        );
    }
    // The pending login was used once: the same callback on A is refused.
    let mut replay = Client {
        addr: a.addr,
        cookies: on_b.cookies.clone(),
    };
    assert_eq!(replay.get(&callback).status, 400);
}

#[test]
fn no_request_fails_when_an_instance_is_killed() {
    let Some(mut cluster) = cluster("kill") else {
        return;
    };
    // Both instances answer through the proxy first.
    for _ in 0..4 {
        assert_eq!(status_of(cluster.proxy, "/api/users"), Ok(200));
    }
    let mut failures = Vec::new();
    let mut answered = 0;
    for request in 0..300 {
        if request == 60 {
            // SIGKILL: no drain, connections reset, the proxy finds out on its own.
            cluster.instances[0].child.kill().unwrap();
            cluster.instances[0].child.wait().unwrap();
        }
        match status_of(cluster.proxy, "/api/users") {
            Ok(200) => answered += 1,
            other => failures.push((request, other)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 300 requests failed after the kill: {failures:?}",
        failures.len()
    );
    assert_eq!(answered, 300);
    // The survivor serves alone, and the proxy's metrics count the dead one as unhealthy.
    let metrics = Client {
        addr: cluster.proxy,
        cookies: Default::default(),
    }
    .get("/__proxy/metrics");
    let dead = format!("{}", cluster.instances[0].addr);
    let unhealthy = metrics.body.lines().any(|line| {
        line.starts_with("proxy_upstream_healthy") && line.contains(&dead) && line.ends_with(" 0")
    });
    assert!(
        unhealthy,
        "the killed instance is still marked healthy:\n{}",
        metrics.body
    );
}

#[test]
fn a_redis_restart_costs_503s_during_the_outage_and_no_session() {
    // The machine's Redis is not touched: this test kills and restarts its own.
    if serve::testing::peer("REDIS_URL").is_none() {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("redis-aof-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = OwnRedis::start(Some(&dir));
    let url = redis.url();
    let server = Server::start_shared(&url, "restart:", &[]);
    let mut browser = server.client();
    let csrf = browser.get("/auth/").csrf();
    let signed_up = browser.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "lin"),
            ("password", "correct horse battery"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    assert!(
        browser
            .get("/auth/")
            .body
            .contains("Logged in as <b>lin</b>")
    );

    // The outage: SIGKILL, nothing flushed on the way out (the AOF already has every write).
    redis.kill();
    let during = browser.get("/auth/");
    assert_eq!(during.status, 503, "{}", during.body);
    assert!(during.header("retry-after").is_some());

    // Back on the same port and files (answering PING): the very first request works, with
    // the same session, without logging in again. The first command on each store's
    // connection finds the old connection dead (or the last reconnection refused) and is
    // run once more on a new one, so no request sees the restart.
    redis = OwnRedis::start_on(redis.port, Some(&dir));
    let after = browser.get("/auth/");
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(
        after.body.contains("Logged in as <b>lin</b>"),
        "the session was lost: {}",
        after.body
    );
    // New writes work at once too, on every store a sign-up touches (the accounts, the
    // throttle, the sessions): a second account signs up on its first try.
    let mut second = server.client();
    let csrf = second.get("/auth/").csrf();
    let signed_up = second.post_form(
        "/auth/signup",
        &[
            ("csrf", &csrf),
            ("username", "noor"),
            ("password", "another long password"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    assert!(
        second
            .get("/auth/")
            .body
            .contains("Logged in as <b>noor</b>")
    );
    // And the REST API's idempotency keys (the rest-core store, a connection of its own).
    let created = second.send_json(
        "POST",
        "/api/users",
        &[("Idempotency-Key", "after-the-restart")],
        &serde_json::json!({"name": "Noor", "email": "noor@example.com"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
