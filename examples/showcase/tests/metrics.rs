//! Issue 22, "Also expected": `GET /metrics` of the whole showcase. Requests through
//! several mounts move the counters by exactly the number sent; the exposition is read by a
//! strict parser of the text format 0.0.4 written here (names, escapes, one TYPE per family
//! before its samples, families not interleaved, cumulative histogram buckets whose `+Inf`
//! equals `_count`, which equals the request counter) and by Prometheus's own linter,
//! `promtool check metrics` (`PROMTOOL`; .ci/run installs it).

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use tungstenite::Message;
use tungstenite::client::IntoClientRequest as _;

use support::Server;

/// One sample line.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: each family's type, and the samples in order.
#[derive(Debug)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample `name` with exactly `labels`, if there is one.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    fn requests(&self, app: &str, method: &str, class: &str) -> f64 {
        self.value(
            "showcase_http_requests_total",
            &[("app", app), ("method", method), ("status_class", class)],
        )
        .unwrap_or(0.0)
    }
}

fn is_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("not a float: {text:?}")),
    }
}

/// `name{a="x",b="y"} value` into its parts; panics on anything the format does not allow.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a name and a value");
    let name = &line[..name_end];
    assert!(is_name(name, true), "bad metric name {name:?} in {line:?}");
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // A label name, `=`, a quoted value with only \\, \" and \n escapes.
            let start = chars.peek().map(|(i, _)| *i).expect("label or }");
            if after[start..].starts_with('}') {
                chars.next();
                break;
            }
            let eq = after[start..].find('=').expect("label=") + start;
            let label = &after[start..eq];
            assert!(
                is_name(label, false),
                "bad label name {label:?} in {line:?}"
            );
            assert!(!label.starts_with("__"), "reserved label {label:?}");
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line:?}");
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other} in {line:?}"),
                    },
                    '\n' => panic!("raw line feed in {line:?}"),
                    c => value.push(c),
                }
            }
            assert!(
                labels.insert(label.to_owned(), value).is_none(),
                "label {label} twice in {line:?}"
            );
            match chars.next().expect(", or }").1 {
                ',' => {}
                '}' => break,
                other => panic!("unexpected {other:?} in {line:?}"),
            }
        }
        let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
        rest = &after[consumed..];
    }
    let value = rest.strip_prefix(' ').expect("one space before the value");
    // No timestamps are written: exactly one value.
    assert!(!value.contains(' '), "extra fields in {line:?}");
    Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value),
    }
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` belong to
/// the histogram.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).map(String::as_str) == Some("histogram")
        {
            return base;
        }
    }
    name
}

/// Parses and checks the exposition text as a strict reader of format 0.0.4 would.
fn parse(text: &str) -> Exposition {
    assert!(
        text.ends_with('\n'),
        "the last line must end with a line feed"
    );
    let mut types = BTreeMap::new();
    let mut helps = BTreeSet::new();
    let mut seen_samples = BTreeSet::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    for line in text.split_terminator('\n') {
        assert!(!line.is_empty(), "empty line");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name, true), "{line:?}");
            assert!(helps.insert(name.to_owned()), "HELP twice for {name}");
            assert!(!seen_samples.contains(name), "HELP after samples of {name}");
            let mut escaped = help.chars();
            while let Some(c) = escaped.next() {
                if c == '\\' {
                    assert!(
                        matches!(escaped.next(), Some('\\' | 'n')),
                        "bad escape in {line:?}"
                    );
                }
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(is_name(name, true), "{line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line:?}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "TYPE twice for {name}"
            );
            assert!(!seen_samples.contains(name), "TYPE after samples of {name}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let sample = parse_sample(line);
            let family = family_of(&sample.name, &types).to_owned();
            assert!(types.contains_key(&family), "no TYPE before {line:?}");
            if current.as_deref() != Some(family.as_str()) {
                assert!(
                    !finished.contains(&family),
                    "{family} is interleaved with another family"
                );
                if let Some(previous) = current.replace(family.clone()) {
                    finished.insert(previous);
                }
            }
            seen_samples.insert(family);
            samples.push(sample);
        }
    }
    Exposition { types, samples }
}

/// Checks every histogram: buckets in increasing `le`, cumulative, ending at `+Inf`, which
/// equals `_count`; a `_sum`. Returns how many series were checked.
fn check_histograms(exposition: &Exposition) -> usize {
    let mut checked = 0;
    for (name, kind) in &exposition.types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in exposition
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let mut labels = sample.labels.clone();
            let le = labels.remove("le").expect("a bucket without le");
            series
                .entry(labels)
                .or_default()
                .push((parse_value(&le), sample.value));
        }
        for (labels, buckets) in &series {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            for pair in buckets.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{name} {labels:?}: le not increasing"
                );
                assert!(
                    pair[0].1 <= pair[1].1,
                    "{name} {labels:?}: buckets not cumulative"
                );
            }
            let (last_le, last_count) = *buckets.last().unwrap();
            assert!(last_le.is_infinite(), "{name} {labels:?}: no +Inf bucket");
            let count = exposition
                .value(&format!("{name}_count"), &pairs)
                .unwrap_or_else(|| panic!("{name} {labels:?}: no _count"));
            assert_eq!(last_count, count, "{name} {labels:?}: +Inf != _count");
            let sum = exposition
                .value(&format!("{name}_sum"), &pairs)
                .unwrap_or_else(|| panic!("{name} {labels:?}: no _sum"));
            assert!(sum >= 0.0, "{name} {labels:?}: negative sum");
            if name == "showcase_http_request_duration_seconds" {
                assert_eq!(
                    exposition.value("showcase_http_requests_total", &pairs),
                    Some(count),
                    "{labels:?}: _count != showcase_http_requests_total"
                );
            }
            checked += 1;
        }
    }
    checked
}

/// `GET /metrics`, checked and parsed.
fn scrape(server: &Server) -> (String, Exposition) {
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let exposition = parse(&reply.body);
    for (name, kind) in &exposition.types {
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} without _total");
        }
    }
    // Every histogram series present is well formed. Whether any is present yet depends on
    // the requests answered so far (the `/proxy/` mount's health checks of this server's
    // own `/healthz` run on their own timer), so callers that sent requests assert that.
    check_histograms(&exposition);
    (reply.body, exposition)
}

#[test]
fn requests_through_several_mounts_move_the_counters_by_exactly_what_was_sent() {
    let server = Server::start();
    let (_, before) = scrape(&server);
    let mut browser = server.client();
    let csrf = browser.get("/auth/").csrf();
    let mut sent: Vec<(&str, &str, &str, f64)> = Vec::new();
    for _ in 0..3 {
        assert_eq!(server.get("/api/users").status, 200);
    }
    sent.push(("/api", "GET", "2xx", 3.0));
    for _ in 0..2 {
        assert_eq!(server.send("HEAD", "/api/users", &[], b"").status, 200);
    }
    sent.push(("/api", "HEAD", "2xx", 2.0));
    assert_eq!(server.get("/api/users/999999").status, 404);
    sent.push(("/api", "GET", "4xx", 1.0));
    for _ in 0..2 {
        assert_eq!(server.get("/soap/soap?wsdl").status, 200);
    }
    sent.push(("/soap", "GET", "2xx", 2.0));
    let query = server.get("/graphql/graphql?query=%7Bbooks%7Btitle%7D%7D");
    assert_eq!(query.status, 200, "{query:?}");
    sent.push(("/graphql", "GET", "2xx", 1.0));
    let job = server.send(
        "POST",
        "/jobs/jobs",
        &[("Content-Type", "application/json")],
        br#"{"kind":"echo","payload":{"n":1}}"#,
    );
    assert_eq!(job.status / 100, 2, "{job:?}");
    sent.push(("/jobs", "POST", "2xx", 1.0));
    assert_eq!(
        server.send("DELETE", "/soap/soap", &[], b"").status / 100,
        4
    );
    sent.push(("/soap", "DELETE", "4xx", 1.0));
    let login = browser.post_form(
        "/auth/login",
        &[
            ("username", "nobody"),
            ("password", "not the password"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(login.status, 401, "{login:?}");
    sent.push(("/auth", "GET", "2xx", 1.0));
    sent.push(("/auth", "POST", "4xx", 1.0));

    let (text, after) = scrape(&server);
    assert!(check_histograms(&after) > 0, "no histogram series:\n{text}");
    for (app, method, class, count) in sent {
        assert_eq!(
            after.requests(app, method, class) - before.requests(app, method, class),
            count,
            "{app} {method} {class}\n{text}"
        );
    }
    // The first scrape counts itself once answered; the proxy's health checks of
    // `/healthz` land on `/` too, so only a lower bound here.
    assert!(after.requests("/", "GET", "2xx") >= before.requests("/", "GET", "2xx") + 1.0);
    // Every mount has an in-flight gauge; this scrape is the one request in flight at `/`.
    for app in [
        "/auth", "/api", "/chat", "/graphql", "/soap", "/jobs", "/proxy", "/",
    ] {
        let gauge = after
            .value("showcase_http_requests_in_flight", &[("app", app)])
            .unwrap_or_else(|| panic!("no in-flight gauge for {app}\n{text}"));
        assert!(gauge >= 0.0, "{app}: {gauge}");
    }
    assert!(
        after
            .value("showcase_http_requests_in_flight", &[("app", "/")])
            .unwrap()
            >= 1.0
    );
    let outcome = |exposition: &Exposition, outcome: &str| {
        exposition
            .value("showcase_auth_logins_total", &[("outcome", outcome)])
            .unwrap_or_else(|| panic!("no login outcome {outcome}\n{text}"))
    };
    assert_eq!(
        outcome(&after, "failure") - outcome(&before, "failure"),
        1.0
    );
    assert_eq!(outcome(&after, "success"), outcome(&before, "success"));
    assert_eq!(outcome(&after, "throttled"), outcome(&before, "throttled"));
    for name in [
        "showcase_chat_connections",
        "showcase_chat_rooms",
        "showcase_graphql_websocket_operations",
        "showcase_auth_sessions",
        "process_start_time_seconds",
    ] {
        assert!(after.value(name, &[]).is_some(), "no {name}\n{text}");
    }
    let jobs: f64 = ["queued", "running", "retrying", "succeeded", "dead"]
        .iter()
        .map(|state| {
            after
                .value("showcase_jobs", &[("state", state)])
                .unwrap_or_else(|| panic!("no jobs in state {state}\n{text}"))
        })
        .sum();
    assert!(jobs >= 1.0, "the job sent is in no state\n{text}");
    if cfg!(target_os = "linux") {
        assert!(after.value("process_resident_memory_bytes", &[]).unwrap() > 1e6);
        assert!(after.value("process_cpu_seconds_total", &[]).unwrap() > 0.0);
        assert!(after.value("process_open_fds", &[]).unwrap() > 0.0);
    }
    assert_eq!(
        after.value(
            "showcase_build_info",
            &[("version", env!("CARGO_PKG_VERSION")), ("profile", "debug")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// A WebSocket to `path` on the server with `protocol`, from the server's own origin.
fn socket(server: &Server, path: &str, protocol: &str) -> tungstenite::WebSocket<TcpStream> {
    let mut request = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("origin", server.origin().parse().unwrap());
    headers.insert("sec-websocket-protocol", protocol.parse().unwrap());
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// Scrapes until `ready` holds for the exposition (at most about 10 s): the apps update
/// their state on their own tasks.
fn scrape_until(server: &Server, ready: impl Fn(&Exposition) -> bool) -> (String, Exposition) {
    for _ in 0..100 {
        let (text, exposition) = scrape(server);
        if ready(&exposition) {
            return (text, exposition);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (text, _) = scrape(server);
    panic!("the metrics never showed what was expected:\n{text}");
}

#[test]
fn open_chat_connections_rooms_and_graphql_subscriptions_show() {
    let server = Server::start();
    let mut chat = socket(&server, "/chat/ws?name=metrics", "chat.v1");
    chat.send(Message::text(r#"{"type":"join","room":"lobby"}"#))
        .unwrap();
    let (text, open) = scrape_until(&server, |m| {
        m.value("showcase_chat_rooms", &[]) == Some(1.0)
    });
    assert_eq!(
        open.value("showcase_chat_connections", &[]),
        Some(1.0),
        "{text}"
    );
    // The upgrade's 101 is counted for the chat mount.
    assert_eq!(open.requests("/chat", "GET", "1xx"), 1.0, "{text}");

    let mut graphql = socket(&server, "/graphql/graphql", "graphql-transport-ws");
    graphql
        .send(Message::text(r#"{"type":"connection_init"}"#))
        .unwrap();
    let _ack = graphql.read().unwrap();
    graphql
        .send(Message::text(
            r#"{"type":"subscribe","id":"1","payload":{"query":"subscription { bookAdded { title } }"}}"#,
        ))
        .unwrap();
    scrape_until(&server, |m| {
        m.value("showcase_graphql_websocket_operations", &[]) == Some(1.0)
    });
    drop(graphql);
    chat.close(None).unwrap();
    let _ = chat.read();
    scrape_until(&server, |m| {
        m.value("showcase_chat_connections", &[]) == Some(0.0)
            && m.value("showcase_chat_rooms", &[]) == Some(0.0)
            && m.value("showcase_graphql_websocket_operations", &[]) == Some(0.0)
    });
}

#[test]
fn promtool_accepts_the_exposition() {
    let Some(promtool) = serve::testing::peer("PROMTOOL") else {
        return;
    };
    let server = Server::start();
    for path in ["/api/users", "/soap/soap?wsdl", "/no-such-page", "/docs/"] {
        let _ = server.get(path);
    }
    let (text, _) = scrape(&server);
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition ---\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("promtool check metrics: ok ({} bytes)", text.len());
}
