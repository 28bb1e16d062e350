//! What the peer and fault tests share: the skip-or-fail rule for a missing variable or
//! tool, the Python peer (`tests/peers/broker_peer.py`) and the check of what it read from
//! us, and servers of a test's own ([`OwnServer`]: Redis, NATS, Mosquitto) to kill and
//! restart.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker_core::Envelope;

pub(crate) const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/broker_peer.py");
pub(crate) const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Skips with a message, or fails under `CI=true`, when `what` is not available.
pub(crate) fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} must be available under CI=true"
    );
    println!("skipped: {what} is not available");
}

/// A non-empty environment variable, or [`missing`].
pub(crate) fn env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            missing(name);
            None
        }
    }
}

/// Runs the peer with `args` and returns its JSON lines.
pub(crate) fn peer(python: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(python).arg(PEER).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "peer {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What the peer printed for one of our messages: payload and headers as we sent them.
pub(crate) fn assert_is_ours(line: &serde_json::Value, sent: &[Envelope]) {
    let headers = &line["headers"];
    let id = headers["bk-id"].as_str().unwrap();
    let original = sent
        .iter()
        .find(|e| e.id().to_string() == id)
        .unwrap_or_else(|| panic!("peer read an unknown id {id}"));
    assert_eq!(
        line["payload"].as_str().unwrap().as_bytes(),
        original.payload().as_ref()
    );
    for (name, value) in original.headers().iter() {
        assert_eq!(
            headers[name].as_str(),
            Some(value),
            "header {name} in {line}"
        );
    }
    assert_eq!(headers["bk-attempt"].as_str(), Some("0"));
}

/// A server of the test's own (not the machine's shared one) on a free port, with its data
/// in a directory of its own, to kill and restart on the same port and data.
pub(crate) struct OwnServer {
    binary: String,
    args: Vec<String>,
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    child: Option<Child>,
}

/// The first of `candidates` that runs with `probe`, or [`missing`].
fn binary(candidates: &[&str], probe: &str) -> Option<String> {
    let found = candidates
        .iter()
        .find(|b| Command::new(b).arg(probe).output().is_ok())
        .map(|b| (*b).to_owned());
    if found.is_none() {
        missing(candidates.first().copied().unwrap_or("a server"));
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bk-{kind}-{}", broker_core::MessageId::new()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl OwnServer {
    /// `redis-server` with every write appended to its AOF and fsynced before the reply
    /// (`appendonly yes`, `appendfsync always`), no RDB snapshots.
    pub(crate) fn redis() -> Option<Self> {
        let binary = binary(&["redis-server"], "--version")?;
        let (port, dir) = (free_port(), scratch_dir("redis"));
        let args = [
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir.display().to_string(),
        ];
        Some(Self::start(binary, port, dir, &args))
    }

    /// `redis-server` with only a TLS port (no persistence): the PEM `ca`, server `cert`
    /// and `key`; with `require_client_cert`, clients must show a certificate `ca` signed.
    pub(crate) fn redis_tls(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
        require_client_cert: bool,
    ) -> Option<Self> {
        let binary = binary(&["redis-server"], "--version")?;
        let (port, dir) = (free_port(), scratch_dir("redis-tls"));
        let args = [
            "--bind".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-ca-cert-file".to_owned(),
            ca.display().to_string(),
            "--tls-cert-file".to_owned(),
            cert.display().to_string(),
            "--tls-key-file".to_owned(),
            key.display().to_string(),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
        ];
        Some(Self::start(binary, port, dir, &args))
    }

    /// `nats-server` with JetStream storing to its directory.
    pub(crate) fn nats() -> Option<Self> {
        let binary = binary(&["nats-server"], "--version")?;
        let (port, dir) = (free_port(), scratch_dir("nats"));
        let args = [
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-js",
            "-sd",
            &dir.display().to_string(),
        ];
        Some(Self::start(binary, port, dir, &args))
    }

    /// Mosquitto with persistence on, anonymous access and room for 100 000 queued
    /// messages per session. Check [`Self::mosquitto_saved`] after a [`Self::stop`].
    ///
    /// `user root`: started as root (a CI container), Mosquitto otherwise switches to the
    /// `mosquitto` user, which cannot write `mosquitto.db` into our root-owned scratch
    /// directory; it then logs "Error saving in-memory database ... Permission denied"
    /// (to the stderr we discard), and every session, with the messages it held, is gone
    /// after the restart. Started as any other user, Mosquitto ignores the option.
    pub(crate) fn mosquitto() -> Option<Self> {
        let binary = binary(&["mosquitto", "/usr/sbin/mosquitto"], "-h")?;
        let (port, dir) = (free_port(), scratch_dir("mosquitto"));
        let config = dir.join("mosquitto.conf");
        let mut file = std::fs::File::create(&config).unwrap();
        write!(
            file,
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n\
             allow_anonymous true\nmax_queued_messages 100000\nuser root\n",
            dir.display()
        )
        .unwrap();
        let args = ["-c".to_owned(), config.display().to_string()];
        Some(Self::start(binary, port, dir, &args))
    }

    /// Mosquitto with one TLS listener (no persistence, anonymous access): the PEM `ca`,
    /// server `cert` and `key`; with `require_client_cert`, clients must show a
    /// certificate `ca` signed.
    pub(crate) fn mosquitto_tls(
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
        require_client_cert: bool,
    ) -> Option<Self> {
        let binary = binary(&["mosquitto", "/usr/sbin/mosquitto"], "-h")?;
        let (port, dir) = (free_port(), scratch_dir("mosquitto-tls"));
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate {require_client_cert}\nallow_anonymous true\n\
                 persistence false\n",
                ca.display(),
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let args = ["-c".to_owned(), config.display().to_string()];
        Some(Self::start(binary, port, dir, &args))
    }

    fn start(binary: String, port: u16, dir: PathBuf, args: &[impl ToString]) -> Self {
        let mut own = Self {
            binary,
            args: args.iter().map(ToString::to_string).collect(),
            port,
            dir,
            child: None,
        };
        own.run();
        own
    }

    /// Starts the server (again, on the same port and data) and waits until it listens.
    pub(crate) fn run(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("our {} did not listen on {}", self.binary, self.port);
    }

    /// SIGKILL: no flush, no goodbye to clients.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Fails unless our Mosquitto saved its sessions on [`Self::stop`]: without the file a
    /// restart silently loses every session, and a test of resumed sessions proves nothing.
    pub(crate) fn mosquitto_saved(&self) {
        assert!(
            self.dir.join("mosquitto.db").is_file(),
            "our Mosquitto saved no mosquitto.db in {}: sessions will not survive the restart",
            self.dir.display()
        );
    }

    /// SIGTERM (the server saves what it keeps) and wait for it to exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deletes the keys of the shared Redis at `url` that start with `prefix`; returns them.
#[cfg(feature = "redis")]
pub(crate) async fn delete_redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    keys
}
