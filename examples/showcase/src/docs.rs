//! `/docs/`: every crate of the workspace on one page (what it does, its main types, its
//! features, a usage snippet, links to its API reference on docs.rs) and `/docs/CRATE`,
//! its README as HTML.
//!
//! Everything is read at build time (`include_str!` of each crate's README.md, Cargo.toml
//! and src/lib.rs), so the pages always match the crates the showcase was built with and
//! need nothing at run time. The README is rendered by `pulldown-cmark` (CommonMark and
//! tables; its default features, a command-line tool, are off) with three changes to what
//! it would write: raw HTML in the Markdown is shown as text, never passed through; a link
//! or image whose URL has a scheme other than `http`, `https` or `mailto` goes nowhere, an
//! image becomes a link (the pages load nothing from elsewhere), and a relative link points
//! into the repository; rustdoc's hidden lines (`# ...`) are left out of Rust code blocks,
//! and rustdoc's intra-doc links (`` [`Hub`] ``) lead to a docs.rs search for the name.

use std::fmt::Write as _;
use std::sync::LazyLock;

use pulldown_cmark::{BrokenLink, CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};
use serve::page::escape;

/// What one crate's page is made from.
struct Source {
    /// The folder under `crates/`.
    dir: &'static str,
    readme: &'static str,
    manifest: &'static str,
    lib: &'static str,
}

/// Reads each crate's README, manifest and root module at build time.
macro_rules! sources {
    ($($dir:literal),* $(,)?) => {
        [$(Source {
            dir: $dir,
            readme: include_str!(concat!("../../../crates/", $dir, "/README.md")),
            manifest: include_str!(concat!("../../../crates/", $dir, "/Cargo.toml")),
            lib: include_str!(concat!("../../../crates/", $dir, "/src/lib.rs")),
        }),*]
    };
}

/// Every crate under `crates/` (a test fails when one is missing here).
static SOURCES: [Source; 8] = sources!(
    "rest-core",
    "graphql-core",
    "soap-core",
    "ws-core",
    "auth-core",
    "cookie-jar",
    "proxy-core",
    "broker-core",
);

/// What the docs pages add to the shared look ([`serve::page::STYLE`]).
const HEAD: &str = "<style>\
table{border-collapse:collapse;width:100%;margin:.5rem 0}\
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}\
nav.crates ul{columns:2;padding-left:1.2rem;margin:.25rem 0}\
.types{line-height:1.9}.types a{text-decoration:none}\
.links a{margin-right:1rem}\
details>summary{cursor:pointer;color:#0b5cad}\
article.readme h2{border-bottom:1px solid var(--line);padding-bottom:.2rem}\
td code,li code{white-space:nowrap}\
</style>";

/// One crate, as the pages show it.
struct Crate {
    source: &'static Source,
    /// Its package name on crates.io (and docs.rs).
    package: String,
    /// Its library name (`use NAME::...`).
    lib: String,
    description: String,
    /// `(name, what it adds, on by default)`.
    features: Vec<(String, String, bool)>,
    /// Public types re-exported at the root, with the feature they need, if any.
    types: Vec<(String, Option<String>)>,
}

impl Crate {
    fn read(source: &'static Source) -> Self {
        let manifest = Manifest::read(source.manifest);
        let package = manifest.package.unwrap_or_else(|| source.dir.to_owned());
        let lib = manifest.lib.unwrap_or_else(|| package.replace('-', "_"));
        let features = manifest
            .features
            .into_iter()
            .map(|(name, doc)| {
                let default = manifest.default.contains(&name);
                (name, doc, default)
            })
            .collect();
        Self {
            source,
            package,
            lib,
            description: manifest.description.unwrap_or_default(),
            features,
            types: root_types(source.lib),
        }
    }

    /// The API reference on docs.rs.
    fn docs_rs(&self) -> String {
        format!("https://docs.rs/{}", self.package)
    }

    /// A docs.rs search for `name` in this crate.
    fn docs_rs_search(&self, name: &str) -> String {
        let query: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
        format!(
            "https://docs.rs/{}/latest/{}/?search={query}",
            self.package, self.lib
        )
    }
}

/// The pages, built on first use.
static CRATES: LazyLock<Vec<Crate>> = LazyLock::new(|| SOURCES.iter().map(Crate::read).collect());

/// The folder names of the crates the pages describe.
#[cfg(test)]
fn crate_dirs() -> Vec<&'static str> {
    SOURCES.iter().map(|source| source.dir).collect()
}

