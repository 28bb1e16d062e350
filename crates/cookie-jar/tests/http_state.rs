//! The IETF http-state suite (github.com/abarth/http-state, `tests/data`), read from
//! `HTTP_STATE_DIR`. How a case runs is described in that suite's README (and
//! ../shared/conformance/README.md): fresh store, request URL
//! `http://home.example.org:8888/cookie-parser?NAME`, store every `Set-Cookie` line, then
//! send to the `Location` (or `/cookie-parser-result?NAME`) and compare the `Cookie` header.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use cookie_jar::{CookieStore, Mode, RequestContext, format_http_date, parse_cookie_date};
use time::OffsetDateTime;
use url::Url;

/// 2011-03-13: the suite's absolute expiry dates are in the future at this instant.
const CLOCK: i64 = 1_300_000_000;

/// Cases whose expectation differs in RFC 6265bis: nameless cookies (`Set-Cookie: foo`, or
/// `=foo`) are kept with an empty name and sent back as their bare value (RFC 6265bis
/// section 5.6 step 3, section 5.8.3 step 4), and a later nameless cookie replaces an earlier
/// one (same empty name, domain and path). Value: the 6265bis `Cookie` header. Each of these
/// cases holds a `Set-Cookie` line without `=` or with an empty name; the test checks that.
const BIS_EXPECTED: &[(&str, Option<&str>)] = &[
    ("0004", Some(r#"foo"#)),
    ("0021", Some(r#"a=b; x; c=d"#)),
    ("0023", Some(r#"foo"#)),
    ("0024", Some(r#"foo"#)),
    ("0025", Some(r#"foo"#)),
    ("0026", Some(r#"foo"#)),
    ("0027", Some(r#"bar"#)),
    ("0028", Some(r#"foo"#)),
    ("chromium0009", Some(r#"BLAHHH"#)),
    ("chromium0010", Some(r#""BLA\"HHH""#)),
    ("chromium0012", Some(r#"ABC"#)),
    ("mozilla0012", Some(r#"test="fubar! = foo; five"#)),
    ("mozilla0014", Some(r#"six"#)),
    ("mozilla0015", Some(r#"seven"#)),
    ("mozilla0016", Some(r#"eight"#)),
    ("mozilla0017", Some(r#"eight; test=six"#)),
    ("name0017", Some(r#"a=bar"#)),
    ("name0023", Some(r#"foo"#)),
    ("name0025", Some(r#"==a=bar"#)),
    ("name0028", Some(r#"a"#)),
    ("name0031", Some(r#""foo"#)),
    ("name0032", Some(r#""foo\"bar"#)),
    ("name0033", Some(r#"aaa"#)),
];

fn dir() -> Option<PathBuf> {
    let Some(d) = std::env::var_os("HTTP_STATE_DIR") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "HTTP_STATE_DIR must be set under CI=true"
        );
        println!("skipped: HTTP_STATE_DIR is not set");
        return None;
    };
    Some(PathBuf::from(d))
}

fn cases(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("parser"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix("-test").map(str::to_owned))
        .filter(|n| !n.starts_with("disabled-"))
        .collect();
    names.sort();
    names
}

/// Runs one case; returns the `Cookie` header sent (None if none).
fn run(dir: &Path, name: &str, mode: Mode) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let test = std::fs::read(dir.join("parser").join(format!("{name}-test"))).unwrap();
    let expected = std::fs::read(dir.join("parser").join(format!("{name}-expected"))).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(CLOCK).unwrap();
    let url = Url::parse(&format!(
        "http://home.example.org:8888/cookie-parser?{name}"
    ))
    .unwrap();
    let mut store = CookieStore::with_mode(mode);
    let ctx = RequestContext::same_site();
    let mut location = None;
    for line in test.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"Set-Cookie:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            store.store(&url, [v], &ctx, now);
        } else if let Some(v) = line.strip_prefix(b"Location:") {
            location = Some(String::from_utf8(v.trim_ascii().to_vec()).unwrap());
        }
    }
    let target = match location {
        Some(l) => url.join(&l).unwrap(),
        None => Url::parse(&format!(
            "http://home.example.org:8888/cookie-parser-result?{name}"
        ))
        .unwrap(),
    };
    let got = store
        .cookie_header(&target, &ctx, now)
        .map(|h| h.as_bytes().to_vec());
    let want = expected.split(|b| *b == b'\n').find_map(|l| {
        l.strip_prefix(b"Cookie:")
            .map(|v| v.strip_prefix(b" ").unwrap_or(v).trim_ascii_end().to_vec())
    });
    (got, want)
}

#[test]
fn http_state_parser_rfc6265() {
    let Some(dir) = dir() else { return };
    let names = cases(&dir);
    let mut failed = Vec::new();
    for name in &names {
        let (got, want) = run(&dir, name, Mode::Rfc6265);
        if got != want {
            failed.push(format!(
                "{name}: got {:?} want {:?}",
                got.map(|g| String::from_utf8_lossy(&g).into_owned()),
                want.map(|w| String::from_utf8_lossy(&w).into_owned())
            ));
        }
    }
    println!(
        "http-state parser, RFC 6265 mode: {}/{} passed",
        names.len() - failed.len(),
        names.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn http_state_parser_rfc6265bis() {
    let Some(dir) = dir() else { return };
    let names = cases(&dir);
    let mut failed = Vec::new();
    let mut nameless = 0;
    for name in &names {
        let (got, mut want) = run(&dir, name, Mode::Rfc6265bis);
        if let Some((_, bis)) = BIS_EXPECTED.iter().find(|(n, _)| n == name) {
            nameless += 1;
            let test = std::fs::read(dir.join("parser").join(format!("{name}-test"))).unwrap();
            let has_nameless = test
                .split(|b| *b == b'\n')
                .filter_map(|l| l.strip_prefix(b"Set-Cookie:"))
                .any(|v| {
                    let pair = v.split(|b| *b == b';').next().unwrap_or_default();
                    !pair.contains(&b'=') || pair.trim_ascii().starts_with(b"=")
                });
            assert!(
                has_nameless,
                "{name} is listed as a nameless-cookie case but has none"
            );
            assert_ne!(
                bis.map(str::as_bytes),
                want.as_deref(),
                "{name}: 6265bis expectation equals 6265's"
            );
            want = bis.map(|b| b.as_bytes().to_vec());
        }
        if got != want {
            failed.push(format!(
                "{name}: got {:?} want {:?}",
                got.map(|g| String::from_utf8_lossy(&g).into_owned()),
                want.map(|w| String::from_utf8_lossy(&w).into_owned())
            ));
        }
    }
    println!(
        "http-state parser, RFC 6265bis mode: {}/{} passed ({nameless} with their 6265bis expectation)",
        names.len() - failed.len(),
        names.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn date_file(dir: &Path, file: &str) {
    let text = std::fs::read_to_string(dir.join("dates").join(file)).unwrap();
    // The files start with a license comment; the JSON array begins at the first `[`.
    let json = &text[text.find('[').unwrap()..];
    let cases: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    let mut failed = Vec::new();
    for case in &cases {
        let input = case["test"].as_str().unwrap();
        let want = case["expected"].as_str();
        let got = parse_cookie_date(input.as_bytes()).map(format_http_date);
        if got.as_deref() != want {
            failed.push(format!("{input:?}: got {got:?} want {want:?}"));
        }
    }
    println!(
        "http-state dates/{file}: {}/{} passed",
        cases.len() - failed.len(),
        cases.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn http_state_dates_examples() {
    let Some(dir) = dir() else { return };
    date_file(&dir, "examples.json");
}

#[test]
fn http_state_dates_bsd_examples() {
    let Some(dir) = dir() else { return };
    date_file(&dir, "bsd-examples.json");
}
