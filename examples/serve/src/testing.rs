//! Test support for the examples (feature `testing`, for dev-dependencies): call an [`App`]
//! in process, as axum's examples test with `oneshot`; run an example's binary as a child
//! process for what must be tested as a process (the announce line, signals, a peer client
//! in another language); and one rule for tests that need a peer or a service.
//!
//! ```
//! # use std::sync::Arc;
//! # use std::net::SocketAddr;
//! # struct Hello;
//! # impl serve::App for Hello {
//! #     fn handle(self: Arc<Self>, _: SocketAddr, _: http::Request<serve::Body>) -> serve::ResponseFuture {
//! #         Box::pin(async { http::Response::new(serve::full("hello\n")) })
//! #     }
//! # }
//! # tokio_test(async {
//! let app = Arc::new(Hello);
//! let reply = serve::testing::get(&app, "/").await;
//! assert_eq!(reply.status, 200);
//! assert_eq!(reply.body, "hello\n");
//! # });
//! # fn tokio_test(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;

use crate::{App, Body};

/// The peer address in-process calls come from.
pub const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// Answers one request in process, from [`PEER`], with the response body still streaming.
pub async fn oneshot<A: App + ?Sized>(app: &Arc<A>, request: Request<Body>) -> Response<Body> {
    Arc::clone(app).handle(PEER, request).await
}

/// Answers one request in process and reads the whole response.
pub async fn call<A: App + ?Sized>(app: &Arc<A>, request: Request<Body>) -> Reply {
    let response = oneshot(app, request).await;
    Reply::read(response).await
}

/// Answers one request in process as if it came from `peer` (a proxy in front of the app,
/// a dual-stack `[::ffff:a.b.c.d]` address) and reads the whole response.
pub async fn call_from<A: App + ?Sized>(
    app: &Arc<A>,
    peer: SocketAddr,
    request: Request<Body>,
) -> Reply {
    Reply::read(Arc::clone(app).handle(peer, request).await).await
}

/// Fills in the form of the page at `page` and submits it, in process: `GET page` from
/// [`PEER`], then `POST action` from `peer` with `fields` (form-encoded, without the
/// token), the page's CSRF token as `csrf`, the cookies the page set, and `headers`.
pub async fn submit<A: App + ?Sized>(
    app: &Arc<A>,
    page: &str,
    action: &str,
    fields: &str,
    peer: SocketAddr,
    headers: &[(&str, &str)],
) -> Reply {
    let shown = get(app, page).await;
    let cookie = shown.cookie().unwrap_or_default();
    let form = format!("{fields}&csrf={}", shown.csrf());
    let mut all = vec![
        ("cookie", cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    all.extend_from_slice(headers);
    call_from(app, peer, request(Method::POST, action, &all, form.into())).await
}

/// `GET path` in process.
pub async fn get<A: App + ?Sized>(app: &Arc<A>, path: &str) -> Reply {
    call(app, request(Method::GET, path, &[], Bytes::new())).await
}

/// `POST path` in process with a body of `content_type`.
pub async fn post<A: App + ?Sized>(
    app: &Arc<A>,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Reply {
    let headers = [("content-type", content_type)];
    call(app, request(Method::POST, path, &headers, body.into())).await
}

/// A request for in-process calls: `method path` with `headers`, `Host: localhost` unless
/// `headers` names one.
pub fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Bytes) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", "localhost");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(crate::full(body))
        .expect("a valid test request")
}

/// A whole response: status, headers in order, body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The header fields, names as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body's bytes (for bodies that are not text, such as compressed ones).
    pub bytes: Bytes,
}

impl Reply {
    /// Reads a response in full (a body error panics: this is a test).
    pub async fn read(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("the response body").to_bytes();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        Self::new(parts.status.as_u16(), headers, bytes)
    }

