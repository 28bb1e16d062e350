#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Starts the example server on port 0 and talks HTTP/1.1 to it.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::{Value, json};
use serve::testing::Process;

fn start() -> Process {
    Process::start(env!("CARGO_BIN_EXE_graphql"))
}

/// Sends one request; returns (status, content-type, body).
fn send(
    server: &Process,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
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
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

const GQL: (&str, &str) = ("accept", "application/graphql-response+json");
const JSON_CT: (&str, &str) = ("content-type", "application/json");

#[test]
fn page_health_queries_and_mutations() {
    let server = start();
    let (status, ct, body) = send(&server, "GET", "/", &[], "");
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/html"));
    assert!(body.contains("/graphql"));
    assert_eq!(send(&server, "GET", "/healthz", &[], "").0, 200);

    let (status, ct, body) = send(
        &server,
        "GET",
        "/graphql?query=%7Bbooks%7Btitle%20author%7Bname%7D%7D%7D",
        &[GQL],
        "",
    );
    assert_eq!(status, 200);
    assert_eq!(ct, "application/graphql-response+json; charset=utf-8");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["data"]["books"][0],
        json!({"title": "A Wizard of Earthsea", "author": {"name": "Ursula K. Le Guin"}})
    );

    // Book.author goes through the DataLoader: one batch for the whole list.
    let batches = |server: &Process| {
        let (_, _, body) = send(
            server,
            "POST",
            "/graphql",
            &[GQL, JSON_CT],
            r#"{"query":"{ authorBatches }"}"#,
        );
        serde_json::from_str::<Value>(&body).unwrap()["data"]["authorBatches"]
            .as_u64()
            .unwrap()
    };
    let before = batches(&server);
    send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        r#"{"query":"{ books { author { name } } }"}"#,
    );
    assert_eq!(batches(&server), before + 1);

    // Automatic persisted queries: hash only (unknown), then hash and text, then hash only.
    let hash = graphql_core::document_hash("{ authors { name } }");
    let apq = |query: Option<&str>| {
        let mut body =
            json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
        if let Some(q) = query {
            body["query"] = json!(q);
        }
        body.to_string()
    };
    let (_, _, body) = send(&server, "POST", "/graphql", &[GQL, JSON_CT], &apq(None));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["errors"][0]["message"],
        "PersistedQueryNotFound"
    );
    let (status, _, _) = send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        &apq(Some("{ authors { name } }")),
    );
    assert_eq!(status, 200);
    let (status, _, body) = send(&server, "POST", "/graphql", &[GQL, JSON_CT], &apq(None));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"]["authors"][0]["name"],
        "Ursula K. Le Guin"
    );

    // The async resolver.
    let (_, _, body) = send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        r#"{"query":"{ book(id: \"2\") { title } }"}"#,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"book": {"title": "The Dispossessed"}}})
    );

    // A mutation over POST, then seen by a query.
    let (status, _, body) = send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        r#"{"query":"mutation($t: String!) { addBook(title: $t, authorId: \"2\", year: 1965) { id title author { name } } }","variables":{"t":"Dune"}}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"addBook": {"id": "3", "title": "Dune", "author": {"name": "Frank Herbert"}}}})
    );
    let (_, _, body) = send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        r#"{"query":"{ authors { name books { title } } }"}"#,
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["authors"][1]["books"], json!([{"title": "Dune"}]));

    // A field error carries extensions; the request still executed (200).
    let (status, _, body) = send(
        &server,
        "POST",
        "/graphql",
        &[GQL, JSON_CT],
        r#"{"query":"mutation { addBook(title: \"x\", authorId: \"9\") { id } }"}"#,
    );
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["extensions"]["code"], "NOT_FOUND");
    assert_eq!(v["data"], Value::Null);

    // Mutations over GET are refused; validation errors are 400 with the GraphQL media type.
    assert_eq!(
        send(
            &server,
            "GET",
            "/graphql?query=mutation%7BaddBook(title:%22x%22,authorId:%221%22)%7Bid%7D%7D",
            &[GQL],
            ""
        )
        .0,
        405
    );
    assert_eq!(
        send(
            &server,
            "POST",
            "/graphql",
            &[GQL, JSON_CT],
            r#"{"query":"{ nope }"}"#
        )
        .0,
        400
    );
    assert_eq!(
        send(
            &server,
            "POST",
            "/graphql",
            &[("accept", "application/json"), JSON_CT],
            r#"{"query":"{ nope }"}"#
        )
        .0,
        200
    );
    assert_eq!(
        send(
            &server,
            "POST",
            "/graphql",
            &[GQL, JSON_CT],
            &"x".repeat(70_000)
        )
        .0,
        413
    );
    assert_eq!(send(&server, "GET", "/nope", &[], "").0, 404);
}

