//! Path matching with parameters: lookup, percent-decoding and typed extraction of any path.
#![no_main]

use std::sync::LazyLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use rest_core::{RouteMatch, Router};

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Ids {
    id: u64,
    post_id: Option<i64>,
}

static ROUTER: LazyLock<Router<u8>> = LazyLock::new(|| {
    let mut router = Router::new();
    for (method, template) in [
        (Method::GET, "/"),
        (Method::GET, "/users"),
        (Method::POST, "/users"),
        (Method::GET, "/users/{id}"),
        (Method::DELETE, "/users/{id}"),
        (Method::GET, "/users/{id}/posts/{post_id}"),
        (Method::GET, "/users/me"),
        (Method::GET, "/files/{*path}"),
        (Method::GET, "/img/{name}.png"),
    ] {
        let _ = router.insert(method, template, 0);
    }
    router
});

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for method in [Method::GET, Method::HEAD, Method::PUT, Method::OPTIONS] {
        if let RouteMatch::Found { params, .. } = ROUTER.at(&method, path) {
            for (name, _) in params.iter() {
                let _ = params.get(name);
                let _ = params.parse::<u64>(name);
            }
            let _ = params.deserialize::<Ids>();
        }
    }
});
