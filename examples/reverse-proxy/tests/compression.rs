#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Compression negotiation through the proxy, and forwarding headers seen by the origin.

mod common;

use bytes::Bytes;
use common::{client, serve_http1, start_proxy};
use http_body_util::{BodyExt as _, Full};
use tokio::io::AsyncReadExt as _;

const TEXT: &str = "The quick brown fox jumps over the lazy dog. ";

async fn text_origin() -> std::net::SocketAddr {
    serve_http1(|req, _| {
        let path = req.uri().path().to_owned();
        let echo = format!(
            "xff={:?} fwd={:?} via={:?} secret={:?}",
            req.headers().get("x-forwarded-for"),
            req.headers().get("forwarded"),
            req.headers().get("via"),
            req.headers().get("x-secret"),
        );
        let (body, ctype, cc) = match path.as_str() {
            "/big" => (TEXT.repeat(200), "text/plain", "public"),
            "/small" => ("tiny".to_owned(), "text/plain", "public"),
            "/png" => (TEXT.repeat(200), "image/png", "public"),
            "/nt" => (TEXT.repeat(200), "text/plain", "no-transform"),
            _ => (echo, "text/plain", "no-store"),
        };
        let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
        resp.headers_mut()
            .insert("content-type", ctype.parse().unwrap());
        resp.headers_mut()
            .insert("cache-control", cc.parse().unwrap());
        resp.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
        std::future::ready(resp)
    })
    .await
}

async fn fetch(url: &str, accept: &str, extra: &[(&str, &str)]) -> (hyper::HeaderMap, Bytes) {
    let mut req = hyper::Request::get(url);
    if !accept.is_empty() {
        req = req.header("accept-encoding", accept);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = client()
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let headers = resp.headers().clone();
    (
        headers,
        resp.into_body().collect().await.unwrap().to_bytes(),
    )
}

async fn decode(coding: &str, body: &[u8]) -> String {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    let mut out = String::new();
    match coding {
        "br" => BrotliDecoder::new(body)
            .read_to_string(&mut out)
            .await
            .unwrap(),
        "zstd" => ZstdDecoder::new(body)
            .read_to_string(&mut out)
            .await
            .unwrap(),
        "gzip" => GzipDecoder::new(body)
            .read_to_string(&mut out)
            .await
            .unwrap(),
        other => panic!("{other}"),
    };
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_and_streams_codings() {
    let origin = text_origin().await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
trusted_proxies = ["10.0.0.0/8"]

[compression]
min_length = 256

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]

[[routes]]
pool = "app"
"#
    ));
    let base = format!("http://{}", proxy.addr);
    for (accept, want) in [
        ("gzip, deflate, br, zstd", "br"),
        ("zstd, gzip", "zstd"),
        ("gzip", "gzip"),
        ("br;q=0.1, gzip;q=0.9", "gzip"),
    ] {
        let (headers, body) = fetch(&format!("{base}/big"), accept, &[]).await;
        assert_eq!(headers["content-encoding"], want, "{accept}");
        assert!(
            headers["vary"]
                .to_str()
                .unwrap()
                .contains("accept-encoding")
        );
        assert_eq!(headers["etag"], "W/\"v1\"");
        assert!(body.len() < TEXT.len() * 200 / 4);
        assert_eq!(decode(want, &body).await, TEXT.repeat(200));
    }
    for (path, accept) in [
        ("/big", ""),
        ("/big", "identity"),
        ("/small", "br"),
        ("/png", "br"),
        ("/nt", "br"),
    ] {
        let (headers, body) = fetch(&format!("{base}{path}"), accept, &[]).await;
        assert!(headers.get("content-encoding").is_none(), "{path} {accept}");
        assert!(!body.is_empty());
    }
    // Forwarding headers: an untrusted client's X-Forwarded-For is replaced, Connection-named
    // headers are dropped.
    let (_, body) = fetch(
        &format!("{base}/echo"),
        "",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
        ],
    )
    .await;
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("xff=Some(\"127.0.0.1\")"), "{body}");
    assert!(
        body.contains("fwd=Some(\"for=127.0.0.1;proto=http;host="),
        "{body}"
    );
    assert!(body.contains("via=Some(\"1.1 reverse-proxy\")"), "{body}");
    assert!(body.contains("secret=None"), "{body}");
}

/// `forwarding_headers` picks what the proxy writes; what it leaves out is still not passed
/// through from an untrusted client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_can_be_chosen() {
    let origin = text_origin().await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
forwarding_headers = ["X-Forwarded-For"]

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]

[[routes]]
pool = "app"
"#
    ));
    let (_, body) = fetch(
        &format!("http://{}/echo", proxy.addr),
        "",
        &[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")],
    )
    .await;
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("xff=Some(\"127.0.0.1\")"), "{body}");
    assert!(body.contains("fwd=None"), "{body}");
    assert!(body.contains("via=None"), "{body}");
}
