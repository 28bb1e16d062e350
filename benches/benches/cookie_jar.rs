//! cookie-jar against its peers, same run:
//! - client: the `Cookie` header for one URL from a store of 3000 cookies over 300 domains,
//!   `cookie_jar::CookieStore` vs `cookie_store` 0.22;
//! - server: parsing a 40-cookie `Cookie` header, `cookie_jar::RequestCookies` vs the
//!   `cookie` crate's `Cookie::split_parse`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use time::OffsetDateTime;
use url::Url;

/// 300 sites, each: 5 domain cookies (`Domain=siteN.com`), 5 host-only cookies on
/// `www.siteN.com`, over the paths `/` and `/a`.
fn set_cookie_lines() -> Vec<(Url, Vec<String>)> {
    (0..300)
        .map(|d| {
            let url = Url::parse(&format!("https://www.site{d}.com/a/index.html")).unwrap();
            let lines = (0..10)
                .map(|i| {
                    let path = if i % 2 == 0 { "/" } else { "/a" };
                    let domain = if i < 5 {
                        format!("; Domain=site{d}.com")
                    } else {
                        String::new()
                    };
                    format!("c{i}=value{i}-{d}; Path={path}{domain}; Max-Age=86400")
                })
                .collect();
            (url, lines)
        })
        .collect()
}

fn client(c: &mut Criterion) {
    let sites = set_cookie_lines();
    let now = OffsetDateTime::now_utc();
    let ctx = cookie_jar::RequestContext::same_site();
    let mut ours = cookie_jar::CookieStore::new();
    let mut peer = cookie_store::CookieStore::default();
    for (url, lines) in &sites {
        ours.store(url, lines, &ctx, now);
        for l in lines {
            peer.parse(l, url).unwrap();
        }
    }
    assert_eq!(ours.len(), 3000);
    let target = Url::parse("https://www.site150.com/a/page").unwrap();
    let ours_header = ours.cookie_header(&target, &ctx, now).unwrap();
    let peer_pairs = peer.get_request_values(&target).count();
    assert_eq!(
        ours_header.to_str().unwrap().split("; ").count(),
        peer_pairs
    );
    assert_eq!(peer_pairs, 10);

    let mut g = c.benchmark_group("cookie_jar/client_cookie_header_3000_cookies_300_domains");
    g.bench_function("cookie-jar", |b| {
        b.iter(|| black_box(ours.cookie_header(black_box(&target), &ctx, now)))
    });
    g.bench_function("cookie_store-0.22", |b| {
        b.iter(|| {
            let mut s = String::new();
            for (i, (n, v)) in peer.get_request_values(black_box(&target)).enumerate() {
                if i > 0 {
                    s.push_str("; ");
                }
                s.push_str(n);
                s.push('=');
                s.push_str(v);
            }
            black_box(HeaderValue::from_str(&s).ok())
        })
    });
    g.finish();
}

fn server(c: &mut Criterion) {
    let header: String = (0..40)
        .map(|i| format!("cookie{i}=v{i}abcdefghij{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let value = HeaderValue::from_str(&header).unwrap();
    let mut g = c.benchmark_group("cookie_jar/server_parse_40_cookies");
    g.bench_function("cookie-jar", |b| {
        b.iter(|| {
            let cookies = cookie_jar::RequestCookies::parse(black_box(value.as_bytes()));
            black_box(cookies.get("cookie39").map(str::len))
        })
    });
    g.bench_function("cookie-0.18-split_parse", |b| {
        b.iter(|| {
            let s = black_box(&value).to_str().unwrap();
            let cookies: Vec<_> = cookie::Cookie::split_parse(s)
                .filter_map(Result::ok)
                .collect();
            black_box(
                cookies
                    .iter()
                    .find(|c| c.name() == "cookie39")
                    .map(|c| c.value().len()),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, client, server);
criterion_main!(benches);
