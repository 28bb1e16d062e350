#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! File uploads (GraphQL multipart request specification v2.1): requests built by hand,
//! read from a stream of chunks, then executed; every limit, the CSRF refusal and each
//! kind of malformed request with its status.

use bytes::Bytes;
use graphql_core::{
    Context, HttpRejection, MultipartRequest, Request, Resolver, ScalarCoercion, Schema,
    UploadLimits, read_multipart_request,
};
use http::StatusCode;
use serde_json::{Value, json};

const BOUNDARY: &str = "XyZboundary";

/// A part: its name, its file name (for files) and its content.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart body: `(name, filename, content)` parts in order.
fn body(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, filename, content) in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(f) => out.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => out.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn head(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::builder()
        .method(method)
        .uri("/graphql")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(()).unwrap().into_parts().0
}

const PREFLIGHT: (&str, &str) = ("apollo-require-preflight", "true");

/// Reads a body sent in chunks of `chunk` bytes.
fn read_chunked(
    parts: &http::request::Parts,
    body: Vec<u8>,
    chunk: usize,
    limits: &UploadLimits,
) -> Result<MultipartRequest, HttpRejection> {
    let chunks: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(read_multipart_request(
        parts,
        futures_util::stream::iter(chunks),
        limits,
    ))
}

