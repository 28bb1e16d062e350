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

use std::process::Command;

use serve::testing::{Process, peer};

#[test]
fn node_soap_calls_every_operation_over_both_versions() {
    let Some(modules) = peer("PEER_NODE_MODULES") else {
        return;
    };
    assert!(
        std::path::Path::new(&modules).join("soap").is_dir(),
        "{modules} has no `soap` package; rebuild it from .ci/package.json"
    );
    let mut binary = Command::new(env!("CARGO_BIN_EXE_soap-service"));
    binary.env("DEMO_PASSWORD", "peer-test-password");
    let server = Process::spawn(binary);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node_soap_client.js");
    let output = Command::new("node")
        .arg(script)
        .arg(server.origin())
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