#[test]
fn defer_and_stream_over_multipart_mixed() {
    let server = start();
    let query = json!({"query": r#"{ books @stream(initialCount: 1) { title } book(id: "1") { id ... @defer(label: "more") { year author { name } } } }"#}).to_string();
    let (status, content_type, chunked) = send(
        &server,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            (
                "accept",
                "multipart/mixed;incrementalSpec=v0.2, application/json",
            ),
        ],
        &query,
    );
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "multipart/mixed; boundary=\"-\"; incrementalspec=v0.2"
    );
    // The parts are streamed: chunked transfer coding, one chunk per part.
    let chunks = dechunk(&chunked);
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    assert!(chunks[0].starts_with("\r\n---\r\n"));
    assert!(chunks[2].ends_with("\r\n-----\r\n"));
    let body = chunks.concat();
    // The opening delimiter, the parts (each with its Content-Type), the closing delimiter.
    let inner = body
        .strip_prefix("\r\n---\r\n")
        .unwrap()
        .strip_suffix("\r\n-----\r\n")
        .unwrap();
    let parts = json_parts(inner);
    assert_eq!(
        parts,
        vec![
            json!({"data": {"books": [{"title": "A Wizard of Earthsea"}], "book": {"id": "1"}},
                   "pending": [{"id": "0", "path": ["books"]}, {"id": "1", "path": ["book"], "label": "more"}],
                   "hasNext": true}),
            json!({"incremental": [{"id": "0", "items": [{"title": "The Dispossessed"}]}],
                   "completed": [{"id": "0"}], "hasNext": true}),
            json!({"incremental": [{"id": "1", "data": {"year": 1968, "author": {"name": "Ursula K. Le Guin"}}}],
                   "completed": [{"id": "1"}], "hasNext": false}),
        ]
    );

    // A client that asks for the format of 2022-08-24 only (Apollo Client 3) gets it.
    let (status, content_type, chunked) = send(
        &server,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            (
                "accept",
                "multipart/mixed;deferSpec=20220824, application/json",
            ),
        ],
        &query,
    );
    assert_eq!(status, 200);
    assert_eq!(
        content_type,
        "multipart/mixed; boundary=\"-\"; deferspec=20220824"
    );
    let body = dechunk(&chunked).concat();
    let inner = body
        .strip_prefix("\r\n---\r\n")
        .unwrap()
        .strip_suffix("\r\n-----\r\n")
        .unwrap();
    assert_eq!(
        json_parts(inner),
        vec![
            json!({"data": {"books": [{"title": "A Wizard of Earthsea"}], "book": {"id": "1"}},
                   "hasNext": true}),
            json!({"incremental": [{"items": [{"title": "The Dispossessed"}], "path": ["books", 1]}],
                   "hasNext": true}),
            json!({"incremental": [{"data": {"year": 1968, "author": {"name": "Ursula K. Le Guin"}},
                                    "path": ["book"], "label": "more"}],
                   "hasNext": false}),
        ]
    );

    // Without multipart/mixed in Accept: one complete result, everything inline.
    let (status, content_type, body) = send(
        &server,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            ("accept", "application/graphql-response+json"),
        ],
        &query,
    );
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/graphql-response+json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"books": [{"title": "A Wizard of Earthsea"}, {"title": "The Dispossessed"}],
                       "book": {"id": "1", "year": 1968, "author": {"name": "Ursula K. Le Guin"}}}})
    );

    // Nothing deferred: a multipart-accepting client still gets plain JSON.
    let (status, content_type, body) = send(
        &server,
        "POST",
        "/graphql",
        &[
            ("content-type", "application/json"),
            ("accept", "multipart/mixed, application/json"),
        ],
        r#"{"query":"{ book(id: \"2\") { title } }"}"#,
    );
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"book": {"title": "The Dispossessed"}}})
    );
}

