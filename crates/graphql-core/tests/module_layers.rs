#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! graphql-core's modules are layered (see the crate README): each top-level module sits in
//! one layer and imports only from its own layer or those below, and no two top-level
//! modules import each other, directly or through others. This test reads the source files
//! and fails on an import from a layer above, on a cycle, and on a module that no layer
//! lists (a new module must be placed).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first, and the top-level modules (files or folders under `src/`) in
/// each.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "error",
            "cache_control",
            "names",
            "response",
            "typed_object",
            "resolver",
            "lexer",
            "parser",
            "literal",
            "document",
            "document_cache",
            "limits",
            "upload",
        ],
    ),
    ("types", &["types", "coerce"]),
    ("schema", &["schema", "sdl_directives", "federation"]),
    ("validation", &["validation"]),
    ("execution", &["execution", "subscription", "dataloader"]),
    (
        "transports",
        &[
            "over_http",
            "transport_ws",
            "transport_sse",
            "persisted",
            "multipart",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn files(dir: &Path, top: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            files(&path, Some(top.unwrap_or(&stem)), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((top.unwrap_or(&stem).to_owned(), path));
        }
    }
}

/// The code of a file without comments (doc links name paths that are not imports) and
/// without its `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first path segment of each item of a `{...}` group starting at `text` (after `{`).
fn group_heads(text: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.push(identifier(text[start..i].trim_start()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.push(identifier(text[start..i].trim_start()));
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.retain(|h| !h.is_empty());
    heads
}

/// The names the crate root re-exports (`pub use module::{A, B}`), with their module: a
/// `crate::Schema` path depends on `schema` as much as `crate::schema::Schema` does.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use ") else {
            continue;
        };
        let path = &statement[at + "pub use ".len()..];
        let module = identifier(path.trim_start()).to_owned();
        let items = match path.find('{') {
            Some(open) => group_heads(&path[open + 1..])
                .into_iter()
                .map(str::to_owned)
                .collect(),
            None => vec![path.rsplit("::").next().unwrap().trim().to_owned()],
        };
        for item in items {
            names.insert(item, module.clone());
        }
    }
    names
}

/// The top-level modules a file's code names through `crate::` (`super::` stays inside a
/// top-level module: no top-level file uses it to reach the crate root).
fn imports(code: &str, roots: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let heads = if let Some(group) = rest.strip_prefix('{') {
            group_heads(group)
        } else {
            vec![identifier(rest)]
        };
        for head in heads {
            match roots.get(head) {
                Some(module) => found.insert(module.clone()),
                None => found.insert(head.to_owned()),
            };
        }
    }
    found
}

/// Top-level module -> the top-level modules it imports (itself left out).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let roots = reexports(&code(&src.join("lib.rs")));
    let mut all = Vec::new();
    files(&src, None, &mut all);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (top, path) in all {
        if top == "lib" {
            continue;
        }
        let mut used = imports(&code(&path), &roots);
        used.remove(&top);
        graph.entry(top).or_default().extend(used);
    }
    graph
}

#[test]
fn every_module_is_in_a_layer() {
    let unplaced: Vec<_> = graph()
        .into_keys()
        .filter(|m| layer_of(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS and to the README): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (module, used) in graph() {
        let Some(own) = layer_of(&module) else {
            continue;
        };
        for import in used {
            match layer_of(&import) {
                Some(layer) if layer > own => wrong.push(format!(
                    "{module} ({}) imports {import} ({})",
                    LAYERS[own].0, LAYERS[layer].0
                )),
                Some(_) => {}
                None => wrong.push(format!("{module} imports {import}, which is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn top_level_modules_import_each_other_in_no_cycle() {
    let graph = graph();
    // Depth-first search for a back edge; reports the cycle's path.
    fn visit<'g>(
        node: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The reader itself: it must see the imports it is meant to police.
#[test]
fn the_reader_finds_imports_in_every_form() {
    let roots = reexports("pub use schema::{Schema, SchemaBuilder};\npub use limits::Limits;");
    let found = imports(
        "use crate::{coerce::x, types::{A, B}};\nuse super::names;\nfn f() { crate::execution::run(); crate::Schema::build(); }\nlet my_crate::error = 1;",
        &roots,
    );
    let expected: BTreeSet<String> = ["coerce", "types", "execution", "schema"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(found, expected);
}
