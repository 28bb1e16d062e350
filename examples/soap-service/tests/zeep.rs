//! zeep (PyPI) as a real client of the service: the WSDL from the running server, every
//! operation over SOAP 1.1 and 1.2, typed results and faults with detail, UsernameToken
//! text and digest, a wrong password and a replayed nonce refused.
//! Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`); `.ci/run` sets it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_soap-service"))
            .env("PORT", "0")
            .env("DEMO_PASSWORD", "peer-test-password")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_owned();
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<String> {
    match std::env::var("PEER_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PEER_PYTHON must be set under CI"
            );
            println!("skipped: PEER_PYTHON is not set");
            None
        }
    }
}

#[test]
fn zeep_calls_every_operation_over_both_versions() {
    let Some(python) = python() else { return };
    let server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zeep_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&server.url)
        .arg("peer-test-password")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "zeep client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ok "), "{stdout}");
    println!("{stdout}");
}
