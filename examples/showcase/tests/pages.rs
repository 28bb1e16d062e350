//! Issue 22 over HTTP against the showcase binary: the test-only chat echo is not mounted,
//! every HTML page refuses to be framed and carries a content policy, the landing page's
//! curl samples name the host the visitor came in on, and the cookies page's forms are
//! CSRF-protected and explain a note whose key was retired.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;

use support::{Chromium, Reply, Server};

#[test]
fn the_chat_test_echo_is_not_mounted() {
    let server = Server::start();
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "echo.v1"),
    ];
    let echo = server.send("GET", "/chat/echo", &upgrade, b"");
    assert_eq!(echo.status, 404, "{echo:?}");
}

#[test]
fn every_html_page_refuses_frames_and_has_a_content_policy() {
    let server = Server::start();
    for path in [
        "/",
        "/auth/",
        "/chat/",
        "/cookies/",
        "/graphql/",
        "/oauth/",
        "/oauth-login/",
        "/api/",
        "/proxy/",
        "/no-such-page",
    ] {
        let page = server.get(path);
        if !page
            .header("content-type")
            .is_some_and(|value| value.starts_with("text/html"))
        {
            // Only HTML pages are framed; the 404 is plain text.
            assert!(
                ![
                    "/",
                    "/auth/",
                    "/chat/",
                    "/cookies/",
                    "/graphql/",
                    "/api/",
                    "/proxy/"
                ]
                .contains(&path),
                "{path} is not HTML"
            );
            assert_eq!(page.header("x-frame-options"), None, "{path}");
            continue;
        }
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        let policy = page.header("content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        // The OAuth provider's pages bring their own policy, which is kept.
        if path != "/oauth/" {
            assert_eq!(policy, serve::page::CONTENT_SECURITY_POLICY_VALUE, "{path}");
            for directive in ["default-src 'self'", "object-src 'none'", "base-uri 'none'"] {
                assert!(policy.contains(directive), "{path}: {policy}");
            }
        }
    }
    // Not HTML: no page policies.
    let health = server.get("/healthz");
    assert_eq!(health.header("x-frame-options"), None);
    // The refusal page of a form is HTML too.
    let refused = server.send(
        "POST",
        "/cookies/rotate",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"",
    );
    assert_eq!(refused.header("x-frame-options"), Some("DENY"));
}

#[test]
fn the_api_index_lists_every_operation_of_the_openapi_document() {
    let server = Server::start();
    let moved = server.get("/api");
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/api/"));
    let page = server.get("/api/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains(r#"<a id=back href="/">"#), "no way back");
    assert!(page.body.contains(r#"href="/favicon.ico""#), "no icon");
    let document: serde_json::Value =
        serde_json::from_str(&server.get("/api/openapi.json").body).unwrap();
    let mut operations = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            operations += 1;
            let summary = operation["summary"].as_str().unwrap();
            let codes: Vec<&String> = operation["responses"].as_object().unwrap().keys().collect();
            // The operation's row: method, the full path, its summary, every status code.
            let row = page
                .body
                .split("<tr class=operation>")
                .find(|row| {
                    row.contains(&format!("<td class=method>{}</td>", method.to_uppercase()))
                        && row.contains(&format!("<code>/api{path}</code>"))
                })
                .unwrap_or_else(|| panic!("no row for {method} {path}"));
            let row = support::unescape(row.split("</tr>").next().unwrap());
            assert!(row.contains(summary), "{method} {path}: {row}");
            for code in codes {
                assert!(
                    row.contains(&format!(">{code}<")),
                    "{method} {path} {code}: {row}"
                );
            }
        }
    }
    assert!(operations >= 10, "{operations} operations");
    assert_eq!(
        page.body.matches("<tr class=operation>").count(),
        operations
    );
    // A GET without parameters is a link that works.
    assert!(
        page.body
            .contains(r#"<a href="/api/users"><code>/api/users</code></a>"#)
    );
    assert_eq!(server.get("/api/users").status, 200);
}

#[test]
fn the_proxy_index_links_its_demo_routes_and_metrics() {
    let server = Server::start();
    let moved = server.get("/proxy");
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/proxy/"));
    let page = server.get("/proxy/");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("cache"), "{}", page.body);
    assert!(page.body.contains(r#"<a id=back href="/">"#), "no way back");
    for route in [
        "/proxy/origin/cached",
        "/proxy/origin/headers",
        "/proxy/api/users",
        "/proxy/metrics",
    ] {
        assert!(
            page.body.contains(&format!(r#"<a href="{route}">"#)),
            "no link to {route}"
        );
        assert_eq!(server.get(route).status, 200, "{route}");
    }
    // The rate-limited route is named but not linked: following links does not spend it.
    assert!(page.body.contains("/proxy/origin/limited"));
    assert!(!page.body.contains(r#"href="/proxy/origin/limited""#));
    let head = server.send("HEAD", "/proxy/", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(server.send("POST", "/proxy/", &[], b"").status, 405);
}

#[test]
fn the_favicon_is_a_small_svg_that_the_pages_link() {
    let server = Server::start();
    let icon = server.get("/favicon.ico");
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert!(
        icon.body
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    assert!(icon.body.trim_end().ends_with("</svg>"));
    assert!(icon.body.len() < 1024, "{} bytes", icon.body.len());
    for path in ["/", "/api/", "/proxy/"] {
        let page = server.get(path);
        assert!(
            page.body
                .contains(r#"rel="icon" type="image/svg+xml" href="/favicon.ico""#)
                || page
                    .body
                    .contains(r#"rel=icon type="image/svg+xml" href="/favicon.ico""#),
            "{path} does not link the icon"
        );
    }
}

/// The `<code>curl ...</code>` samples of a page, unescaped.
fn curl_samples(html: &str) -> Vec<String> {
    html.split("<code>curl ")
        .skip(1)
        .map(|rest| {
            format!(
                "curl {}",
                support::unescape(rest.split("</code>").next().unwrap())
            )
        })
        .collect()
}

/// `GET /` with exactly this `Host` header (`serve::testing::send` writes its own).
fn landing_page_for(server: &Server, host: &str) -> Reply {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    serve::testing::parse_response(&raw, false)
}

#[test]
fn landing_page_curl_samples_use_the_address_the_visitor_came_in_on() {
    let server = Server::start();
    let port = server.addr.port();
    // By name, as `http://localhost:PORT/` in a browser sends it.
    let host = format!("localhost:{port}");
    let page = landing_page_for(&server, &host);
    assert_eq!(page.status, 200);
    let samples = curl_samples(&page.body);
    assert!(samples.len() >= 6, "{samples:?}");
    for sample in &samples {
        assert!(
            sample.contains(&format!("http://localhost:{port}/")),
            "a sample without the host: {sample}"
        );
    }
    // The REST sample works as written.
    let rest = samples
        .iter()
        .find(|sample| sample.contains("/api/users"))
        .unwrap();
    let created = serve::testing::run(
        Command::new("sh")
            .arg("-c")
            .arg(rest.replacen("curl -i", "curl -si", 1)),
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    // No usable Host: this server's own address; never a header's markup in the page.
    let page = landing_page_for(&server, "a<b>\"c");
    if page.status == 200 {
        assert!(
            !page.body.contains("a<b>"),
            "the Host header reached the page"
        );
        for sample in curl_samples(&page.body) {
            assert!(
                sample.contains(&format!("http://{}/", server.addr)),
                "{sample}"
            );
        }
    }
}

/// The cookies page through one client, with its CSRF token at hand.
fn cookies_page(client: &mut support::Client) -> (Reply, String) {
    let page = client.get("/cookies/");
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    (page, csrf)
}

#[test]
fn cookie_forms_need_the_page_token_and_a_same_site_sender() {
    let server = Server::start();
    let mut browser = server.client();
    let (_, csrf) = cookies_page(&mut browser);
    assert!(browser.cookies.contains_key("__Host-cookies-csrf"));

    // Another site's form: no token (its page cannot read ours), or a browser that says
    // cross-site even with a token it somehow had.
    for (headers, fields) in [
        (vec![], vec![]),
        (vec![], vec![("csrf", "forged")]),
        (
            vec![("Sec-Fetch-Site", "cross-site")],
            vec![("csrf", csrf.as_str())],
        ),
        (
            vec![("Origin", "https://evil.example")],
            vec![("csrf", csrf.as_str())],
        ),
    ] {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&fields)
            .finish();
        let mut all = headers.clone();
        all.push(("Content-Type", "application/x-www-form-urlencoded"));
        let refused = browser.send("POST", "/cookies/rotate", &all, body.as_bytes());
        assert_eq!(refused.status, 403, "{headers:?} {fields:?}");
        assert!(
            refused.body.contains("Nothing was changed"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains(r#"href="/cookies/""#), "no way back");
        let refused = browser.send("POST", "/cookies/note", &all, body.as_bytes());
        assert_eq!(refused.status, 403);
    }
    let (page, _) = cookies_page(&mut browser);
    assert!(
        page.body.contains("rotated 0 times"),
        "a refused post rotated"
    );

    // A client without the CSRF cookie cannot use a token it copied.
    let mut stranger = server.client();
    let copied = stranger.post_form("/cookies/rotate", &[("csrf", &csrf)]);
    assert_eq!(copied.status, 403);

    // The page's own form, same origin.
    let rotated = browser.send(
        "POST",
        "/cookies/rotate",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        format!("csrf={csrf}").as_bytes(),
    );
    assert_eq!(rotated.status, 303);
    let (page, _) = cookies_page(&mut browser);
    assert!(page.body.contains("rotated 1 time;"), "{}", page.body);
}

/// The page's rotate form, posted with its token.
fn rotate(client: &mut support::Client, csrf: &str) {
    let rotated = client.post_form("/cookies/rotate", &[("csrf", csrf)]);
    assert_eq!(rotated.status, 303, "{rotated:?}");
}

#[test]
fn a_note_whose_key_was_retired_says_so() {
    let server = Server::start();
    let mut browser = server.client();
    let (_, csrf) = cookies_page(&mut browser);
    let kept = browser.post_form(
        "/cookies/note",
        &[("csrf", &csrf), ("note", "meet at noon")],
    );
    assert_eq!(kept.status, 303);

    // One rotation, then a visit: the note is read with the previous key and sealed again.
    rotate(&mut browser, &csrf);
    let (page, _) = cookies_page(&mut browser);
    assert!(
        page.body.contains("<b id=note>meet at noon</b>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("sealed again with the current one"),
        "{}",
        page.body
    );
    // Sealed again: two more rotations without a visit in between retire that key too.
    let resealed = browser.cookies["showcase-note"].clone();
    for _ in 0..2 {
        rotate(&mut browser, &csrf);
    }
    let (page, _) = cookies_page(&mut browser);
    assert!(!page.body.contains("meet at noon"), "{}", page.body);
    assert!(
        page.body
            .contains("the key that sealed it was retired by rotation 3"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<b id=note>(unreadable, see above)</b>"));
    // A note nobody's key sealed is "changed", not "retired".
    let mut forged = resealed;
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    browser.cookies.insert("showcase-note".to_owned(), forged);
    let (page, _) = cookies_page(&mut browser);
    assert!(
        page.body.contains("could not be opened: it was changed"),
        "{}",
        page.body
    );
}

/// The same pages in headless Chromium, as a user meets them; screenshots are written to
/// `CARGO_TARGET_TMPDIR/showcase-*.png`.
#[test]
fn chromium_landing_chat_cookies_and_frames() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "pages_browser.js",
        &server,
        &[
            "showcase-landing-rest.png",
            "showcase-landing-cache.png",
            "showcase-api-index.png",
            "showcase-proxy-index.png",
            "showcase-cookies-resealed.png",
            "showcase-cookies-retired.png",
            "showcase-cookies-csrf-refused.png",
        ],
    );
}
