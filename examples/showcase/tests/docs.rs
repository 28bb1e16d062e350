//! Issue 22, "Also expected": the crate documentation at `/docs/`. Every crate under
//! `crates/` is listed (the folder is read here, so a new crate the page does not know
//! fails this test) with a README page of its own; the landing page links the docs and
//! the metrics as live; and headless Chromium reads both as a user would.

// Integration tests: a failed expectation should panic with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::Path;

use support::{Chromium, Server, landing_row};

/// The crate folders under `crates/`.
fn crate_dirs() -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates");
    let mut dirs: Vec<String> = std::fs::read_dir(&crates)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "{dirs:?}");
    dirs
}

#[test]
fn the_docs_page_lists_every_crate_and_each_readme_is_a_page() {
    let server = Server::start();
    let page = server.get("/docs/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<title>Crate documentation</title>"));
    assert!(page.body.contains(r#"<a id=back href="/">"#), "no way back");
    // Offline: nothing is loaded from elsewhere.
    for tag in ["<script src", "<link rel=stylesheet", "<img"] {
        assert!(!page.body.contains(tag), "{tag} in /docs/");
    }
    for dir in crate_dirs() {
        let manifest = std::fs::read_to_string(format!(
            "{}/../../crates/{dir}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let package = manifest
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap();
        let card = page
            .body
            .split(&format!(r#"<section class=card id="{dir}">"#))
            .nth(1)
            .unwrap_or_else(|| panic!("{dir} is not on /docs/"));
        let card = &card[..card.find("</section>").unwrap()];
        assert!(
            card.contains(&format!(r#"<a href="https://docs.rs/{package}">"#)),
            "{dir}: no docs.rs link: {card}"
        );
        assert!(card.contains("<h3>Features</h3>"), "{dir}");
        assert!(card.contains("<h3>Main types</h3>"), "{dir}");
        assert!(
            card.contains("<summary>Usage</summary><pre><code>"),
            "{dir}"
        );

        let readme = server.get(&format!("/docs/{dir}"));
        assert_eq!(readme.status, 200, "/docs/{dir}");
        assert!(
            readme
                .body
                .contains(&format!("<title>{dir} README</title>")),
            "{dir}"
        );
        // The README's sections are headings of the page.
        let source = std::fs::read_to_string(format!(
            "{}/../../crates/{dir}/README.md",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let section = source
            .lines()
            .find_map(|line| line.strip_prefix("## "))
            .unwrap_or_else(|| panic!("{dir}'s README has no section"));
        let section = section.replace('`', "");
        let text = support::unescape(&readme.body.replace("<code>", "").replace("</code>", ""));
        assert!(
            text.contains(&format!("<h2>{section}</h2>")),
            "{dir}: no heading {section:?}"
        );
        assert!(readme.body.contains("<table>"), "{dir}: no table rendered");
        assert!(!readme.body.contains("<script"), "{dir}: a script");
    }
    assert_eq!(server.get("/docs").status, 308);
    assert_eq!(server.get("/docs/no-such-crate").status, 404);
}

#[test]
fn the_landing_page_links_the_docs_and_the_metrics_as_live() {
    let server = Server::start();
    let landing = server.get("/");
    for (id, href) in [("docs", "/docs/"), ("metrics", "/metrics")] {
        let row = landing_row(&landing.body, id);
        assert!(
            row.contains(r#"<td class="status live">live</td>"#),
            "{row}"
        );
        assert!(row.contains(&format!(r#"<a href="{href}">"#)), "{row}");
    }
}

/// `/docs/`, a README and `/metrics` in headless Chromium, from the landing page's links;
/// screenshots are written to `CARGO_TARGET_TMPDIR/showcase-docs*.png` and
/// `showcase-metrics.png`.
#[test]
fn chromium_reads_the_docs_and_the_metrics() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let server = Server::start();
    chromium.run(
        "docs_browser.js",
        &server,
        &[
            "showcase-docs.png",
            "showcase-docs-ws-core.png",
            "showcase-metrics.png",
        ],
    );
}
