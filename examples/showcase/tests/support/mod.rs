//! Starts the showcase binary on an ephemeral port, and a small HTTP/1.1 client with a
//! cookie jar (what a browser would keep for the origin).
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

pub use serve::testing::Reply;
use serve::testing::{Process, send};

/// A showcase process that is killed when the test ends, pass or fail.
pub struct Server(Process);

impl Server {
    /// The showcase on its embedded defaults: `REDIS_URL`, `DATABASE_URL` and `NATS_URL` (which CI
    /// sets for the tests that want them) are not passed on, so that tests never share
    /// state through Redis or a database, and one run's users never meet the next's.
    pub fn start() -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_showcase"));
        command
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL");
        Self(Process::spawn(command))
    }

    /// The showcase with its shared state in the Redis at `url`, under `prefix` (unique per
    /// test run, so that runs and tests do not meet on the shared Redis), and `env` (the
    /// task queue's broker is Redis Streams unless `env` names a `NATS_URL`).
    pub fn start_shared(url: &str, prefix: &str, env: &[(&str, &str)]) -> Self {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_showcase"));
        command
            .env("REDIS_URL", url)
            .env("REDIS_PREFIX", prefix)
            .env_remove("DATABASE_URL")
            .env_remove("NATS_URL");
        command.envs(env.iter().copied());
        Self(Process::spawn(command))
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            cookies: BTreeMap::new(),
        }
    }
}

impl Deref for Server {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

/// What the showcase's tests read from a reply beyond [`Reply`]'s own.
pub trait ReplyExt {
    fn json(&self) -> serde_json::Value;
    /// `Location` as a path on this server (absolute URLs to it are cut to their path).
    fn location_path(&self, origin: &str) -> String;
}

impl ReplyExt for Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", self.body))
    }

    fn location_path(&self, origin: &str) -> String {
        let location = self
            .header("location")
            .unwrap_or_else(|| panic!("no Location in {self:?}"));
        location.strip_prefix(origin).unwrap_or(location).to_owned()
    }
}

/// One browser: requests over fresh connections, cookies kept by name.
pub struct Client {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let cookie = (!self.cookies.is_empty()).then(|| {
            let pairs: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            pairs.join("; ")
        });
        let mut all = headers.to_vec();
        if let Some(cookie) = &cookie {
            all.push(("Cookie", cookie));
        }
        let reply = send(self.addr, method, path, &all, body);
        for value in reply.all("set-cookie") {
            let pair = value.split(';').next().unwrap_or_default();
            let (cookie, content) = pair.split_once('=').expect("name=value");
            if value.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(cookie);
            } else {
                self.cookies.insert(cookie.to_owned(), content.to_owned());
            }
        }
        reply
    }

    pub fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, &[], b"")
    }

    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    pub fn send_json(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        json: &serde_json::Value,
    ) -> Reply {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        self.send(method, path, &all, json.to_string().as_bytes())
    }
}

/// HTML text with its entities (`&lt;`, `&gt;`, `&quot;`, `&#39;`, `&amp;`) turned back into
/// characters.
pub fn unescape(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text of every `<pre class="curl"><code>` block of the landing page, unescaped.
pub fn curl_samples(html: &str) -> Vec<String> {
    html.split(r#"<pre class="curl"><code>"#)
        .skip(1)
        .map(|rest| unescape(rest.split("</code>").next().unwrap()))
        .collect()
}

/// The landing page's `<tr id="ID">` row, up to its `</tr>`.
pub fn landing_row<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!(r#"<tr id="{id}">"#))
        .unwrap_or_else(|| panic!("no row {id}"));
    let row = &page[start..];
    &row[..row.find("</tr>").unwrap()]
}

/// Headless Chromium through node and playwright-core (`PEER_NODE_MODULES`,
/// `CHROMIUM_PATH`); `None` skips the test (a failure under `CI=true`).
pub struct Chromium {
    modules: String,
    chromium: String,
}

impl Chromium {
    pub fn find() -> Option<Self> {
        let modules = serve::testing::peer("PEER_NODE_MODULES")?;
        let chromium = serve::testing::peer("CHROMIUM_PATH")?;
        Some(Self { modules, chromium })
    }

    /// Runs `tests/SCRIPT` with the server's origin and `screenshots` (paths under the
    /// target's temporary directory, removed first), checks it says "all checks passed"
    /// and that each screenshot is a PNG, and prints their paths.
    pub fn run(&self, script: &str, server: &Server, screenshots: &[&str]) {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let paths: Vec<std::path::PathBuf> =
            screenshots.iter().map(|name| dir.join(name)).collect();
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        let stdout = serve::testing::run(
            std::process::Command::new("node")
                .arg(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("tests")
                        .join(script),
                )
                .arg(server.origin())
                .args(&paths)
                .env("NODE_PATH", &self.modules)
                .env("CHROMIUM_PATH", &self.chromium),
        );
        assert!(stdout.contains("all checks passed"), "{stdout}");
        for path in &paths {
            let png = std::fs::read(path).unwrap();
            assert!(
                png.starts_with(b"\x89PNG"),
                "{} is not a PNG",
                path.display()
            );
            println!("screenshot: {}", path.display());
        }
    }
}

/// A `redis-server` of the test's own on a loopback port, killed when dropped: fault tests
/// stop and start it, never the machine's shared Redis.
pub struct OwnRedis {
    child: std::process::Child,
    pub port: u16,
}

impl OwnRedis {
    /// On a free port; with `aof`, every write is appended to the AOF in that directory
    /// before it is answered (`appendfsync always`), so a restart on the same directory
    /// keeps it; without, nothing is persisted.
    pub fn start(aof: Option<&std::path::Path>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port, aof)
    }

    /// On `port` (the one a killed instance had, to restart it); see [`OwnRedis::start`].
    pub fn start_on(port: u16, aof: Option<&std::path::Path>) -> Self {
        let mut command = std::process::Command::new("redis-server");
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ]);
        match aof {
            Some(dir) => {
                command
                    .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                    .arg(dir);
            }
            None => {
                command.args(["--appendonly", "no"]);
            }
        }
        let child = command
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (installed with Redis) starts");
        // Up means answering: a restarted server accepts connections while it still loads
        // its AOF (and answers LOADING until then).
        let up = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            pong(port)
        });
        assert!(up, "redis-server did not start on port {port}");
        Self { child, port }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no flush on the way out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the Redis on `port` answers `PING` with `+PONG`.
fn pong(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
