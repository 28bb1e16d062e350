#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Over the wire, against the example's binary: cache hints as `Cache-Control` on GET
//! queries (persisted queries too), and file uploads (`attachCover`) as multipart requests,
//! with each limit and the CSRF refusal; then the Python `gql` client (requests transport,
//! `upload_files=True`) uploading a cover (`PEER_PYTHON`; skipped with a message when unset,
//! a failure under `CI=true`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use serve::testing::{Process, peer};

fn start() -> Process {
    Process::start(env!("CARGO_BIN_EXE_graphql"))
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}: ", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower.strip_prefix(&prefix).map(str::to_owned)
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn send(
    server: &Process,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: {}\r\n",
        server.addr,
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413) before reading all of a large body.
    let _ = stream.write_all(&bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(server: &Process, query: &str) -> Reply {
    let target = format!(
        "/graphql?query={}",
        query
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    send(
        server,
        "GET",
        &target,
        &[("accept", "application/graphql-response+json")],
        b"",
    )
}

#[test]
fn get_queries_carry_their_cache_policy() {
    let server = start();
    let cases = [
        // Query.books maxAge 30; Book 60, Author 300: the smallest.
        ("{ books { title author { name } } }", "max-age=30, public"),
        ("{ authors { name books { title } } }", "max-age=60, public"),
        ("{ authors { name } }", "max-age=300, public"),
        // No hint on a root field: not cacheable.
        ("{ authorBatches }", "no-store"),
        ("{ authors { name } authorBatches }", "no-store"),
        // Cover has no hint: a composite field without one is 0.
        ("{ books { title cover { size } } }", "no-store"),
        // Errors: not cacheable.
        ("{ nope }", "no-store"),
    ];
    for (query, expected) in cases {
        let reply = get(&server, query);
        assert_eq!(
            reply.header("cache-control").as_deref(),
            Some(expected),
            "{query}: {}",
            reply.body
        );
    }
    // A mutation over POST: not cacheable.
    let reply = send(
        &server,
        "POST",
        "/graphql",
        &[("content-type", "application/json")],
        br#"{"query":"mutation { addBook(title: \"Solaris\", authorId: \"1\") { id } }"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
}

#[test]
fn persisted_queries_by_get_are_cacheable() {
    let server = start();
    let query = "{ authors { name } }";
    let hash = graphql_core::document_hash(query);
    let extensions = format!(r#"{{"persistedQuery":{{"version":1,"sha256Hash":"{hash}"}}}}"#);
    let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    // Registered once with its text, then sent by hash alone.
    let register = format!(
        "/graphql?query={}&extensions={}",
        enc(query),
        enc(&extensions)
    );
    let reply = send(&server, "GET", &register, &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let by_hash = format!("/graphql?extensions={}", enc(&extensions));
    let reply = send(&server, "GET", &by_hash, &[], b"");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["data"]["authors"][0]["name"],
        "Ursula K. Le Guin"
    );
    assert_eq!(
        reply.header("cache-control").as_deref(),
        Some("max-age=300, public")
    );
}

const BOUNDARY: &str = "----gqlhttpBoundary";

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match filename {
            Some(f) => format!(
                "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"
            ),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
        };
        out.extend_from_slice(disposition.as_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

const ATTACH: &[u8] = br#"{"query":"mutation($file: Upload!) { attachCover(bookId: \"1\", file: $file) { title cover { filename contentType size preview } } }","variables":{"file":null}}"#;
const MAP: &[u8] = br#"{"0":["variables.file"]}"#;

fn upload(server: &Process, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let mut all = vec![
        ("content-type", content_type.as_str()),
        ("accept", "application/graphql-response+json"),
    ];
    all.extend_from_slice(headers);
    send(server, "POST", "/graphql", &all, body)
}

#[test]
fn covers_upload_within_limits() {
    let server = start();
    let preflight = [("apollo-require-preflight", "true")];
    let reply = upload(
        &server,
        &preflight,
        &multipart(&[
            ("operations", None, ATTACH),
            ("map", None, MAP),
            ("0", Some("earthsea.png"), b"PNG-ish bytes"),
        ]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"data": {"attachCover": {"title": "A Wizard of Earthsea", "cover": {
            "filename": "earthsea.png", "contentType": "image/png", "size": 13, "preview": "PNG-ish bytes"
        }}}})
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let reply = get(&server, r#"{ book(id: "1") { cover { size } } }"#);
    assert_eq!(reply.json()["data"]["book"]["cover"]["size"], 13);

    // No preflight-forcing header: refused as a possible CSRF, nothing stored.
    let reply = upload(
        &server,
        &[],
        &multipart(&[
            ("operations", None, ATTACH),
            ("map", None, MAP),
            ("0", Some("x.png"), b"x"),
        ]),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("Cross-Site Request Forgery"),
        "{}",
        reply.body
    );

    // A cover over 256 KiB: 413.
    let big = vec![b'x'; 256 * 1024 + 1];
    let reply = upload(
        &server,
        &preflight,
        &multipart(&[
            ("operations", None, ATTACH),
            ("map", None, MAP),
            ("0", Some("big.png"), &big),
        ]),
    );
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.body.contains("larger than 262144 bytes"),
        "{}",
        reply.body
    );

    // More files than two: 413 from the map.
    let reply = upload(
        &server,
        &preflight,
        &multipart(&[
            ("operations", None, ATTACH),
            (
                "map",
                None,
                br#"{"0":["variables.file"],"1":["variables.file"],"2":["variables.file"]}"#,
            ),
        ]),
    );
    assert_eq!(reply.status, 413, "{}", reply.body);

    // The whole body over its limit (two covers' worth and some): 413.
    let filler = vec![b'y'; 200 * 1024];
    let reply = upload(
        &server,
        &preflight,
        &multipart(&[
            ("operations", None, ATTACH),
            ("map", None, MAP),
            ("a", Some("a"), &filler),
            ("b", Some("b"), &filler),
            ("c", Some("c"), &filler),
        ]),
    );
    assert_eq!(reply.status, 413, "{}", reply.body);

    // A malformed map: 400.
    let reply = upload(
        &server,
        &preflight,
        &multipart(&[
            ("operations", None, ATTACH),
            ("map", None, br#"{"0":["variables.nope"]}"#),
        ]),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("not a null"), "{}", reply.body);

    // The cover is still the first one.
    let reply = get(&server, r#"{ book(id: "1") { cover { filename } } }"#);
    assert_eq!(
        reply.json()["data"]["book"]["cover"]["filename"],
        "earthsea.png"
    );
}

#[test]
fn python_gql_client_uploads_a_cover() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let server = start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gql_upload.py");
    let stdout = serve::testing::run(
        Command::new(python)
            .arg(script)
            .arg(format!("{}/graphql", server.origin())),
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("gql client: {seen}");
    let expected_size = "The Dispossessed: an ambiguous utopia\n".len() * 100;
    assert_eq!(
        seen["upload"]["ok"]["attachCover"],
        json!({"id": "2", "title": "The Dispossessed", "cover": {
            "filename": "cover.txt", "contentType": "text/plain", "size": expected_size,
            "preview": "The Dispossessed: an ambiguous utopia\nThe Dispossessed: an ambig"
        }}),
        "{seen}"
    );
    assert_eq!(
        seen["query"]["ok"]["book"]["cover"],
        json!({"filename": "cover.txt", "size": expected_size})
    );
    let too_large = seen["too_large"]["error"].as_str().unwrap_or_default();
    assert!(
        too_large.contains("413") || too_large.contains("larger than"),
        "{seen}"
    );
    let csrf = seen["no_preflight"]["error"].as_str().unwrap_or_default();
    assert!(
        csrf.contains("400") || csrf.contains("Cross-Site"),
        "{seen}"
    );
}
