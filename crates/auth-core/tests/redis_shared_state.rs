//! OAuth grants and refresh-token families in Redis (`REDIS_URL`), with two authorization
//! servers on two connections standing for two instances behind a load balancer; signing
//! keys shared through Redis; and an outage of a `redis-server` the test starts itself on a
//! free port (the shared one is never touched).

#![cfg(all(feature = "oauth", feature = "redis"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::oauth::code_challenge_s256;
use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationServer, Client, ClientAuthMethod, GrantStore as _, GrantType,
    MemoryClientRegistry, RedisGrantStore, ServerConfig,
};
use auth_core::{
    Algorithm, Claims, Error, JwtIssuer, JwtVerifier, Key, KeySet, RedisRefreshStore,
    RefreshStore as _, RefreshTokens, SessionId, shared_secret,
};
use http::{Request, StatusCode, request::Parts};
use serde_json::Value;

const ISSUER: &str = "https://id.example";
const REDIRECT: &str = "https://app.example/cb";
const SECRET: &str = "rs-secret-0123456789";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

type Server = AuthorizationServer<MemoryClientRegistry, RedisGrantStore, RedisRefreshStore>;

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
    format!("auth-core-test:{}:", SessionId::generate().unwrap())
}

/// One instance: its own connections to Redis, the same client registration (configuration).
async fn instance(url: &str, prefix: &str) -> Server {
    instance_and_refresh_store(url, prefix).await.0
}

