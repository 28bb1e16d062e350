//! Server side through the public API: key rotation, tampering, delta jar, bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use cookie_jar::{DeltaJar, Error, Key, KeyRing, RequestCookies, SetCookie};
use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};

fn request(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(COOKIE, HeaderValue::from_str(cookie).unwrap());
    h
}

#[test]
fn public_types_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<RequestCookies>();
    check::<SetCookie>();
    check::<KeyRing>();
    check::<DeltaJar>();
    check::<Error>();
    #[cfg(feature = "client")]
    {
        check::<cookie_jar::CookieStore>();
        check::<cookie_jar::RequestContext>();
        check::<cookie_jar::StoredCookie>();
    }
    #[cfg(feature = "tower")]
    {
        check::<cookie_jar::Cookies>();
        check::<cookie_jar::CookieLayer>();
        check::<cookie_jar::CookieService<()>>();
    }
}

#[test]
fn key_rotation_keeps_old_cookies_valid() {
    let (k1, k2, k3) = (Key::generate(), Key::generate(), Key::generate());
    let v1 = KeyRing::new(k1.clone());
    let signed = v1.sign(SetCookie::build("uid", "7").finish().unwrap());
    let sealed = v1.seal(SetCookie::build("sess", "secret").finish().unwrap());
    assert!(!sealed.value().contains("secret"));

    let v2 = KeyRing::new(k2.clone()).with_old_key(k1.clone());
    assert_eq!(v2.verify("uid", signed.value()).as_deref(), Some("7"));
    assert_eq!(v2.open("sess", sealed.value()).as_deref(), Some("secret"));
    assert!(v2.needs_reissue("uid", signed.value()));
    let fresh = v2.sign(SetCookie::build("uid", "7").finish().unwrap());
    assert!(!v2.needs_reissue("uid", fresh.value()));

    // k1 retired: old cookies read as absent, new ones still work.
    let v3 = KeyRing::new(k3).with_old_key(k2);
    assert_eq!(v3.verify("uid", signed.value()), None);
    assert_eq!(v3.open("sess", sealed.value()), None);
    assert_eq!(v3.verify("uid", fresh.value()).as_deref(), Some("7"));
}

#[test]
fn tampered_and_foreign_cookies_read_as_absent() {
    let ring = KeyRing::new(Key::generate());
    let signed = ring.sign(SetCookie::build("uid", "7").finish().unwrap());
    let sealed = ring.seal(SetCookie::build("sess", "x").finish().unwrap());
    let foreign = KeyRing::new(Key::generate());
    assert_eq!(foreign.verify("uid", signed.value()), None);
    assert_eq!(foreign.open("sess", sealed.value()), None);
    let forged = format!("{}8", signed.value().strip_suffix('7').unwrap());
    assert_ne!(forged, signed.value());
    assert_eq!(ring.verify("uid", &forged), None);
    // A private value moved to another name does not open (the name is bound in).
    assert_eq!(ring.open("other", sealed.value()), None);
    for junk in ["", "x", "====", "\u{1F600}", &"A".repeat(100_000)] {
        assert_eq!(ring.verify("uid", junk), None);
        assert_eq!(ring.open("sess", junk), None);
    }
    let mut v = sealed.value().to_owned();
    v.truncate(v.len() - 2);
    assert_eq!(ring.open("sess", &v), None);
}

#[test]
fn short_keys_are_errors_not_panics() {
    assert!(matches!(
        KeyRing::from_bytes(&[0u8; 10]),
        Err(Error::KeyTooShort(10))
    ));
    assert!(KeyRing::from_bytes(&[7u8; 64]).is_ok());
}

/// Two instances configured with the same text read each other's cookies; one that made its
/// own key does not; bad configuration is an error that never quotes the key.
#[test]
fn configured_rings_are_shared_between_instances() {
    let configured = KeyRing::generate_config();
    let one = KeyRing::from_config(&configured).unwrap();
    let two = KeyRing::from_config(&format!("  {configured}\n")).unwrap();
    let signed = one.sign(SetCookie::build("theme", "dark").finish().unwrap());
    assert_eq!(two.verify("theme", signed.value()).as_deref(), Some("dark"));
    let stranger = KeyRing::from_config(&KeyRing::generate_config()).unwrap();
    assert_eq!(stranger.verify("theme", signed.value()), None);
    // URL-safe alphabet without padding reads the same key.
    let url_safe = configured
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let three = KeyRing::from_config(&url_safe).unwrap();
    assert_eq!(
        three.verify("theme", signed.value()).as_deref(),
        Some("dark")
    );

    assert!(matches!(
        KeyRing::from_config(" , "),
        Err(Error::KeyConfig(_))
    ));
    let garbage = KeyRing::from_config(&format!("{configured},not*base64")).unwrap_err();
    assert!(matches!(garbage, Error::KeyConfig(ref text) if text.contains("key 2")));
    assert!(!garbage.to_string().contains(&configured));
    assert!(matches!(
        KeyRing::from_config("AAAA"),
        Err(Error::KeyTooShort(3))
    ));
}

