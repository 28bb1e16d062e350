//! rest_core routing against a raw `matchit` lookup on the same table: the routes of GitHub's
//! REST API (data/github-rest-routes.txt, 393 routes on 264 paths). Each iteration routes
//! every route's concrete path once; rest-core also picks the method's handler (what a
//! server needs), raw matchit only finds the path. Two more groups time the requests whose
//! template has a parameter (339 of 393) and those without (54).

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
    // Both must route every request to the same template with the same parameters before
    // we time them (the differential check proper is fuzz/fuzz_targets/rest_core_router_matchit.rs).
    for ((method, path), (_, template)) in requests.iter().zip(&routes) {
        let expected = raw.at(path).expect("matchit finds every route");
        let RouteMatch::Found {
            template: found,
            params,
            ..
        } = ours.at(method, path)
        else {
            panic!("rest-core misses {method} {path}");
        };
        assert_eq!(found.as_str(), routes[*expected.value].1, "{path}");
        assert_eq!(found.as_str(), template.as_str());
        assert!(params.iter().eq(expected.params.iter()), "{path}");
    }
    let subsets: [(&str, Vec<&(Method, String)>); 3] = [
        ("github_393_routes", requests.iter().collect()),
        (
            "github_dynamic",
            requests
                .iter()
                .zip(&routes)
                .filter(|(_, (_, template))| template.contains('{'))
                .map(|(request, _)| request)
                .collect(),
        ),
        (
            "github_static",
            requests
                .iter()
                .zip(&routes)
                .filter(|(_, (_, template))| !template.contains('{'))
                .map(|(request, _)| request)
                .collect(),
        ),
    ];
    for (name, subset) in &subsets {
        // The group names the number of requests: routing_github_393_routes,
        // routing_github_339_dynamic, routing_github_54_static.
        let group_name = match *name {
            "github_393_routes" => format!("routing_{name}"),
            _ => format!(
                "routing_github_{}_{}",
                subset.len(),
                name.trim_start_matches("github_")
            ),
        };
        let mut group = c.benchmark_group(group_name);
        group.bench_function("matchit_raw", |b| {
            b.iter(|| {
                for (_, path) in subset {
                    black_box(raw.at(black_box(path.as_str())).ok());
                }
            })
        });
        group.bench_function("rest_core_router", |b| {
            b.iter(|| {
                for (method, path) in subset {
                    black_box(ours.at(black_box(method), black_box(path.as_str())));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, routing);
criterion_main!(benches);
