//! Benchmarks live in `benches/*.rs`; this library holds the inputs more than one of them
//! reads. See `README.md` beside this file for the method.

use http::Method;

/// GitHub's REST API routes (`data/github-rest-routes.txt`, 393 routes on 264 paths), as
/// (method, template) pairs.
///
/// # Panics
///
/// On a malformed line of the data file (bench input, checked in).
#[must_use]
pub fn github_routes() -> Vec<(Method, String)> {
    include_str!("../data/github-rest-routes.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (method, template) = line.split_once(' ').expect("METHOD template");
            (
                Method::from_bytes(method.as_bytes()).expect("method"),
                template.to_owned(),
            )
        })
        .collect()
}

/// A concrete request path for a template: each `{param}` becomes `octo42`, a catch-all
/// `{*rest}` becomes `docs/README.md`.
///
/// # Panics
///
/// On an unclosed `{` (bench input, checked in).
#[must_use]
pub fn concrete_path(template: &str) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        path.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let name = &rest[start + 1..end];
        path.push_str(if name.starts_with('*') {
            "docs/README.md"
        } else {
            "octo42"
        });
        rest = &rest[end + 1..];
    }
    path.push_str(rest);
    path
}

pub mod proc;
pub mod soap;