#[test]
fn delta_jar_emits_additions_and_removals_with_their_path_and_domain() {
    let mut jar = DeltaJar::from_headers(&request("a=1; scoped=2; b=3"));
    jar.add(SetCookie::build("c", "4").finish().unwrap());
    jar.remove("a").unwrap();
    jar.remove_with("scoped", Some("/admin"), Some("example.com"))
        .unwrap();
    jar.add(SetCookie::build("c", "5").finish().unwrap()); // replaces the first c
    assert_eq!(jar.get("a"), None);
    assert_eq!(jar.get("b"), Some("3"));
    assert_eq!(jar.get("c"), Some("5"));
    let mut resp = HeaderMap::new();
    jar.write_to(&mut resp);
    let lines: Vec<_> = resp
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let scoped = lines.iter().find(|l| l.starts_with("scoped=")).unwrap();
    assert!(
        scoped.contains("Path=/admin") && scoped.contains("Domain=example.com"),
        "{scoped}"
    );
    assert!(
        scoped.contains("Max-Age=0") && scoped.contains("Expires=Thu, 01 Jan 1970"),
        "{scoped}"
    );
    assert!(lines.iter().any(|l| l.starts_with("c=5")));
}

#[test]
fn signed_cookie_round_trip_through_delta_jar() {
    let ring = KeyRing::new(Key::generate());
    let mut jar = DeltaJar::default();
    jar.add_signed(SetCookie::build("uid", "42").finish().unwrap(), &ring);
    jar.add_private(SetCookie::build("p", "hidden").finish().unwrap(), &ring);
    let mut resp = HeaderMap::new();
    jar.write_to(&mut resp);
    let pairs: Vec<String> = resp
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let next = DeltaJar::from_headers(&request(&pairs.join("; ")));
    assert_eq!(next.get_signed("uid", &ring).as_deref(), Some("42"));
    assert_eq!(next.get_private("p", &ring).as_deref(), Some("hidden"));
    assert_eq!(next.get_signed("p", &ring), None);
}

#[test]
fn ten_thousand_cookies_in_one_header_are_bounded() {
    let header: String = (0..10_000)
        .map(|i| format!("c{i}=v{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let t = Instant::now();
    let c = RequestCookies::from_headers(&request(&header));
    assert_eq!(c.len(), cookie_jar::MAX_REQUEST_COOKIES);
    assert!(c.truncated());
    assert_eq!(c.get("c0"), Some("v0"));
    assert_eq!(c.get("c9999"), None);
    assert!(t.elapsed().as_millis() < 500);
}

#[test]
fn megabyte_header_is_cut_at_the_byte_bound() {
    let header = format!("big={}; after=1", "x".repeat(1 << 20));
    let c = RequestCookies::from_headers(&request(&header));
    assert!(c.truncated());
    assert_eq!(c.get("after"), None);
    assert_eq!(
        c.get("big").map(str::len),
        Some(cookie_jar::MAX_REQUEST_COOKIE_BYTES - 4)
    );
}

#[test]
fn non_utf8_bytes_skip_only_their_pair() {
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_bytes(b"a=\xc3\x28; b=ok; \xff=1").unwrap(),
    );
    let c = RequestCookies::from_headers(&h);
    assert_eq!(c.iter().collect::<Vec<_>>(), [("b", "ok")]);
}

#[test]
fn several_cookie_headers_are_read() {
    let mut h = request("a=1");
    h.append(COOKIE, HeaderValue::from_static("b=2"));
    let c = RequestCookies::from_headers(&h);
    assert_eq!((c.get("a"), c.get("b")), (Some("1"), Some("2")));
}

/// Issue 14, finding 14: the `cookie` crate's signed format MACs the value alone, so a value
/// signed for `theme` verified as `role`. Signed values now bind the name; private values
/// were already bound (the name is AES-GCM's associated data), checked here too.
#[test]
fn signed_and_private_values_are_bound_to_their_name() {
    let ring = KeyRing::new(Key::generate());
    let theme = ring.sign(SetCookie::build("theme", "admin").finish().unwrap());
    assert_eq!(
        ring.verify("theme", theme.value()).as_deref(),
        Some("admin")
    );
    assert_eq!(ring.verify("role", theme.value()), None);
    assert!(theme.value().starts_with("v2."));
    let sealed = ring.seal(SetCookie::build("theme", "admin").finish().unwrap());
    assert_eq!(ring.open("theme", sealed.value()).as_deref(), Some("admin"));
    assert_eq!(ring.open("role", sealed.value()), None);
    // Name and value cannot trade bytes: ("ab", "c") is not ("a", "bc").
    let ab = ring.sign(SetCookie::build("ab", "c").finish().unwrap());
    let tag = ab.value().strip_suffix('c').unwrap();
    assert_eq!(ring.verify("a", &format!("{tag}bc")), None);
}

/// The `cookie` crate's unbound format (what `sign` wrote before): refused by default, and
/// accepted (under its own name only as far as it can tell: any name) only when the ring
/// opts in for a migration, in which case it needs re-issuing.
#[test]
fn unbound_signed_values_are_refused_unless_opted_in() {
    let key = Key::generate();
    let mut jar = cookie::CookieJar::new();
    jar.signed_mut(&key)
        .add(cookie::Cookie::new("theme", "dark"));
    let old = jar.get("theme").unwrap().value().to_owned();
    let ring = KeyRing::new(key.clone());
    assert_eq!(ring.verify("theme", &old), None);
    assert_eq!(ring.verify("role", &old), None);
    let migrating = KeyRing::new(key).accept_unbound_signatures(true);
    assert_eq!(migrating.verify("theme", &old).as_deref(), Some("dark"));
    assert!(migrating.needs_reissue("theme", &old));
    let fresh = migrating.sign(SetCookie::build("theme", "dark").finish().unwrap());
    assert!(!migrating.needs_reissue("theme", fresh.value()));
    assert_eq!(migrating.verify("role", fresh.value()), None);
}
