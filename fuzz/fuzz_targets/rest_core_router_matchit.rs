//! Differential: rest-core's router and `matchit` (its reference) route any path to the same
//! template with the same parameters, on GitHub's REST API table and on a table of awkward
//! shapes (static beside parameter, suffixes, prefixes, catch-alls).
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use rest_core::{RouteMatch, Router, TrailingSlash};

type Tables = Vec<(Vec<String>, Router<usize>, matchit::Router<usize>)>;

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let github: Vec<String> = include_str!("../../benches/data/github-rest-routes.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            line.split_once(' ')
                .map(|(_, template)| template.to_owned())
        })
        .collect();
    let shapes: Vec<String> = [
        "/",
        "/users/me",
        "/users/{id}",
        "/users/{id}/posts/{post_id}",
        "/files/{*path}",
        "/img/{name}.png",
        "/img/{name}.tar.gz",
        "/img/{name}",
        "/v{version}/status",
        "/v{version}",
        "/{page}",
        "/dl/file-{*rest}",
        "/dl/{name}",
        "/x/{{y}}",
    ]
    .map(str::to_owned)
    .to_vec();
    [github, shapes]
        .into_iter()
        .map(|templates| {
            let mut unique: Vec<String> = Vec::new();
            for template in templates {
                if !unique.contains(&template) {
                    unique.push(template);
                }
            }
            let mut ours = Router::new().with_trailing_slash(TrailingSlash::Strict);
            let mut reference = matchit::Router::new();
            for (index, template) in unique.iter().enumerate() {
                ours.insert(Method::GET, template, index)
                    .expect("rest-core accepts");
                reference
                    .insert(template.as_str(), index)
                    .expect("matchit accepts");
            }
            (unique, ours, reference)
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for (templates, ours, reference) in TABLES.iter() {
        let expected = reference.at(path).ok().map(|found| {
            let params: Vec<(&str, &str)> = found.params.iter().collect();
            (templates[*found.value].as_str(), params)
        });
        let got = match ours.at(&Method::GET, path) {
            RouteMatch::Found {
                template, params, ..
            } => Some((template.as_str(), params.iter().collect::<Vec<_>>())),
            _ => None,
        };
        assert_eq!(got, expected, "{path:?}");
    }
});