/// `/docs/`: every crate, with its summary, main types, features, a usage snippet and
/// links.
pub(crate) fn index_page() -> String {
    let crates = &*CRATES;
    let mut body = String::from(
        "<p>The library crates of backend-kit. Each one owns one topic of server-side web \
         development over the <code>http</code> crate's types and plain bytes; none picks a \
         web framework, an async runtime or a storage engine. The examples mounted on this \
         server are built from them. Each name leads to its README; the API reference of \
         each crate is on docs.rs.</p><nav class=crates aria-label=crates><ul>",
    );
    for krate in crates {
        let dir = escape(krate.source.dir);
        let _ = write!(body, "<li><a href=\"#{dir}\">{dir}</a></li>");
    }
    body.push_str("</ul></nav>");
    for krate in crates {
        let dir = escape(krate.source.dir);
        let _ = write!(
            body,
            "<section class=card id=\"{dir}\"><h2><a href=\"/docs/{dir}\">{dir}</a></h2>\
             <p>{}</p><p class=links><a href=\"/docs/{dir}\">README</a>\
             <a href=\"{}\">API reference on docs.rs</a></p>",
            escape(&krate.description),
            escape(&krate.docs_rs()),
        );
        if !krate.types.is_empty() {
            body.push_str("<h3>Main types</h3><p class=types>");
            for (i, (name, feature)) in krate.types.iter().enumerate() {
                if i > 0 {
                    body.push_str(", ");
                }
                let _ = write!(
                    body,
                    "<a href=\"{}\"><code>{}</code></a>",
                    escape(&krate.docs_rs_search(name)),
                    escape(name)
                );
                if let Some(feature) = feature {
                    let _ = write!(body, " <span class=muted>({})</span>", escape(feature));
                }
            }
            body.push_str("</p>");
        }
        body.push_str("<h3>Features</h3>");
        if krate.features.is_empty() {
            body.push_str("<p class=muted>None: everything is in the default build.</p>");
        } else {
            body.push_str(
                "<table><thead><tr><th>feature</th><th>default</th><th>adds</th></tr></thead>\
                 <tbody>",
            );
            for (name, doc, default) in &krate.features {
                let _ = write!(
                    body,
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(name),
                    if *default { "yes" } else { "no" },
                    inline_code(doc)
                );
            }
            body.push_str("</tbody></table>");
        }
        if let Some(snippet) = first_code_block(krate.source.readme) {
            let _ = write!(
                body,
                "<details><summary>Usage</summary><pre><code>{}</code></pre></details>",
                escape(&snippet)
            );
        }
        body.push_str("</section>");
    }
    serve::page::document_with_head("Crate documentation", HEAD, &body)
}

/// `text` escaped, with each `` `span` `` as `<code>`.
fn inline_code(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{}</code>", escape(part))
            } else {
                escape(part)
            }
        })
        .collect()
}

/// `/docs/DIR`: the README of the crate in `crates/DIR`, or `None` for no such crate.
pub(crate) fn crate_page(dir: &str) -> Option<String> {
    let krate = CRATES.iter().find(|krate| krate.source.dir == dir)?;
    let name = escape(krate.source.dir);
    // The README's own first heading is the crate name: the page's title says it.
    let readme = krate.source.readme;
    let readme = match readme.strip_prefix("# ") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, rest)| rest),
        None => readme,
    };
    let body = format!(
        "<p class=links><a href=\"/docs/#{name}\">All crates</a>\
         <a href=\"{}\">API reference on docs.rs</a></p><article class=readme>{}</article>",
        escape(&krate.docs_rs()),
        markdown(readme, krate)
    );
    Some(serve::page::document_with_head(
        &format!("{} README", krate.source.dir),
        HEAD,
        &body,
    ))
}

