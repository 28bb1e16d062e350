#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Regression tests for the proxy findings of issue 14: each reproduces an attack against
//! the standalone proxy on loopback and asserts the refusal.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{serve_http1, start_proxy, start_recording_origin};
use http_body_util::{BodyExt as _, Full};
use proxy_core::{Framing, HeadLimits, check_request_head};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

type Handler = Arc<
    dyn Fn(&http::request::Parts, usize) -> hyper::Response<Full<Bytes>> + Send + Sync + 'static,
>;

/// An origin whose answer `handler` builds from the request head and the request number
/// (1, 2, ...); `delay` before each answer; it tracks the most requests in flight at once.
struct Origin {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

async fn origin(delay: Duration, handler: Handler) -> Origin {
    let requests = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let (r, f, m) = (requests.clone(), in_flight.clone(), max_in_flight.clone());
    let addr = serve_http1(move |req, _| {
        let (r, f, m, handler) = (r.clone(), f.clone(), m.clone(), handler.clone());
        async move {
            let n = r.fetch_add(1, Ordering::SeqCst) + 1;
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            let _ = body.collect().await;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            f.fetch_sub(1, Ordering::SeqCst);
            handler(&parts, n)
        }
    })
    .await;
    Origin {
        addr,
        requests,
        max_in_flight,
    }
}

fn response(headers: &[(&str, String)], body: String) -> hyper::Response<Full<Bytes>> {
    let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
    for (name, value) in headers {
        resp.headers_mut().append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(value).unwrap(),
        );
    }
    resp
}

fn cookie(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn config(origin: SocketAddr, extra_server: &str, route: &str, cache: bool) -> String {
    let cache_section = if cache {
        "[cache]\nmax_bytes = 1048576\n"
    } else {
        ""
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
{extra_server}

{cache_section}

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]
max_retries = 0

[[routes]]
pool = "app"
cache = {cache}
{route}
"#
    )
}

