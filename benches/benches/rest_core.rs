//! rest_core routing against a raw `matchit` lookup on the same table: the routes of GitHub's
//! REST API (data/github-rest-routes.txt, 393 routes on 264 paths). Each iteration routes
//! every route's concrete path once; rest-core also picks the method's handler (what a
//! server needs), raw matchit only finds the path. A second group times only the requests
//! whose template has a parameter (339 of 393), where rest-core cannot skip the walk.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use rest_core::{RouteMatch, Router};

const ROUTES: &str = include_str!("../data/github-rest-routes.txt");

/// (method, template) pairs of the table.
fn routes() -> Vec<(Method, String)> {
    ROUTES
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

/// A concrete request path for a template: each `{param}` becomes a value.
fn concrete(template: &str) -> String {
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

fn routing(c: &mut Criterion) {
    let routes = routes();
    let mut ours = Router::new();
    let mut raw = matchit::Router::new();
    let mut seen = std::collections::HashSet::new();
    for (index, (method, template)) in routes.iter().enumerate() {
        ours.insert(method.clone(), template, index)
            .expect("no conflict");
        if seen.insert(template.clone()) {
            raw.insert(template.as_str(), index).expect("no conflict");
        }
    }
    let requests: Vec<(Method, String)> = routes
        .iter()
        .map(|(m, t)| (m.clone(), concrete(t)))
        .collect();
    // Both must find every request before we time them.
    for (method, path) in &requests {
        assert!(raw.at(path).is_ok(), "matchit misses {path}");
        assert!(
            matches!(ours.at(method, path), RouteMatch::Found { .. }),
            "rest-core misses {method} {path}"
        );
    }
    let mut group = c.benchmark_group("routing_github_393_routes");
    group.bench_function("matchit_raw", |b| {
        b.iter(|| {
            for (_, path) in &requests {
                black_box(raw.at(black_box(path.as_str())).ok());
            }
        })
    });
    group.bench_function("rest_core_router", |b| {
        b.iter(|| {
            for (method, path) in &requests {
                black_box(ours.at(black_box(method), black_box(path.as_str())));
            }
        })
    });
    group.finish();

    // The same table, but only the requests whose template has a parameter: these always
    // walk the tree, so this is rest-core's cost on top of the walk itself (the static fast
    // path cannot help, and its miss is paid).
    let dynamic: Vec<&(Method, String)> = requests
        .iter()
        .zip(&routes)
        .filter(|(_, (_, template))| template.contains('{'))
        .map(|(request, _)| request)
        .collect();
    let mut group = c.benchmark_group(format!("routing_github_{}_dynamic", dynamic.len()));
    group.bench_function("matchit_raw", |b| {
        b.iter(|| {
            for (_, path) in &dynamic {
                black_box(raw.at(black_box(path.as_str())).ok());
            }
        })
    });
    group.bench_function("rest_core_router", |b| {
        b.iter(|| {
            for (method, path) in &dynamic {
                black_box(ours.at(black_box(method), black_box(path.as_str())));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
