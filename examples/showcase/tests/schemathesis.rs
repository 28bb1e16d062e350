//! schemathesis against the REST API as mounted in the showcase (`/api`): the document at
//! `/api/openapi.json` names `/api` as its server, so every generated request goes through
//! the showcase's dispatch. Same checks, seed and accepted statuses as
//! examples/rest-api/tests/schemathesis.rs (its config and hooks files are reused).
//! Needs `PEER_PYTHON` (a Python with `.ci/requirements.txt`); skipped without it, except
//! under CI, where that is a failure.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn schemathesis_finds_no_failures_under_the_api_prefix() {
    let Some(python) = serve::testing::peer("PEER_PYTHON") else {
        return;
    };
    let server = support::Server::start();
    let st = Path::new(&python).with_file_name("st");
    let rest_api_tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../rest-api/tests");
    let report = std::env::temp_dir().join(format!("showcase-schemathesis-{}", std::process::id()));
    let output = Command::new(&st)
        .args([
            "--config-file",
            &format!("{rest_api_tests}/schemathesis.toml"),
            "run",
        ])
        .arg(format!("{}/api/openapi.json", server.origin()))
        .args([
            "--checks",
            "all",
            "--seed",
            "42",
            "--max-examples",
            "100",
            "--workers",
            "1",
            "--report-dir",
        ])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", rest_api_tests)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let _ = std::fs::remove_dir_all(&report);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Tested: 12"),
        "every operation was tested:\n{stdout}"
    );
    assert!(!stdout.contains("failures"), "{stdout}");
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.contains("passed"))
        .unwrap_or("");
    println!("schemathesis: {summary}");
}
