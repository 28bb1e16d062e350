//! Client store through the public API: prefixes, SameSite, public suffixes, limits,
//! eviction, persistence, hostile input.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use cookie_jar::{CookieStore, Mode, RequestContext};
use http::Method;
use time::{Duration, OffsetDateTime};
use url::Url;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn header(store: &CookieStore, url: &str, ctx: &RequestContext) -> Option<String> {
    store
        .cookie_header(&u(url), ctx, now())
        .map(|h| h.to_str().unwrap().to_owned())
}

fn set(store: &mut CookieStore, url: &str, lines: &[&str]) -> usize {
    store.store(&u(url), lines, &RequestContext::same_site(), now())
}

#[test]
fn prefixes() {
    let mut s = CookieStore::new();
    let https = "https://a.example.com/x/y";
    assert_eq!(set(&mut s, https, &["__Secure-a=1"]), 0);
    assert_eq!(set(&mut s, https, &["__Secure-b=1; Secure"]), 1);
    assert_eq!(
        set(&mut s, https, &["__Host-c=1; Secure"]),
        0,
        "default path /x is not /"
    );
    assert_eq!(set(&mut s, https, &["__Host-d=1; Secure; Path=/"]), 1);
    assert_eq!(
        set(
            &mut s,
            https,
            &["__Host-e=1; Secure; Path=/; Domain=example.com"]
        ),
        0
    );
    assert_eq!(
        set(&mut s, https, &["__host-f=1; Path=/"]),
        0,
        "prefixes match case-insensitively"
    );
    assert_eq!(
        set(&mut s, https, &["__Host-x"]),
        0,
        "nameless value mimicking a prefix"
    );
    assert_eq!(
        set(&mut s, "http://a.example.com/", &["__Secure-g=1; Secure"]),
        0
    );
    assert_eq!(
        header(
            &s,
            "https://a.example.com/x/z",
            &RequestContext::same_site()
        )
        .unwrap(),
        "__Secure-b=1; __Host-d=1"
    );
}

#[test]
fn secure_cookies_and_loopback() {
    let mut s = CookieStore::new();
    assert_eq!(
        set(&mut s, "http://example.com/", &["s=1; Secure"]),
        0,
        "6265bis: no Secure from http"
    );
    assert_eq!(
        set(&mut s, "https://example.com/", &["s=1; Secure; Path=/"]),
        1
    );
    assert_eq!(
        set(&mut s, "http://example.com/", &["s=2; Path=/"]),
        0,
        "may not shadow a secure cookie"
    );
    assert_eq!(
        header(&s, "http://example.com/", &RequestContext::same_site()),
        None
    );
    assert_eq!(
        header(&s, "https://example.com/", &RequestContext::same_site()).unwrap(),
        "s=1"
    );
    assert_eq!(
        set(&mut s, "http://127.0.0.1:3000/", &["l=1; Secure"]),
        1,
        "loopback is secure"
    );
    assert_eq!(
        header(&s, "http://127.0.0.1:3000/", &RequestContext::same_site()).unwrap(),
        "l=1"
    );
    assert_eq!(set(&mut s, "http://localhost/", &["h=1; Secure"]), 1);
    let mut old = CookieStore::with_mode(Mode::Rfc6265);
    assert_eq!(
        set(&mut old, "http://example.com/", &["s=1; Secure"]),
        1,
        "RFC 6265 stores it"
    );
    assert_eq!(
        header(&old, "http://example.com/", &RequestContext::same_site()),
        None
    );
}

#[test]
fn same_site_decisions() {
    let mut s = CookieStore::new();
    set(
        &mut s,
        "https://site.example/",
        &[
            "strict=1; SameSite=Strict",
            "lax=2; SameSite=Lax",
            "dflt=3",
            "none=4; SameSite=None; Secure",
        ],
    );
    assert_eq!(s.len(), 4);
    let same = RequestContext::same_site();
    assert_eq!(
        header(&s, "https://site.example/", &same).unwrap(),
        "strict=1; lax=2; dflt=3; none=4"
    );
    let nav = RequestContext::cross_site().top_level_navigation(true);
    assert_eq!(
        header(&s, "https://site.example/", &nav).unwrap(),
        "lax=2; dflt=3; none=4"
    );
    let post = nav.clone().method(Method::POST);
    assert_eq!(
        header(&s, "https://site.example/", &post).unwrap(),
        "none=4"
    );
    assert_eq!(
        header(&s, "https://site.example/", &RequestContext::cross_site()).unwrap(),
        "none=4"
    );
    // Setting: SameSite=None needs Secure; non-None cookies are not set from cross-site subresources.
    assert_eq!(
        set(&mut s, "https://site.example/", &["n2=1; SameSite=None"]),
        0
    );
    let n = s.store(
        &u("https://site.example/"),
        ["x=1; SameSite=Lax", "y=1; SameSite=None; Secure"],
        &RequestContext::cross_site(),
        now(),
    );
    assert_eq!(n, 1);
}

