#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Sends every payload of `tests/data/smuggling.txt` to the proxy as raw bytes and checks
//! both what the client gets and what the origin receives.

mod common;

use std::time::Duration;

use common::{start_proxy, start_recording_origin};
use proxy_core::{Framing, HeadLimits, check_request_head};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"{{") {
            let end = s[i..].find("}}").unwrap() + i;
            let inner = &s[i + 2..end];
            let (text, n) = inner.rsplit_once('*').unwrap();
            let piece = unescape(text);
            for _ in 0..n.parse::<usize>().unwrap() {
                out.extend_from_slice(&piece);
            }
            i = end + 2;
            continue;
        }
        if b[i] == b'\\' {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' => {
                    out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                    i += 2;
                }
                other => panic!("unknown escape \\{}", other as char),
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Parses what the origin received as strict HTTP/1.1 requests; returns the request
/// targets. A truncated final message is allowed only when `allow_truncated`.
fn origin_requests(mut bytes: &[u8], allow_truncated: bool) -> Result<Vec<String>, String> {
    let mut targets = Vec::new();
    while !bytes.is_empty() {
        let head = match check_request_head(bytes, &HeadLimits::default()) {
            Ok(head) => head,
            Err(e) => {
                return Err(format!(
                    "origin received a bad head ({e}): {:?}",
                    String::from_utf8_lossy(bytes)
                ));
            }
        };
        let line = String::from_utf8_lossy(&bytes[..head.head_len]).into_owned();
        targets.push(line.split(' ').nth(1).unwrap_or("").to_owned());
        bytes = &bytes[head.head_len..];
        match head.framing {
            Framing::None => {}
            Framing::Length(n) => {
                let n = n as usize;
                if bytes.len() < n {
                    return if allow_truncated {
                        Ok(targets)
                    } else {
                        Err("truncated body".into())
                    };
                }
                bytes = &bytes[n..];
            }
            Framing::Chunked => loop {
                let Some(lf) = bytes.iter().position(|b| *b == b'\n') else {
                    return if allow_truncated {
                        Ok(targets)
                    } else {
                        Err("truncated chunk".into())
                    };
                };
                let line = &bytes[..lf + 1];
                let size_text = line.strip_suffix(b"\r\n").ok_or("bare LF in chunk line")?;
                let size_text = size_text.split(|b| *b == b';').next().unwrap();
                let size = usize::from_str_radix(
                    std::str::from_utf8(size_text).map_err(|e| e.to_string())?,
                    16,
                )
                .map_err(|e| format!("chunk size {e}"))?;
                bytes = &bytes[lf + 1..];
                if size == 0 {
                    // Trailers until an empty line.
                    loop {
                        let Some(lf) = bytes.iter().position(|b| *b == b'\n') else {
                            return if allow_truncated {
                                Ok(targets)
                            } else {
                                Err("truncated trailers".into())
                            };
                        };
                        let empty = lf == 1 && bytes[0] == b'\r';
                        bytes = &bytes[lf + 1..];
                        if empty {
                            break;
                        }
                    }
                    break;
                }
                if bytes.len() < size + 2 {
                    return if allow_truncated {
                        Ok(targets)
                    } else {
                        Err("truncated chunk data".into())
                    };
                }
                if &bytes[size..size + 2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
                bytes = &bytes[size + 2..];
            },
        }
    }
    Ok(targets)
}

/// Statuses in what the proxy sent back.
fn statuses(response: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(response);
    // Bodies here never contain the status-line prefix, and a response may follow the
    // previous body without a line break.
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

async fn exchange(addr: std::net::SocketAddr, payload: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The peer may close early (after a 400) while we still write: ignore write errors.
    let _ = stream.write_all(payload).await;
    let mut response = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (response, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus() {
    let (origin, log) = start_recording_origin().await;
    let proxy = start_proxy(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false

[[pools]]
name = "app"
upstreams = [{{ address = "{origin}" }}]
max_retries = 0

[[routes]]
pool = "app"
"#
    ));
    let corpus = include_str!("data/smuggling.txt");
    let mut count = 0;
    let mut problems = Vec::new();
    for line in corpus
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let mut fields = line.splitn(3, '|');
        let (category, name, payload) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        let payload = unescape(payload);
        log.lock().unwrap().clear();
        let (response, closed) = exchange(proxy.addr, &payload).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        let received = log.lock().unwrap().clone();
        let got = statuses(&response);
        let parsed = origin_requests(&received, category == "abort");
        count += 1;
        let mut fail = |why: String| {
            problems.push(format!(
                "{name}: {why}; statuses {got:?}; origin got {:?}",
                String::from_utf8_lossy(&received)
            ))
        };
        match &parsed {
            Err(e) => fail(format!("ambiguous forward: {e}")),
            Ok(targets) if targets.iter().any(|t| t.contains("smuggled")) => {
                fail("smuggled request reached the origin".into())
            }
            Ok(_) => {}
        }
        match category {
            "reject" => {
                let first_bad = got.iter().position(|s| *s == 400 || *s == 431);
                if first_bad.is_none() || !closed {
                    fail(format!("expected 400/431 and close (closed: {closed})"));
                }
                // A pipelined valid request before the bad one may be answered first; the
                // bad one and anything after it never reach the origin.
                let forwarded = parsed.as_ref().map_or(0, Vec::len);
                if forwarded != first_bad.unwrap_or(0) {
                    fail(format!("{forwarded} request(s) forwarded"));
                }
            }
            "abort" => {
                if got.iter().any(|s| (200..300).contains(s)) {
                    fail("a broken body was answered 2xx".into());
                }
            }
            "ok" => {
                let forwarded = parsed.as_ref().map_or(0, Vec::len);
                if got.is_empty() || got.iter().any(|s| *s != 200) || forwarded != got.len() {
                    fail(format!(
                        "expected 200s matching {forwarded} forwarded request(s)"
                    ));
                }
                if String::from_utf8_lossy(&received)
                    .to_ascii_lowercase()
                    .contains("x-secret")
                {
                    fail("a Connection-named header was forwarded".into());
                }
            }
            other => panic!("unknown category {other}"),
        }
    }
    println!("{count} payloads");
    assert!(count >= 50, "corpus has only {count} payloads");
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
