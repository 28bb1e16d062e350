#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! schemathesis (the real peer) against the running example: every check, a fixed seed,
//! 100 examples per operation, and zero failures. The statuses added to schemathesis'
//! defaults are explained in tests/schemathesis.toml.

mod support;

use std::path::Path;
use std::process::Command;

#[test]
fn schemathesis_finds_no_failures() {
    let Some(python) = serve::testing::peer("PEER_PYTHON") else {
        return;
    };
    let Some(server) = support::Server::start() else {
        return;
    };
    let st = Path::new(&python).with_file_name("st");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let report = std::env::temp_dir().join(format!("rest-api-schemathesis-{}", std::process::id()));
    let output = Command::new(&st)
        .args(["--config-file", config, "run"])
        .arg(format!("{}/openapi.json", server.url()))
        .args([
            "--checks",
            "all",
            "--seed",
            "42",
            "--max-examples",
            "100",
            // One worker: the same seed then gives the same run.
            "--workers",
            "1",
            "--report-dir",
        ])
        .arg(&report)
        // Fresh Idempotency-Key values, as a real client sends (see the hooks file).
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
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
    let summary = stdout
        .lines()
        .rev()
        .find(|line| line.contains("passed") || line.contains("failures"))
        .unwrap_or("");
    assert!(
        stdout.contains("Tested: 12"),
        "every operation was tested:\n{stdout}"
    );
    assert!(!stdout.contains("failures"), "{summary}");
    println!("schemathesis: {summary}");
}