#[test]
fn public_suffixes_and_domains() {
    let mut s = CookieStore::new();
    assert_eq!(
        set(&mut s, "https://www.example.co.uk/", &["a=1; Domain=co.uk"]),
        0
    );
    assert_eq!(
        set(&mut s, "https://www.example.org/", &["b=1; Domain=.org"]),
        0
    );
    assert_eq!(
        set(
            &mut s,
            "https://www.example.org/",
            &["c=1; Domain=other.org"]
        ),
        0
    );
    assert_eq!(
        set(
            &mut s,
            "https://www.example.org/",
            &["d=1; Domain=.Example.ORG"]
        ),
        1
    );
    assert_eq!(set(&mut s, "https://www.example.org/", &["e=1"]), 1);
    let ctx = RequestContext::same_site();
    assert_eq!(header(&s, "https://api.example.org/", &ctx).unwrap(), "d=1");
    assert_eq!(
        header(&s, "https://www.example.org/", &ctx).unwrap(),
        "d=1; e=1"
    );
    assert_eq!(header(&s, "https://example.org/", &ctx).unwrap(), "d=1");
    assert_eq!(header(&s, "https://notexample.org/", &ctx), None);
}

/// Issue 14, finding 13: a suffix missing from the public-suffix list (`corp`) was taken
/// as a registrable domain, so `evil.corp` could set a cookie for every `*.corp` host.
/// Unlisted suffixes are public (the list's implicit `*` rule), as in browsers.
#[test]
fn unlisted_suffixes_are_public() {
    let mut s = CookieStore::new();
    assert_eq!(
        set(&mut s, "https://evil.corp/", &["stolen=1; Domain=corp"]),
        0
    );
    assert_eq!(
        set(&mut s, "https://evil.corp/", &["stolen=2; Domain=.corp"]),
        0
    );
    let ctx = RequestContext::same_site();
    assert_eq!(header(&s, "https://payroll.corp/", &ctx), None);
    // A host that is itself the suffix may still set a host-only cookie with Domain=itself.
    assert_eq!(set(&mut s, "https://corp/", &["own=1; Domain=corp"]), 1);
    assert_eq!(header(&s, "https://corp/", &ctx).unwrap(), "own=1");
    assert_eq!(header(&s, "https://payroll.corp/", &ctx), None);
    // The domain below the suffix works as before.
    assert_eq!(
        set(
            &mut s,
            "https://www.evil.corp/",
            &["ok=1; Domain=evil.corp"]
        ),
        1
    );
    assert_eq!(header(&s, "https://api.evil.corp/", &ctx).unwrap(), "ok=1");
}

#[test]
fn expiry_max_age_over_expires_and_400_day_cap() {
    let mut s = CookieStore::new();
    set(
        &mut s,
        "https://e.example/",
        &[
            "a=1; Max-Age=60; Expires=Wed, 01 Jan 2003 00:00:00 GMT",
            "b=1; Expires=Wed, 01 Jan 2003 00:00:00 GMT",
            "c=1; Max-Age=99999999999",
        ],
    );
    assert_eq!(s.len(), 2);
    let ctx = RequestContext::same_site();
    let a = s.iter().find(|c| c.name() == "a").unwrap();
    assert_eq!(a.expires(), Some(now() + Duration::seconds(60)));
    let c = s.iter().find(|c| c.name() == "c").unwrap();
    assert_eq!(c.expires(), Some(now() + Duration::days(400)));
    let later = now() + Duration::seconds(61);
    assert_eq!(
        s.cookie_header(&u("https://e.example/"), &ctx, later)
            .unwrap(),
        "c=1"
    );
    set(&mut s, "https://e.example/", &["c=gone; Max-Age=0"]);
    assert_eq!(s.iter().map(|c| c.name()).collect::<Vec<_>>(), ["a"]);
}