async fn instance_and_refresh_store(url: &str, prefix: &str) -> (Server, RedisRefreshStore) {
    let clients = MemoryClientRegistry::new();
    clients.register(
        Client::public("spa", [REDIRECT])
            .unwrap()
            .with_scopes(["profile"])
            .with_grants([GrantType::AuthorizationCode, GrantType::RefreshToken]),
    );
    clients.register(
        Client::confidential(
            "rs",
            SECRET,
            ClientAuthMethod::ClientSecretPost,
            ["https://rs.example/cb"],
        )
        .unwrap()
        .with_grants([GrantType::ClientCredentials]),
    );
    let refresh = RedisRefreshStore::connect(url, prefix).await.unwrap();
    let server = AuthorizationServer::new(
        ServerConfig::new(ISSUER).unwrap(),
        clients,
        RedisGrantStore::connect(url, prefix).await.unwrap(),
        RefreshTokens::new(refresh.clone(), Duration::from_secs(86_400)),
        AccessTokenFormat::Opaque,
    );
    (server, refresh)
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn post() -> Parts {
    Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

async fn token(server: &Server, body: &str) -> (StatusCode, Value) {
    let response = server
        .token(&post(), body.as_bytes(), SystemTime::now())
        .await;
    let status = response.status();
    (status, serde_json::from_slice(response.body()).unwrap())
}

async fn introspect(server: &Server, token: &str) -> Value {
    let body = format!("client_id=rs&client_secret={SECRET}&token={token}");
    let response = server
        .introspect(&post(), body.as_bytes(), SystemTime::now())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(response.body()).unwrap()
}

/// The authorization request on one instance, the approval and the code on it; the token
/// request on the other.
async fn code(server: &Server) -> String {
    let query = format!(
        "response_type=code&client_id=spa&redirect_uri={}&scope=profile&state=s1\
         &code_challenge={}&code_challenge_method=S256",
        enc(REDIRECT),
        code_challenge_s256(VERIFIER)
    );
    let request = server.authorization_request(&query).await.unwrap();
    let response = server
        .approve(&request, "alice", SystemTime::now())
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned()
}

fn exchange(code: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&client_id=spa&redirect_uri={}\
         &code_verifier={VERIFIER}",
        enc(REDIRECT)
    )
}

fn refresh(token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id=spa")
}

#[tokio::test]
async fn the_oauth_flow_completes_across_instances_and_reuse_is_detected_on_the_other() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let one = instance(&url, &prefix).await;
    let two = instance(&url, &prefix).await;

    let first = code(&one).await;
    let (status, tokens) = token(&two, &exchange(&first)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&one, &access).await["active"], true);
    assert_eq!(introspect(&one, &access).await["sub"], "alice");

    // The code is single use on every instance: a replay on the first one is refused and
    // revokes what the code issued.
    let (status, replay) = token(&one, &exchange(&first)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(replay["error"], "invalid_grant");
    assert_eq!(introspect(&two, &access).await["active"], false);
    let (status, _) = token(&two, &refresh(&first_refresh)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A new grant: rotate on one instance, present the old token on the other.
    let second = code(&two).await;
    let (_, tokens) = token(&one, &exchange(&second)).await;
    let old = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = token(&one, &refresh(&old)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["refresh_token"].as_str().unwrap().to_owned();
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&two, &new).await["active"], true);
    let (status, reused) = token(&two, &refresh(&old)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        reused["error_description"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{reused}"
    );
    // The whole family and the grant's access tokens are revoked, on both instances.
    let (status, _) = token(&one, &refresh(&new)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(introspect(&one, &new_access).await["active"], false);
    assert_eq!(introspect(&two, &new).await["active"], false);
}

/// Eight exchanges of one code, split over two instances, at once. At most one gets
/// tokens, and since the others are replays of the code, whatever it got is revoked
/// (RFC 6749 section 4.1.2): a replay that lands before the winner has stored its tokens
/// revokes the grant first, and then no exchange succeeds at all. Either way every other
/// exchange is refused with `invalid_grant`, and no token from the code is left alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_is_exchanged_once_across_racing_instances() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let servers = [
        Arc::new(instance(&url, &prefix).await),
        Arc::new(instance(&url, &prefix).await),
    ];
    let issued = code(&servers[0]).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let server = servers[n % 2].clone();
            let barrier = barrier.clone();
            let body = exchange(&issued);
            tokio::spawn(async move {
                barrier.wait().await;
                token(&server, &body).await
            })
        })
        .collect();
    let mut issued_tokens = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == StatusCode::OK {
            issued_tokens.push(body);
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert!(issued_tokens.len() <= 1, "{issued_tokens:?}");
    for tokens in &issued_tokens {
        for name in ["access_token", "refresh_token"] {
            let token = tokens[name].as_str().unwrap();
            assert_eq!(
                introspect(&servers[1], token).await["active"],
                false,
                "{name}"
            );
        }
    }
    // The code itself is spent.
    let (status, body) = token(&servers[1], &exchange(&issued)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// The refresh store on its own: two stores, one family; a rotation racing a reuse on
/// another instance leaves no live token (the tombstone refuses the late insert).
#[tokio::test]
async fn refresh_families_are_shared_and_revocations_stick() {
    let Some(url) = url() else { return };
    let prefix = prefix();
    let ttl = Duration::from_secs(3600);
    let one = RefreshTokens::new(
        RedisRefreshStore::connect(&url, &prefix).await.unwrap(),
        ttl,
    );
    let two = RefreshTokens::new(
        RedisRefreshStore::connect(&url, &prefix).await.unwrap(),
        ttl,
    );
    let now = SystemTime::now();
    let first = one.issue("ada", now).await.unwrap();
    let second = two.rotate(&first.token, now).await.unwrap();
    assert_eq!(second.family, first.family);
    assert!(one.lookup(&first.token).await.unwrap().unwrap().used);
    assert!(matches!(
        one.rotate(&first.token, now).await,
        Err(Error::RefreshTokenReused)
    ));
    assert!(matches!(
        two.rotate(&second.token, now).await,
        Err(Error::RefreshTokenInvalid)
    ));
    // The family is tombstoned: nothing new joins it, from any instance.
    assert!(matches!(
        two.issue_in_family(&first.family, "ada", now).await,
        Err(Error::RefreshTokenInvalid)
    ));
    // Other families and logout.
    let other = one.issue("bob", now).await.unwrap();
    two.revoke(&other.token).await.unwrap();
    assert!(one.lookup(&other.token).await.unwrap().is_none());
    assert!(matches!(
        one.rotate("garbage", now).await,
        Err(Error::RefreshTokenInvalid)
    ));
}

/// Signing keys nobody configured: the first instance's key is stored in Redis and every
/// other instance gets the same, so tokens verify across instances.
#[tokio::test]
async fn signing_keys_are_shared_through_redis() {
    let Some(url) = url() else { return };
    let name = format!("{}jwt-keys", prefix());
    let make = || Key::generate_config("k1", Algorithm::EdDSA);
    let (a, b) = tokio::join!(
        shared_secret(&url, &name, make),
        shared_secret(&url, &name, make)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    let issuer = JwtIssuer::new(KeySet::from_config(&a).unwrap());
    let verifier = JwtVerifier::new(KeySet::from_config(&b).unwrap());
    let now = SystemTime::now();
    let jwt = issuer
        .issue(&Claims::new("alice", now, Duration::from_secs(60)))
        .unwrap();
    assert!(verifier.verify::<Claims>(&jwt, now).is_ok());
    // A later instance does not overwrite it.
    let later = shared_secret(&url, &name, make).await.unwrap();
    assert_eq!(later, a);
}

/// A `redis-server` of the test's own on a free port, writing every command to its
/// append-only file in a fresh directory.
struct OwnRedis {
    child: Child,
    port: u16,
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
        let server = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
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
    }
}

/// Redis goes away mid-flow: the token endpoint answers 503 `temporarily_unavailable` (no
/// tokens, no panic); Redis comes back from its append-only file: the code issued before
/// the outage is exchanged on the other instance, which reconnected by itself.
#[tokio::test]
async fn an_outage_is_a_503_and_the_flow_resumes_after_it() {
    if url().is_none() {
        return;
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("auth-core-redis-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let Some(mut server) = OwnRedis::start(port, &dir) else {
        return;
    };
    let one = instance(&server.url(), "outage:").await;
    let (two, two_refresh) = instance_and_refresh_store(&server.url(), "outage:").await;
    let issued = code(&one).await;

    server.kill();
    let (status, body) = token(&two, &exchange(&issued)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let store = RedisRefreshStore::connect(&server.url(), "x:").await;
    assert!(matches!(store, Err(Error::StoreUnavailable(_))));

    let _server = OwnRedis::start(port, &dir).unwrap();
    // Both stores reconnect by themselves (a command or two may still fail meanwhile).
    for _ in 0..50 {
        let grants = two.grants().grant("probe").await;
        let refresh = two_refresh.get(&[0; 32]).await;
        if grants.is_ok() && refresh.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = token(&two, &exchange(&issued)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let _ = std::fs::remove_dir_all(&dir);
}
