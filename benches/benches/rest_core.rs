//! rest_core routing against a raw `matchit` lookup on the same table: the routes of GitHub's
//! REST API (data/github-rest-routes.txt, 393 routes on 264 paths). Each iteration routes
//! every route's concrete path once; rest-core also picks the method's handler (what a
//! server needs), raw matchit only finds the path. A second group times only the requests
//! whose template has a parameter (339 of 393), where rest-core cannot skip the walk.

use std::hint::black_box;

use backend_kit_benches::{concrete_path, github_routes};
use criterion::{Criterion, criterion_group, criterion_main};
use http::Method;
use rest_core::{RouteMatch, Router};

fn routing(c: &mut Criterion) {
    let routes = github_routes();
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
        .map(|(m, t)| (m.clone(), concrete_path(t)))
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