#[test]
fn ordering_longer_path_first_then_creation() {
    let mut s = CookieStore::new();
    let t = now();
    let ctx = RequestContext::same_site();
    s.store(&u("https://o.example/"), ["z=1; Path=/"], &ctx, t);
    s.store(
        &u("https://o.example/"),
        ["a=2; Path=/"],
        &ctx,
        t + Duration::seconds(1),
    );
    s.store(
        &u("https://o.example/"),
        ["deep=3; Path=/a/b"],
        &ctx,
        t + Duration::seconds(2),
    );
    s.store(
        &u("https://o.example/"),
        ["mid=4; Path=/a"],
        &ctx,
        t + Duration::seconds(3),
    );
    let h = s
        .cookie_header(
            &u("https://o.example/a/b/c"),
            &ctx,
            t + Duration::seconds(4),
        )
        .unwrap();
    assert_eq!(h, "deep=3; mid=4; z=1; a=2");
    // Replacing keeps the creation time, hence the position.
    s.store(
        &u("https://o.example/"),
        ["z=9; Path=/"],
        &ctx,
        t + Duration::seconds(5),
    );
    let h = s
        .cookie_header(
            &u("https://o.example/a/b/c"),
            &ctx,
            t + Duration::seconds(6),
        )
        .unwrap();
    assert_eq!(h, "deep=3; mid=4; z=9; a=2");
}

#[test]
fn http_only_hidden_from_non_http_apis() {
    let mut s = CookieStore::new();
    set(&mut s, "https://h.example/", &["sid=1; HttpOnly", "ui=2"]);
    let script = RequestContext::same_site().non_http();
    assert_eq!(header(&s, "https://h.example/", &script).unwrap(), "ui=2");
    let n = s.store(
        &u("https://h.example/"),
        ["sid=evil", "x=1; HttpOnly"],
        &script,
        now(),
    );
    assert_eq!(
        n, 0,
        "script may neither overwrite an HttpOnly cookie nor set one"
    );
    assert_eq!(
        header(&s, "https://h.example/", &RequestContext::same_site()).unwrap(),
        "sid=1; ui=2"
    );
}

#[test]
fn per_domain_limit_evicts_least_recently_used_insecure_first() {
    let mut s = CookieStore::new();
    let ctx = RequestContext::same_site();
    let mut t = now();
    s.store(&u("https://l.example/"), ["keep=1; Secure"], &ctx, t);
    for i in 0..60 {
        t += Duration::seconds(1);
        s.store(&u("https://l.example/"), [format!("c{i}=1")], &ctx, t);
        if i == 0 {
            // Touch c0 so it is recently used.
            t += Duration::seconds(1);
            let _ = s.cookie_header(&u("https://l.example/"), &ctx, t);
        }
    }
    assert_eq!(s.len(), 50);
    let names: Vec<_> = s.iter().map(|c| c.name().to_owned()).collect();
    assert!(
        names.contains(&"keep".to_owned()),
        "secure cookie outlives insecure ones"
    );
    assert!(
        !names.contains(&"c1".to_owned()),
        "least recently used is evicted first"
    );
    assert!(names.contains(&"c59".to_owned()));
}

#[test]
fn total_limit_is_at_least_3000() {
    let mut s = CookieStore::new();
    let ctx = RequestContext::same_site();
    for d in 0..70 {
        let url = u(&format!("https://d{d}.example/"));
        s.store(
            &url,
            (0..50).map(|i| format!("c{i}=v")),
            &ctx,
            now() + Duration::seconds(d),
        );
    }
    assert_eq!(s.len(), 3000);
    // The least recently used (the first ten domains) went first.
    let ctx = RequestContext::same_site();
    assert_eq!(header(&s, "https://d0.example/", &ctx), None);
    assert_eq!(header(&s, "https://d9.example/", &ctx), None);
    assert_eq!(
        header(&s, "https://d10.example/", &ctx)
            .unwrap()
            .split("; ")
            .count(),
        50
    );
    // Limits below the RFC floors are raised to them.
    let mut floor = CookieStore::new().limits(cookie_jar::Limits {
        per_domain: 1,
        total: 1,
    });
    floor.store(
        &u("https://f.example/"),
        (0..60).map(|i| format!("c{i}=v")),
        &ctx,
        now(),
    );
    assert_eq!(floor.len(), 50);
}