/// Sends raw bytes, reads until the peer closes or is quiet for 3 s.
async fn exchange(addr: SocketAddr, payload: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(payload).await;
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => break,
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn statuses(response: &str) -> Vec<u16> {
    response
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| response.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// One GET with the given extra header lines; returns (status, headers, body).
async fn get(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for (n, v) in extra {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let text = exchange(addr, req.as_bytes()).await;
    let status = statuses(&text).first().copied().unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

// --- 1: a refused upgrade leaves the raw-byte checks on ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_upgrade_keeps_smuggling_checks() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, "", "prefix = \"/app/\"", false));
    let smuggled = "POST /app/smuggled HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc";
    // The upgrade request is answered without a 101: no route (404), the metrics path (200).
    for first in ["/nowhere", "/__proxy/metrics"] {
        log.lock().unwrap().clear();
        let payload = format!(
            "GET {first} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n{smuggled}"
        );
        let response = exchange(proxy.addr, payload.as_bytes()).await;
        let got = statuses(&response);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let received = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
        assert!(
            !received.contains("smuggled"),
            "after an upgrade refused at {first}, the smuggling request reached the origin: {received:?}"
        );
        assert_eq!(got.get(1), Some(&400), "{first}: {response}");
    }
}

// --- 2: the shared cache never replays Set-Cookie ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_never_replays_one_users_set_cookie_to_another() {
    // The origin mints a session cookie for whoever asks, on pages that are cacheable for
    // a while (`/fresh`), stale at once but servable while revalidating (`/swr`), or usable
    // when the origin fails (`/sie`).
    let handler: Handler = Arc::new(|parts, n| {
        let who = cookie(parts);
        let cc = match parts.uri.path() {
            "/fresh" => "public, max-age=60",
            "/swr" => "max-age=0, stale-while-revalidate=60",
            _ => "max-age=0, stale-if-error=60",
        };
        if parts.uri.path() == "/sie" && who != "user-a" {
            return response(&[], String::new()).tap_status(500);
        }
        response(
            &[
                ("cache-control", cc.to_owned()),
                ("set-cookie", format!("session=minted-for-{who}; HttpOnly")),
            ],
            format!("page {n}"),
        )
    });
    let origin = origin(Duration::ZERO, handler).await;
    let proxy = start_proxy(&config(origin.addr, "", "", true));
    for path in ["/fresh", "/swr", "/sie"] {
        let (status, head, _) = get(proxy.addr, path, &[("Cookie", "user-a")]).await;
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.contains("minted-for-user-a"), "{path}: {head}");
        for user in ["user-b", "user-c"] {
            let (_, head, _) = get(proxy.addr, path, &[("Cookie", user)]).await;
            let others = ["user-a", "user-b"]
                .into_iter()
                .filter(|other| *other != user);
            for other in others {
                assert!(
                    !head.contains(&format!("minted-for-{other}")),
                    "{path}: {user} received {other}'s cookie: {head}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_304_merge_never_stores_set_cookie() {
    // Every answer mints a cookie for whoever asks; the first is stale at once, and the
    // revalidation's 304 makes the entry fresh for a minute.
    let handler: Handler = Arc::new(|parts, n| {
        let who = cookie(parts);
        let conditional = parts.headers.contains_key("if-none-match");
        let cc = if n == 1 {
            "public, max-age=0"
        } else {
            "public, max-age=60"
        };
        let r = response(
            &[
                ("cache-control", cc.to_owned()),
                ("etag", "\"v1\"".to_owned()),
                ("set-cookie", format!("session=minted-for-{who}")),
            ],
            if conditional {
                String::new()
            } else {
                "page".to_owned()
            },
        );
        if conditional { r.tap_status(304) } else { r }
    });
    let origin = origin(Duration::ZERO, handler).await;
    let proxy = start_proxy(&config(origin.addr, "", "", true));
    let (status, _, body) = get(proxy.addr, "/page", &[("Cookie", "user-a")]).await;
    assert_eq!((status, body.as_str()), (200, "page"));
    let (status, head, _) = get(proxy.addr, "/page", &[("Cookie", "user-b")]).await;
    assert_eq!(status, 200, "{head}");
    let (status, head, body) = get(proxy.addr, "/page", &[("Cookie", "user-c")]).await;
    assert_eq!((status, body.as_str()), (200, "page"), "{head}");
    assert!(
        !head.contains("minted-for-user-b"),
        "user-c received user-b's cookie from a 304 merge: {head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_does_not_share_authorized_responses() {
    // RFC 9111 section 3.5: without public, s-maxage or must-revalidate, a response to a
    // request with Authorization is not stored by a shared cache.
    let handler: Handler = Arc::new(|parts, _| {
        let auth = parts
            .headers
            .get("authorization")
            .map_or("anonymous".to_owned(), |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            });
        response(
            &[("cache-control", "max-age=60".to_owned())],
            format!("private page of {auth}"),
        )
    });
    let origin = origin(Duration::ZERO, handler).await;
    let proxy = start_proxy(&config(origin.addr, "", "", true));
    let (_, _, body) = get(proxy.addr, "/me", &[("Authorization", "Bearer alice")]).await;
    assert_eq!(body, "private page of Bearer alice");
    let (_, _, body) = get(proxy.addr, "/me", &[]).await;
    assert_eq!(body, "private page of anonymous");
}

// --- 12: huge max-age or Age ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_max_age_or_age_does_not_crash_the_proxy() {
    let handler: Handler = Arc::new(|parts, _| {
        let headers: Vec<(&str, String)> = match parts.uri.path() {
            "/max-age" => vec![(
                "cache-control",
                "max-age=18446744073709551615".to_owned(),
            )],
            "/s-maxage" => vec![(
                "cache-control",
                "public, s-maxage=99999999999999999999, stale-while-revalidate=18446744073709551615, stale-if-error=18446744073709551615".to_owned(),
            )],
            _ => vec![
                ("cache-control", "max-age=60".to_owned()),
                ("age", "18446744073709551615".to_owned()),
            ],
        };
        response(&headers, "ok".to_owned())
    });
    let origin = origin(Duration::ZERO, handler).await;
    let proxy = start_proxy(&config(origin.addr, "", "", true));
    for path in ["/max-age", "/s-maxage", "/age"] {
        for _ in 0..2 {
            let (status, head, body) = get(proxy.addr, path, &[]).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "{path}: {head}");
        }
    }
}

// --- 15: IPv6 clients are limited per /64; uncacheable URLs are not serialized ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_rate_limited_per_64() {
    let handler: Handler = Arc::new(|_, _| response(&[], "ok".to_owned()));
    let origin = origin(Duration::ZERO, handler).await;
    // The proxy trusts loopback as a front that appends the client to X-Forwarded-For.
    let proxy = start_proxy(&config(
        origin.addr,
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "[routes.rate_limit]\nrate = 1\nperiod_ms = 60000\nburst = 1\nkey = \"client\"",
        false,
    ));
    let (status, _, _) = get(proxy.addr, "/", &[("X-Forwarded-For", "2001:db8:1:2::1")]).await;
    assert_eq!(status, 200);
    // Another address of the same /64: the same bucket.
    let (status, _, _) = get(
        proxy.addr,
        "/",
        &[("X-Forwarded-For", "2001:db8:1:2:ffff:ffff:ffff:fffe")],
    )
    .await;
    assert_eq!(
        status, 429,
        "a /64 must not yield a fresh bucket per address"
    );
    // Another /64: its own bucket.
    let (status, _, _) = get(proxy.addr, "/", &[("X-Forwarded-For", "2001:db8:1:3::1")]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_url_requests_are_not_serialized() {
    let handler: Handler = Arc::new(|_, n| {
        response(
            &[("cache-control", "no-store".to_owned())],
            format!("answer {n}"),
        )
    });
    let origin = origin(Duration::from_millis(300), handler).await;
    let proxy = start_proxy(&config(origin.addr, "", "", true));
    // The first answer shows the URL is uncacheable.
    let (status, _, _) = get(proxy.addr, "/dynamic", &[]).await;
    assert_eq!(status, 200);
    let before = origin.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(before, 1);
    let addr = proxy.addr;
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(addr, "/dynamic", &[]).await.0 }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(origin.requests.load(Ordering::SeqCst), 5);
    assert!(
        origin.max_in_flight.load(Ordering::SeqCst) > 1,
        "requests for an uncacheable URL waited for each other"
    );
}

// --- 16, 17: canonical framing towards the origin ---

/// The requests the origin received: (head, body).
fn received_requests(mut bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head = check_request_head(bytes, &HeadLimits::default())
            .unwrap_or_else(|e| panic!("origin got a bad head ({e}): {bytes:?}"));
        let text = String::from_utf8_lossy(&bytes[..head.head_len]).to_ascii_lowercase();
        bytes = &bytes[head.head_len..];
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => {
                let (b, rest) = bytes.split_at(n as usize);
                bytes = rest;
                b.to_vec()
            }
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let lf = bytes.iter().position(|b| *b == b'\n').unwrap();
                    let size =
                        usize::from_str_radix(std::str::from_utf8(&bytes[..lf - 1]).unwrap(), 16)
                            .unwrap();
                    bytes = &bytes[lf + 1..];
                    if size == 0 {
                        assert!(bytes.starts_with(b"\r\n"), "trailers");
                        bytes = &bytes[2..];
                        break;
                    }
                    body.extend_from_slice(&bytes[..size]);
                    bytes = &bytes[size + 2..];
                }
                body
            }
        };
        out.push((text, body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_is_forwarded_in_canonical_form() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, "", "", false));
    let response = exchange(
        proxy.addr,
        b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0003\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(statuses(&response), [200], "{response}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let received = received_requests(&log.lock().unwrap());
    assert_eq!(received.len(), 1);
    let (head, body) = &received[0];
    assert!(head.contains("\r\ncontent-length: 3\r\n"), "{head}");
    assert_eq!(body, b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_forwarded_for_every_method() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, "", "", false));
    for method in ["GET", "HEAD", "DELETE", "OPTIONS", "POST"] {
        log.lock().unwrap().clear();
        let payload = format!(
            "{method} /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        let response = exchange(proxy.addr, payload.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{method}: {response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let received = received_requests(&log.lock().unwrap());
        assert_eq!(received.len(), 1, "{method}");
        assert_eq!(
            received[0].1, b"abc",
            "{method}: the body was dropped: {}",
            received[0].0
        );
    }
}

// --- 18: invalid Host values ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_host_values_are_refused() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&config(origin, "", "", false));
    for host in [
        &b"a\xc2b"[..],
        b"a b",
        b"a/b",
        b"u@a",
        b"a:b",
        b"[::1",
        b"a?b",
        b"a#b",
        b"a\\b",
        b"a,b",
    ] {
        let mut payload = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        payload.extend_from_slice(host);
        payload.extend_from_slice(b"\r\n\r\n");
        let response = exchange(proxy.addr, &payload).await;
        assert_eq!(
            statuses(&response),
            [400],
            "{}: {response}",
            String::from_utf8_lossy(host)
        );
    }
    for host in [
        "a",
        "a.example:8080",
        "[::1]:80",
        "127.0.0.1",
        "xn--bcher-kva.example",
        "",
    ] {
        let payload = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let response = exchange(proxy.addr, payload.as_bytes()).await;
        assert_eq!(statuses(&response), [200], "{host}: {response}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(received_requests(&log.lock().unwrap()).len(), 6);
}

trait TapStatus {
    fn tap_status(self, status: u16) -> Self;
}

impl TapStatus for hyper::Response<Full<Bytes>> {
    fn tap_status(mut self, status: u16) -> Self {
        *self.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        self
    }
}