/// The JSON of each part between a multipart body's delimiters.
fn json_parts(inner: &str) -> Vec<Value> {
    inner
        .split("\r\n---\r\n")
        .map(|part| {
            let json = part
                .strip_prefix("Content-Type: application/json; charset=utf-8\r\n\r\n")
                .unwrap();
            serde_json::from_str(json).unwrap()
        })
        .collect()
}

/// The chunks of a body in chunked transfer coding (RFC 9112 section 7.1).
fn dechunk(mut raw: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    loop {
        let (size, rest) = raw.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return chunks;
        }
        chunks.push(rest[..size].to_owned());
        raw = rest[size..].strip_prefix("\r\n").unwrap();
    }
}

fn add_book(server: &Process, title: &str) -> Value {
    let body = json!({
        "query": "mutation($t: String!) { addBook(title: $t, authorId: \"1\") { id } }",
        "variables": {"t": title},
    })
    .to_string();
    let (_, _, body) = send(server, "POST", "/graphql", &[GQL, JSON_CT], &body);
    serde_json::from_str(&body).unwrap()
}

/// Issue 14, finding 3: eight books added through the unauthenticated `addBook`, then 95
/// bytes of `authors { books { author { books ...` six levels deep returned 13.6 MB. The
/// complexity count now multiplies each list level by its assumed size: refused, 400.
#[test]
fn nested_list_fan_out_is_refused() {
    let server = start();
    for n in 0..8 {
        let r = add_book(&server, &format!("book {n}"));
        assert!(r.get("errors").is_none(), "{r}");
    }
    let query = "{authors{books{author{books{author{books{author{books{author{books{author{books{title}}}}}}}}}}}}}";
    let body = json!({ "query": query }).to_string();
    let (status, _, body) = send(&server, "POST", "/graphql", &[GQL, JSON_CT], &body);
    assert_eq!(status, 400, "{}", &body[..body.len().min(300)]);
    assert!(body.len() < 1_000, "{} bytes", body.len());
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED");
    assert!(v.get("data").is_none());
    // Two levels still run.
    let body = json!({ "query": "{authors{name books{title year author{name}}}}" }).to_string();
    let (status, _, body) = send(&server, "POST", "/graphql", &[GQL, JSON_CT], &body);
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("errors"), "{body}");
}

/// The unauthenticated mutation is bounded: title length and the number of books.
#[test]
fn add_book_is_bounded() {
    let server = start();
    let r = add_book(&server, &"x".repeat(201));
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{r}"
    );
    // Two books to start with: 98 more fill the library.
    for n in 0..98 {
        let r = add_book(&server, &format!("book {n}"));
        assert!(r.get("errors").is_none(), "{n}: {r}");
    }
    let r = add_book(&server, "one too many");
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "LIMIT_EXCEEDED",
        "{r}"
    );
    let (_, _, body) = send(
        &server,
        "GET",
        "/graphql?query=%7Bbooks%7Bid%7D%7D",
        &[GQL],
        "",
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["books"].as_array().unwrap().len(), 100);
}