/// The Markdown `text` of `krate`'s README as HTML (see the module docs for what differs
/// from plain CommonMark).
fn markdown<'a>(text: &'a str, krate: &Crate) -> String {
    let resolve = |link: BrokenLink<'a>| -> Option<(CowStr<'a>, CowStr<'a>)> {
        let name = link.reference.strip_prefix('`')?.strip_suffix('`')?;
        let is_path = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        is_path.then(|| {
            (
                CowStr::from(krate.docs_rs_search(name)),
                CowStr::from(String::new()),
            )
        })
    };
    let parser = Parser::new_with_broken_link_callback(
        text,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
        Some(resolve),
    );
    let mut rust_block = false;
    let events = parser.filter_map(|event| match event {
        // No raw HTML from the Markdown: shown as the text it is.
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
        Event::Start(Tag::CodeBlock(kind)) => {
            rust_block = is_rust(&kind);
            Some(Event::Start(Tag::CodeBlock(kind)))
        }
        Event::End(TagEnd::CodeBlock) => {
            rust_block = false;
            Some(Event::End(TagEnd::CodeBlock))
        }
        Event::Text(code) if rust_block => {
            let shown = without_hidden_lines(&code);
            (!shown.is_empty()).then(|| Event::Text(shown.into()))
        }
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Some(Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(&dest_url, krate).into(),
            title,
            id,
        })),
        Event::End(TagEnd::Image) => Some(Event::End(TagEnd::Link)),
        other => Some(other),
    });
    let mut html = String::with_capacity(text.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// Whether a code block is Rust as rustdoc sees it: no language, `rust`, or rustdoc's
/// attributes (`ignore`, `no_run`, ...).
fn is_rust(kind: &CodeBlockKind<'_>) -> bool {
    match kind {
        CodeBlockKind::Indented => true,
        CodeBlockKind::Fenced(info) => {
            let first = info.split([',', ' ']).next().unwrap_or("");
            matches!(
                first,
                "" | "rust" | "ignore" | "no_run" | "should_panic" | "compile_fail"
            )
        }
    }
}

/// Rust code without rustdoc's hidden lines (`# ` and a lone `#`).
fn without_hidden_lines(code: &str) -> String {
    code.split_inclusive('\n')
        .filter(|line| {
            let trimmed = line.trim_start();
            !(trimmed.starts_with("# ") || trimmed.trim_end() == "#")
        })
        .collect()
}

/// `url` if it is safe to link to: `http`, `https`, `mailto` and fragments as they are,
/// a relative path into the crate's folder in the repository, anything else nowhere.
fn safe_url(url: &str, krate: &Crate) -> String {
    let lower = url.to_ascii_lowercase();
    if ["http://", "https://", "mailto:", "#"]
        .iter()
        .any(|allowed| lower.starts_with(allowed))
    {
        return url.to_owned();
    }
    let has_scheme = url
        .split(['/', '?', '#'])
        .next()
        .is_some_and(|first| first.contains(':'));
    if has_scheme || url.starts_with("//") {
        return "#".to_owned();
    }
    format!(
        "{}/blob/main/crates/{}/{}",
        env!("CARGO_PKG_REPOSITORY"),
        krate.source.dir,
        url.trim_start_matches("./")
    )
}

/// The text of the first fenced code block of a README, without rustdoc's hidden lines.
fn first_code_block(readme: &str) -> Option<String> {
    let mut code = None::<(bool, String)>;
    for event in Parser::new(readme) {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => code = Some((is_rust(&kind), String::new())),
            Event::Text(text) => {
                if let Some((_, code)) = &mut code {
                    code.push_str(&text);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                return code.map(|(rust, code)| {
                    if rust {
                        without_hidden_lines(&code)
                    } else {
                        code
                    }
                });
            }
            _ => {}
        }
    }
    None
}

/// What the docs read from a crate's Cargo.toml: a few keys, line by line (the manifests
/// are ours and written one key a line).
#[derive(Default)]
struct Manifest {
    package: Option<String>,
    lib: Option<String>,
    description: Option<String>,
    /// Features in order, each with its `## ` doc comment (the document-features style).
    features: Vec<(String, String)>,
    default: Vec<String>,
}

impl Manifest {
    fn read(text: &str) -> Self {
        let mut manifest = Self::default();
        let mut section = "";
        let mut doc = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line;
                doc.clear();
                continue;
            }
            if let Some(comment) = line.strip_prefix("##") {
                if !doc.is_empty() {
                    doc.push(' ');
                }
                doc.push_str(comment.trim());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            match section {
                "[package]" => match key {
                    "name" => manifest.package = quoted(value),
                    "description" => manifest.description = quoted(value),
                    _ => {}
                },
                "[lib]" if key == "name" => manifest.lib = quoted(value),
                "[features]" if !key.starts_with('#') && !key.starts_with('"') => {
                    if key == "default" {
                        manifest.default = value
                            .trim_matches(['[', ']'])
                            .split(',')
                            .filter_map(|item| quoted(item.trim()))
                            .collect();
                    } else {
                        manifest
                            .features
                            .push((key.to_owned(), std::mem::take(&mut doc)));
                    }
                }
                _ => {}
            }
            doc.clear();
        }
        manifest
    }
}