#[test]
fn nameless_cookies_by_mode() {
    let mut bis = CookieStore::new();
    set(&mut bis, "https://n.example/", &["token"]);
    assert_eq!(
        header(&bis, "https://n.example/", &RequestContext::same_site()).unwrap(),
        "token"
    );
    let mut old = CookieStore::with_mode(Mode::Rfc6265);
    set(&mut old, "https://n.example/", &["token"]);
    assert!(old.is_empty());
}

#[test]
fn persistence_keeps_or_drops_session_cookies() {
    let mut s = CookieStore::new();
    set(
        &mut s,
        "https://p.example/",
        &[
            "session=1",
            "persistent=2; Max-Age=3600",
            "gone=3; Max-Age=10",
        ],
    );
    let later = now() + Duration::seconds(20);
    let all = s.to_json(true, later).unwrap();
    let persistent = s.to_json(false, later).unwrap();
    let a = CookieStore::from_json(&all, later).unwrap();
    let b = CookieStore::from_json(&persistent, later).unwrap();
    let ctx = RequestContext::same_site();
    assert_eq!(
        a.cookie_header(&u("https://p.example/"), &ctx, later)
            .unwrap(),
        "session=1; persistent=2"
    );
    assert_eq!(
        b.cookie_header(&u("https://p.example/"), &ctx, later)
            .unwrap(),
        "persistent=2"
    );
    assert!(CookieStore::from_json("{not json", later).is_err());
    // A hand-edited entry with a control character is dropped, the rest still works.
    let edited = all.replacen("\"value\":\"1\"", "\"value\":\"1\\n\"", 1);
    assert_ne!(edited, all);
    let e = CookieStore::from_json(&edited, later).unwrap();
    assert_eq!(
        e.cookie_header(&u("https://p.example/"), &ctx, later)
            .unwrap(),
        "persistent=2"
    );
    // Loading an hour later drops what expired in between.
    let c = CookieStore::from_json(&all, now() + Duration::hours(2)).unwrap();
    assert_eq!(c.len(), 1);
}

#[test]
fn hostile_set_cookie_input_is_bounded() {
    let mut s = CookieStore::new();
    let t = Instant::now();
    let mega = format!("big={}", "x".repeat(1 << 20));
    assert_eq!(
        set(&mut s, "https://b.example/", &[&mega]),
        0,
        "over 4096 bytes: ignored"
    );
    let many: String = (0..10_000)
        .map(|i| format!("a{i}=1"))
        .collect::<Vec<_>>()
        .join("; ");
    assert_eq!(
        set(&mut s, "https://b.example/", &[&many]),
        1,
        "one cookie, the rest are attributes"
    );
    let n = s.store(
        &u("https://b.example/"),
        [&b"ok=\xff\xfe"[..], b"c=1\x00x", b"fine=1"],
        &RequestContext::same_site(),
        now(),
    );
    assert_eq!(n, 1, "non-UTF-8 and control bytes are ignored");
    let long_attr = format!("p=1; Path=/{}", "a".repeat(2000));
    assert_eq!(set(&mut s, "https://b.example/", &[&long_attr]), 1);
    assert_eq!(
        s.iter().find(|c| c.name() == "p").unwrap().path(),
        "/",
        "over-long attribute ignored"
    );
    assert!(t.elapsed().as_secs() < 2);
}

fn sent(store: &CookieStore, url: &Url, ctx: &RequestContext) -> Option<String> {
    store
        .cookie_header(url, ctx, now())
        .map(|h| h.to_str().unwrap().to_owned())
}