fn read(parts: &[Part<'_>]) -> Result<MultipartRequest, HttpRejection> {
    read_chunked(
        &head("POST", &[PREFLIGHT]),
        body(parts),
        7,
        &UploadLimits::default(),
    )
}

fn refused(result: Result<MultipartRequest, HttpRejection>) -> (StatusCode, String) {
    let r = result.unwrap_err();
    (r.status, r.message)
}

const ONE: &[u8] =
    br#"{"query":"mutation($file: Upload!) { size(file: $file) }","variables":{"file":null}}"#;

fn schema() -> Schema {
    Schema::build(
        "scalar Upload
         type Query { a: Int }
         type Mutation { size(file: Upload!): Int names(files: [Upload!]!): [String!]! }",
    )
    .scalar("Upload", ScalarCoercion::upload())
    .resolver(
        "Mutation",
        "size",
        Resolver::sync(|ctx, _, args| {
            let file = ctx.upload(args.get("file").unwrap()).unwrap();
            Ok(json!(file.bytes.len()))
        }),
    )
    .resolver(
        "Mutation",
        "names",
        Resolver::sync(|ctx, _, args| {
            let files = args.get("files").unwrap().as_array().unwrap();
            Ok(Value::Array(
                files
                    .iter()
                    .map(|f| {
                        let f = ctx.upload(f).unwrap();
                        json!(format!(
                            "{}:{}",
                            f.filename.as_deref().unwrap_or("?"),
                            String::from_utf8_lossy(&f.bytes)
                        ))
                    })
                    .collect(),
            ))
        }),
    )
    .finish()
    .unwrap()
}

fn execute(read: MultipartRequest) -> Value {
    let ctx = Context::default().with_uploads(read.uploads);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(schema().execute(&read.request, &ctx))
        .to_value()
}

#[test]
fn one_file_reaches_its_resolver() {
    let read = read(&[
        ("operations", None, ONE),
        ("map", None, br#"{"0":["variables.file"]}"#),
        ("0", Some("a.txt"), b"hello upload"),
    ])
    .unwrap();
    assert_eq!(read.request.variables["file"], json!({"$upload": 0}));
    assert_eq!(read.uploads.len(), 1);
    assert_eq!(read.uploads[0].filename.as_deref(), Some("a.txt"));
    assert_eq!(read.uploads[0].content_type.as_deref(), Some("text/plain"));
    assert_eq!(&read.uploads[0].bytes[..], b"hello upload");
    assert_eq!(execute(read), json!({"data": {"size": 12}}));
}

#[test]
fn a_list_of_files_and_one_file_in_two_places() {
    let operations = br#"{"query":"mutation($files: [Upload!]!) { names(files: $files) }","variables":{"files":[null,null,null]}}"#;
    let read = read(&[
        ("operations", None, operations),
        (
            "map",
            None,
            br#"{"a":["variables.files.0","variables.files.2"],"b":["variables.files.1"]}"#,
        ),
        ("b", Some("b.txt"), b"B"),
        ("a", Some("a.txt"), b"A"),
        // Not in the map: skipped.
        ("c", Some("c.txt"), b"C"),
    ])
    .unwrap();
    assert_eq!(read.uploads.len(), 2);
    assert_eq!(
        execute(read),
        json!({"data": {"names": ["a.txt:A", "b.txt:B", "a.txt:A"]}})
    );
}

#[test]
fn the_upload_scalar_takes_only_files() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let schema = schema();
    let ctx = Context::default();
    // A string where a file goes, as a variable or as a literal.
    let mut vars = serde_json::Map::new();
    vars.insert("file".into(), json!("/etc/passwd"));
    let request = Request::new("mutation($file: Upload!) { size(file: $file) }").variables(vars);
    let response = rt.block_on(schema.execute(&request, &ctx)).to_value();
    assert!(response.get("data").is_none(), "{response}");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("multipart request"),
        "{response}"
    );
    let request = Request::new(r#"mutation { size(file: "x") }"#);
    let response = rt.block_on(schema.execute(&request, &ctx)).to_value();
    assert!(response.get("data").is_none(), "{response}");
}

#[test]
fn csrf_needs_a_preflight_header() {
    let parts = [
        ("operations", None, ONE),
        ("map", None, &br#"{"0":["variables.file"]}"#[..]),
        ("0", Some("a.txt"), b"x"),
    ];
    let limits = UploadLimits::default();
    let (status, message) = refused(read_chunked(&head("POST", &[]), body(&parts), 64, &limits));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("Cross-Site Request Forgery"), "{message}");
    assert!(message.contains("apollo-require-preflight"), "{message}");
    let (status, _) = refused(read_chunked(
        &head("POST", &[("apollo-require-preflight", "")]),
        body(&parts),
        64,
        &limits,
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for header in [
        "apollo-require-preflight",
        "graphql-require-preflight",
        "x-apollo-operation-name",
    ] {
        let read = read_chunked(&head("POST", &[(header, "1")]), body(&parts), 64, &limits);
        assert!(read.is_ok(), "{header}: {read:?}");
    }
    // Configurable: none required.
    let open = UploadLimits {
        preflight_headers: vec![],
        ..UploadLimits::default()
    };
    assert!(read_chunked(&head("POST", &[]), body(&parts), 64, &open).is_ok());
}

#[test]
fn every_limit_is_a_413() {
    let small = UploadLimits {
        max_file_size: 10,
        max_files: 2,
        max_total_size: 2000,
        max_operations_size: 200,
        ..UploadLimits::default()
    };
    let post = head("POST", &[PREFLIGHT]);
    // A file over max_file_size.
    let (status, message) = refused(read_chunked(
        &post,
        body(&[
            ("operations", None, ONE),
            ("map", None, br#"{"0":["variables.file"]}"#),
            ("0", Some("a.txt"), b"eleven bytes"),
        ]),
        5,
        &small,
    ));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        message.contains("file \"0\" is larger than 10 bytes"),
        "{message}"
    );
    // Exactly at the limit is fine.
    assert!(
        read_chunked(
            &post,
            body(&[
                ("operations", None, ONE),
                ("map", None, br#"{"0":["variables.file"]}"#),
                ("0", Some("a.txt"), b"ten bytes!"),
            ]),
            5,
            &small,
        )
        .is_ok()
    );
    // More files than max_files (refused from the map, before any file is read).
    let three = br#"{"query":"mutation($files: [Upload!]!) { names(files: $files) }","variables":{"files":[null,null,null]}}"#;
    let (status, message) = refused(read_chunked(
        &post,
        body(&[
            ("operations", None, three),
            (
                "map",
                None,
                br#"{"0":["variables.files.0"],"1":["variables.files.1"],"2":["variables.files.2"]}"#,
            ),
        ]),
        64,
        &small,
    ));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("3 files; at most 2"), "{message}");
    // The whole body over max_total_size: many small unmapped parts.
    let filler: Vec<Part<'_>> =
        std::iter::repeat_n(("x", Some("x"), &b"0123456789"[..]), 40).collect();
    let mut parts = vec![
        ("operations", None, ONE),
        ("map", None, &br#"{"0":["variables.file"]}"#[..]),
    ];
    parts.extend(filler);
    let (status, message) = refused(read_chunked(&post, body(&parts), 64, &small));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message.contains("larger than 2000 bytes"), "{message}");
    // An operations part over max_operations_size.
    let long = format!(
        r#"{{"query":"mutation($file: Upload!) {{ size(file: $file) }} {}","variables":{{"file":null}}}}"#,
        "#".repeat(300)
    );
    let (status, message) = refused(read_chunked(
        &post,
        body(&[("operations", None, long.as_bytes())]),
        64,
        &small,
    ));
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        message.contains("\"operations\" part is larger than 200"),
        "{message}"
    );
}

#[test]
fn malformed_requests_are_400s() {
    let map = &br#"{"0":["variables.file"]}"#[..];
    let cases: &[(&str, &[Part<'_>], &str)] = &[
        (
            "operations not first",
            &[("map", None, map), ("operations", None, ONE)],
            "first part",
        ),
        (
            "map not second",
            &[("operations", None, ONE), ("0", Some("a"), b"x")],
            "second part",
        ),
        (
            "operations not JSON",
            &[("operations", None, b"{nope"), ("map", None, map)],
            "not JSON",
        ),
        (
            "operations a string",
            &[("operations", None, b"\"q\""), ("map", None, map)],
            "JSON object",
        ),
        (
            "a batch",
            &[("operations", None, b"[{}]"), ("map", None, map)],
            "Batched",
        ),
        (
            "map not JSON",
            &[("operations", None, ONE), ("map", None, b"{")],
            "not JSON",
        ),
        (
            "map an array",
            &[("operations", None, ONE), ("map", None, b"[]")],
            "JSON object",
        ),
        (
            "map entry not an array",
            &[
                ("operations", None, ONE),
                ("map", None, br#"{"0":"variables.file"}"#),
            ],
            "array of paths",
        ),
        (
            "map entry empty",
            &[("operations", None, ONE), ("map", None, br#"{"0":[]}"#)],
            "no path",
        ),
        (
            "map path not a string",
            &[("operations", None, ONE), ("map", None, br#"{"0":[1]}"#)],
            "as strings",
        ),
        (
            "map path to nothing",
            &[
                ("operations", None, ONE),
                ("map", None, br#"{"0":["variables.nope"]}"#),
            ],
            "not a null",
        ),
        (
            "map path to a value",
            &[
                ("operations", None, ONE),
                ("map", None, br#"{"0":["query"]}"#),
            ],
            "not a null",
        ),
        (
            "mapped file missing",
            &[("operations", None, ONE), ("map", None, map)],
            "is missing",
        ),
        (
            "file sent twice",
            &[
                ("operations", None, ONE),
                ("map", None, map),
                ("0", Some("a"), b"x"),
                ("0", Some("a"), b"y"),
            ],
            "sent twice",
        ),
    ];
    for (what, parts, expected) in cases {
        let (status, message) = refused(read(parts));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {message}");
        assert!(message.contains(expected), "{what}: {message}");
    }
    // A body cut short.
    let mut cut = body(&[
        ("operations", None, ONE),
        ("map", None, map),
        ("0", Some("a"), b"x"),
    ]);
    cut.truncate(cut.len() - 20);
    let (status, message) = refused(read_chunked(
        &head("POST", &[PREFLIGHT]),
        cut,
        16,
        &UploadLimits::default(),
    ));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    // No boundary.
    let (mut parts, ()) = http::Request::post("/graphql")
        .header("content-type", "multipart/form-data")
        .header(PREFLIGHT.0, PREFLIGHT.1)
        .body(())
        .unwrap()
        .into_parts();
    let (status, _) = refused(read_chunked(&parts, vec![], 16, &UploadLimits::default()));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // GET: 405 with Allow: POST.
    parts.method = http::Method::GET;
    let r = read_chunked(&parts, vec![], 16, &UploadLimits::default()).unwrap_err();
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.allow, Some("POST"));
}

#[test]
fn operations_get_the_checks_of_a_json_post() {
    // A subscription is refused as read_http_request refuses it.
    let operations = br#"{"query":"subscription { a }"}"#;
    let subscription = read_chunked(
        &head(
            "POST",
            &[PREFLIGHT, ("accept", "application/graphql-response+json")],
        ),
        body(&[("operations", None, operations), ("map", None, b"{}")]),
        64,
        &UploadLimits::default(),
    );
    assert_eq!(subscription.unwrap_err().status, StatusCode::BAD_REQUEST);
    // No files at all is a valid request.
    let read = read(&[
        ("operations", None, br#"{"query":"{ a }"}"#),
        ("map", None, b"{}"),
    ])
    .unwrap();
    assert!(read.uploads.is_empty());
    assert_eq!(read.request.query, "{ a }");
}