/// The string of a one-line TOML basic string, `"..."`, with `\"` and `\\` unescaped.
fn quoted(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\\\"", "\"").replace("\\\\", "\\"))
}

/// The types a crate's root module re-exports (`pub use a::{B, C};`): names in
/// `UpperCamelCase` (not constants, not functions), with the feature of a
/// `#[cfg(feature = "...")]` just above the statement.
fn root_types(lib: &str) -> Vec<(String, Option<String>)> {
    let mut types: Vec<(String, Option<String>)> = Vec::new();
    let mut feature = None;
    let mut statement: Option<String> = None;
    for line in lib.lines() {
        let line = line.trim();
        if let Some(current) = &mut statement {
            current.push(' ');
            current.push_str(line);
        } else if let Some(rest) = line.strip_prefix("#[cfg(feature = \"") {
            feature = rest.split('"').next().map(str::to_owned);
            continue;
        } else if let Some(rest) = line.strip_prefix("pub use ") {
            statement = Some(rest.to_owned());
        } else {
            feature = None;
            continue;
        }
        if let Some(done) = statement.take_if(|text| text.contains(';')) {
            let names = done.split([' ', '{', '}', ',', ';']).filter_map(|path| {
                let name = path.rsplit("::").next()?;
                let is_type = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && name.chars().any(|c| c.is_ascii_lowercase());
                is_type.then(|| name.to_owned())
            });
            for name in names {
                if !types.iter().any(|(known, _)| *known == name) {
                    types.push((name, feature.clone()));
                }
            }
            feature = None;
        }
    }
    types
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn ws_core() -> &'static Crate {
        CRATES.iter().find(|c| c.source.dir == "ws-core").unwrap()
    }

    #[test]
    fn raw_html_in_markdown_is_shown_as_text() {
        let html = markdown(
            "<script>alert(1)</script>\n\nText with <b onclick=x>inline</b> HTML.\n",
            ws_core(),
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b "), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }

    #[test]
    fn unsafe_links_and_images_lead_nowhere_and_relative_ones_into_the_repository() {
        let html = markdown(
            "[a](javascript:alert(1)) [b](data:text/html,x) ![c](http://x.test/i.png) \
             [d](../../docs/security.md) [e](https://example.test/\"q)\n",
            ws_core(),
        );
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("data:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a href=\"http://x.test/i.png\">c</a>"),
            "{html}"
        );
        assert!(
            html.contains("/blob/main/crates/ws-core/../../docs/security.md\">d</a>"),
            "{html}"
        );
        assert!(!html.contains("/\"q"), "{html}");
    }

    #[test]
    fn intra_doc_links_search_docs_rs_and_hidden_lines_are_left_out() {
        let html = markdown(
            "See [`Hub`] and [not code].\n\n```rust\n# use x;\nlet a = 1;\n#[derive(Debug)]\nstruct S;\n```\n",
            ws_core(),
        );
        assert!(
            html.contains("<a href=\"https://docs.rs/ws-core/latest/ws_core/?search=Hub\"><code>Hub</code></a>"),
            "{html}"
        );
        assert!(html.contains("[not code]"), "{html}");
        assert!(!html.contains("use x;"), "{html}");
        assert!(html.contains("#[derive(Debug)]"), "{html}");
    }

    #[test]
    fn manifests_give_package_library_description_and_documented_features() {
        let graphql = CRATES
            .iter()
            .find(|c| c.source.dir == "graphql-core")
            .unwrap();
        assert_eq!(graphql.package, "backend-kit-graphql-core");
        assert_eq!(graphql.lib, "graphql_core");
        let ws = ws_core();
        assert!(ws.description.contains("WebSocket"), "{}", ws.description);
        let tokio = ws
            .features
            .iter()
            .find(|(name, _, _)| name == "tokio")
            .unwrap();
        assert!(!tokio.1.is_empty() && !tokio.2, "{tokio:?}");
        assert!(
            ws.types
                .iter()
                .any(|(name, feature)| name == "Hub" && feature.is_none())
        );
        assert!(
            ws.types
                .iter()
                .any(|(name, feature)| name == "WebSocket" && feature.as_deref() == Some("tokio"))
        );
        assert!(!ws.types.iter().any(|(name, _)| name == "accept"));
        assert_eq!(crate_dirs().len(), CRATES.len());
    }
}