    fn new(status: u16, headers: Vec<(String, String)>, bytes: Bytes) -> Self {
        Self {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    /// Every value of header `name` (any case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Every cookie the reply sets, as one `Cookie` header value (`a=1; b=2`), if any.
    pub fn cookie(&self) -> Option<String> {
        let pairs: Vec<&str> = self
            .all("set-cookie")
            .into_iter()
            .filter_map(|value| value.split(';').next())
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The value of the page's form field `name` (`name="NAME" value="..."`), unescaped.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self.body.find(&marker)? + marker.len();
        let value = self.body.get(start..)?.split('"').next()?;
        Some(
            value
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    }

    /// The page's CSRF token (its form field `csrf`); panics without one.
    pub fn csrf(&self) -> String {
        self.hidden("csrf").expect("a csrf field")
    }
}

/// Sends one HTTP/1.1 request to `addr` over a fresh connection (`Host: addr`,
/// `Connection: close`, `Content-Length` of `body`) and reads the whole response, chunked
/// or not. Blocking, so that a test needs no runtime to talk to a child process.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(body).expect("write the body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_response(&raw, method == "HEAD")
}

/// [`send`] to an absolute `http://` URL (an OAuth client's requests come so).
pub fn send_url(url: &str, method: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, target) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .expect("a reachable authority")
        .next()
        .expect("an address");
    send(addr, method, target, headers, body)
}

/// A whole HTTP/1.1 response from its bytes (`head_only` for the answer to HEAD).
pub fn parse_response(raw: &[u8], head_only: bool) -> Reply {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a header section");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked && !head_only {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Reply::new(status, headers, Bytes::from(body))
}

/// The data of a `Transfer-Encoding: chunked` body (RFC 9112 section 7.1), whole.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size line");
        let size_line = String::from_utf8_lossy(&raw[..line_end]);
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("a hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return data;
        }
        data.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// An example's binary running as a child process on a free port, killed when dropped.
#[derive(Debug)]
pub struct Process {
    /// The child (for its id, or to wait for it).
    pub child: Child,
    /// The address from its `listening on http://ADDR` line.
    pub addr: SocketAddr,
    /// Kept open so that the child never writes to a closed pipe; the lines after the
    /// announce line are the test's to read.
    pub stdout: BufReader<ChildStdout>,
}

impl Process {
    /// Starts `binary` (`env!("CARGO_BIN_EXE_name")`) with `PORT=0` and `RUST_LOG=warn`;
    /// see [`Process::spawn`].
    pub fn start(binary: &str) -> Self {
        Self::spawn(Command::new(binary))
    }

    /// Starts `command` (its arguments and environment set by the caller) with `PORT=0`
    /// unless it sets `PORT`, `RUST_LOG=warn` unless it sets `RUST_LOG`, and waits for its
    /// first stdout line, `listening on http://ADDR` (or `https://`).
    pub fn spawn(mut command: Command) -> Self {
        let set = |name: &str| command.get_envs().any(|(key, _)| key == name);
        let (port, log) = (set("PORT"), set("RUST_LOG"));
        if !port {
            command.env("PORT", "0");
        }
        if !log {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the example binary");
        let mut stdout = BufReader::new(child.stdout.take().expect("its stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the announce line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|url| url.split_once("://"))
            .and_then(|(_, addr)| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            child,
            addr,
            stdout,
        }
    }

    /// `http://ADDR`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// [`send`] to this process.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        send(self.addr, method, path, headers, body)
    }

    /// `GET path` from this process.
    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    /// Sends SIGTERM (through `kill`) and waits up to `within` for the process to exit.
    #[cfg(unix)]
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        self.wait(within)
    }

    /// Waits up to `within` for the process to exit; panics if it is still running.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running {within:?} later");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a peer (a client or server in another language, a browser script) to completion
/// and returns its stdout; a failure panics with its stdout and stderr.
pub fn run(command: &mut Command) -> String {
    let output = command.output().expect("start the peer");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The value of `name`, which names a peer or a service a test needs (`PEER_PYTHON`,
/// `REDIS_URL`, ...). Unset or empty, the test is skipped with a message, and fails when
/// `CI=true`, where every peer must be there.
pub fn peer(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{name} must be set under CI=true"
            );
            println!("skipped: {name} is not set");
            None
        }
    }
}