/// CHIPS: a `Partitioned` cookie is keyed by the top-level site it was set under and is sent
/// only to requests made under that site.
#[test]
fn partitioned_cookies_are_keyed_by_top_level_site() {
    let mut s = CookieStore::new();
    let widget = u("https://chat.widget.example/frame");
    let embedded_in = |top: &str| RequestContext::cross_site().top_level_site(&u(top));
    let under_shop = embedded_in("https://www.shop.example/checkout");
    let under_news = embedded_in("https://news.example/today");
    // Partitioned requires Secure.
    assert_eq!(
        s.store(
            &widget,
            ["p=1; SameSite=None; Partitioned"],
            &under_shop,
            now()
        ),
        0
    );
    assert_eq!(
        s.store(
            &widget,
            ["__Host-p=shop; Secure; Path=/; SameSite=None; Partitioned"],
            &under_shop,
            now()
        ),
        1
    );
    // The same name under another top-level site is another cookie, not a replacement.
    assert_eq!(
        s.store(
            &widget,
            ["__Host-p=news; Secure; Path=/; SameSite=None; Partitioned"],
            &under_news,
            now()
        ),
        1
    );
    assert_eq!(s.len(), 2);
    let keys: Vec<_> = s.iter().filter_map(|c| c.partition_key()).collect();
    assert!(keys.contains(&"https://shop.example"), "{keys:?}");
    assert!(keys.contains(&"https://news.example"), "{keys:?}");
    assert_eq!(
        sent(&s, &widget, &under_shop).as_deref(),
        Some("__Host-p=shop")
    );
    // Another host of the same top-level site shares the partition.
    assert_eq!(
        sent(&s, &widget, &embedded_in("https://shop.example/")).as_deref(),
        Some("__Host-p=shop")
    );
    assert_eq!(
        sent(&s, &widget, &under_news).as_deref(),
        Some("__Host-p=news")
    );
    // Neither is sent under a third site, nor to the widget as a top-level page, nor under
    // the same registrable domain over http (sites are schemeful).
    assert_eq!(
        sent(&s, &widget, &embedded_in("https://other.example/")),
        None
    );
    assert_eq!(sent(&s, &widget, &RequestContext::same_site()), None);
    assert_eq!(
        sent(&s, &widget, &embedded_in("http://www.shop.example/")),
        None
    );
    // An unpartitioned cookie of the widget is sent everywhere SameSite allows.
    assert_eq!(
        s.store(
            &widget,
            ["u=1; Secure; Path=/; SameSite=None"],
            &under_shop,
            now()
        ),
        1
    );
    assert_eq!(
        sent(&s, &widget, &embedded_in("https://other.example/")).as_deref(),
        Some("u=1")
    );
    assert_eq!(
        sent(&s, &widget, &under_news).as_deref(),
        Some("__Host-p=news; u=1")
    );
    // Deleting in one partition leaves the other.
    assert_eq!(
        s.store(
            &widget,
            ["__Host-p=; Secure; Path=/; SameSite=None; Partitioned; Max-Age=0"],
            &under_news,
            now()
        ),
        1
    );
    assert_eq!(sent(&s, &widget, &under_news).as_deref(), Some("u=1"));
    assert_eq!(
        sent(&s, &widget, &under_shop).as_deref(),
        Some("__Host-p=shop; u=1")
    );
    // A top-level response sets a cookie partitioned by its own site.
    let top = u("https://chat.widget.example/");
    assert_eq!(
        s.store(
            &top,
            ["first=1; Secure; Partitioned"],
            &RequestContext::same_site(),
            now()
        ),
        1
    );
    assert!(
        s.iter()
            .any(|c| c.partition_key() == Some("https://widget.example"))
    );
    assert_eq!(
        s.cookie_header(&top, &RequestContext::same_site(), now())
            .map(|h| h.to_str().unwrap().to_owned())
            .as_deref(),
        Some("u=1; first=1")
    );
    // Partitions survive persistence.
    let json = s.to_json(true, now()).unwrap();
    let back = CookieStore::from_json(&json, now()).unwrap();
    assert_eq!(
        back.cookie_header(&widget, &under_shop, now())
            .map(|h| h.to_str().unwrap().to_owned())
            .as_deref(),
        Some("__Host-p=shop; u=1")
    );
    assert_eq!(
        back.cookie_header(&widget, &embedded_in("https://other.example/"), now())
            .map(|h| h.to_str().unwrap().to_owned())
            .as_deref(),
        Some("u=1")
    );
}

/// RFC 6265 mode predates CHIPS: the attribute is ignored and the cookie is shared.
#[test]
fn rfc6265_mode_ignores_partitioned() {
    let mut s = CookieStore::with_mode(Mode::Rfc6265);
    let url = u("https://chat.widget.example/");
    let ctx = RequestContext::cross_site().top_level_site(&u("https://shop.example/"));
    assert_eq!(s.store(&url, ["p=1; Secure; Partitioned"], &ctx, now()), 1);
    assert_eq!(s.iter().next().and_then(|c| c.partition_key()), None);
    assert_eq!(
        s.cookie_header(&url, &RequestContext::same_site(), now())
            .map(|h| h.to_str().unwrap().to_owned())
            .as_deref(),
        Some("p=1")
    );
}
