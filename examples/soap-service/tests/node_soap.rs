//! node `soap` (npm) as a real client of the service: `createClientAsync` reads the WSDL from
//! the running server and calls every operation through the SOAP 1.1 port and the SOAP 1.2
//! port (`forceSoap12Headers`), with typed results, faults with detail and status, and
//! WS-Security UsernameToken (text and digest; wrong password and missing token refused).
//! Needs `PEER_NODE_MODULES` (node_modules built from `.ci/package.json`); `.ci/run` sets it.

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

fn node_modules() -> Option<String> {
    match std::env::var("PEER_NODE_MODULES") {
        Ok(dir) if !dir.is_empty() => Some(dir),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PEER_NODE_MODULES must be set under CI"
            );
            println!("skipped: PEER_NODE_MODULES is not set");
            None
        }
    }
}

#[test]
fn node_soap_calls_every_operation_over_both_versions() {
    let Some(modules) = node_modules() else {
        return;
    };
    assert!(
        std::path::Path::new(&modules).join("soap").is_dir(),
        "{modules} has no `soap` package; rebuild it from .ci/package.json"
    );
    let server = Server::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node_soap_client.js");
    let output = Command::new("node")
        .arg(script)
        .arg(&server.url)
        .arg("peer-test-password")
        .env("NODE_PATH", &modules)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node soap client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ok "), "{stdout}");
    println!("{stdout}");
}
