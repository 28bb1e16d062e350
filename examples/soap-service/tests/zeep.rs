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

use std::process::Command;

use serve::testing::{Process, peer};

#[test]
fn zeep_calls_every_operation_over_both_versions() {
    let Some(python) = peer("PEER_PYTHON") else {
        return;
    };
    let mut binary = Command::new(env!("CARGO_BIN_EXE_soap-service"));
    binary.env("DEMO_PASSWORD", "peer-test-password");
    let server = Process::spawn(binary);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zeep_client.py");
    let stdout = serve::testing::run(
        Command::new(python)
            .arg(script)
            .arg(server.origin())
            .arg("peer-test-password"),
    );
    assert!(stdout.contains("ok "), "{stdout}");
    println!("{stdout}");
}
