#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Differential check: rest-core's router and `matchit` (the router it replaced, kept as
//! the reference) route the same paths to the same templates with the same parameters.
//! The paths are the templates' own concrete forms with awkward parameter values, plus
//! pseudo-random paths built from the tables' segments.

use http::Method;
use rest_core::{RouteMatch, Router, TrailingSlash};

/// Tables that both routers accept, one per shape family.
const TABLES: &[&[&str]] = &[
    // A REST API: statics beside parameters, deep nesting, a catch-all at the end.
    &[
        "/",
        "/users",
        "/users/",
        "/users/me",
        "/users/{id}",
        "/users/{id}/posts",
        "/users/{id}/posts/{post_id}",
        "/users/{id}/posts/{post_id}/comments/{comment_id}",
        "/users/me/posts/latest",
        "/orgs/{org}/members/{user}",
        "/orgs/{org}/teams",
        "/orgs/{org}",
        "/repos/{owner}/{repo}",
        "/repos/{owner}/{repo}/git/refs/{*ref}",
        "/repos/{owner}/{repo}/contents/{*path}",
        "/repos/{owner}/{repo}/issues",
        "/repos/{owner}/{repo}/issues/{number}",
        "/repos/{owner}/{repo}/issues/comments",
        "/files/{*path}",
        "/static/css/site.css",
        "/a//b",
    ],
    // A catch-all at the root beside statics (matchit's documented example).
    &["/", "/about", "/about/team", "/{*filepath}"],
    // Parameters with suffixes beside a standalone one.
    &[
        "/img/{name}.png",
        "/img/{name}.jpg",
        "/img/{name}.tar.gz",
        "/img/{name}",
        "/img/logo.png",
        "/img/{name}/meta",
    ],
    // Parameters with prefixes beside a standalone one and a catch-all.
    &[
        "/v{version}/status",
        "/v{version}",
        "/ver{version}",
        "/api-{name}",
        "/{page}",
        "/static",
        "/x/{*rest}",
        "/x/y",
    ],
    // A prefix and a suffix, escapes.
    &["/pre-{id}-post", "/{{literal}}", "/shop/{item}"],
    // (`/{{{name}}}` is left out: matchit reads the parameter's name as `name}`, rest-core
    // as `name` followed by a literal `}`.)
    &["/{{literal}}", "/{{x}}/{id}", "/{{x}}/{{y}}"],
    // A catch-all with a prefix.
    &["/dl/file-{*rest}", "/dl/{name}", "/dl/index"],
];

const VALUES: &[&str] = &[
    "1",
    "octo42",
    "a.png",
    "x.tar.gz",
    "..%2F..",
    "%FF",
    "me",
    "v2",
    "pre-x-post",
    "-post",
    "pre-",
    "{literal}",
    "file-",
    "file-a/b",
    "a/b/c",
    "",
    "caf%C3%A9",
    "static",
    "latest",
    ".png",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A template's concrete path with `value` for every parameter (a catch-all keeps it whole).
fn concrete(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        if rest[start..].starts_with("{{") {
            out.push_str(&rest[..start + 1]);
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap();
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(&rest.replace("}}", "}"));
    out
}

fn check(table: &[&str], ours: &Router<usize>, reference: &matchit::Router<usize>, path: &str) {
    let expected = reference.at(path).ok().map(|found| {
        let params: Vec<(String, String)> = found
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        (table[*found.value], params)
    });
    let got = match ours.at(&Method::GET, path) {
        RouteMatch::Found {
            template, params, ..
        } => Some((
            template.as_str(),
            params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>(),
        )),
        RouteMatch::NotFound => None,
        other => panic!("{path}: unexpected {other:?}"),
    };
    assert_eq!(got, expected, "path {path:?} in table {table:?}");
}

#[test]
fn agrees_with_matchit() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut checked = 0;
    for table in TABLES {
        let mut ours = Router::new().with_trailing_slash(TrailingSlash::Strict);
        let mut reference = matchit::Router::new();
        for (index, template) in table.iter().enumerate() {
            ours.insert(Method::GET, template, index)
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            reference
                .insert(*template, index)
                .unwrap_or_else(|e| panic!("matchit refuses {template}: {e}"));
        }
        // Every segment of the table, for random paths.
        let mut pieces: Vec<&str> = table
            .iter()
            .flat_map(|t| t.split('/'))
            .filter(|s| !s.contains('{'))
            .collect();
        pieces.extend(VALUES);
        for template in table.iter() {
            for value in VALUES {
                let path = concrete(template, value);
                check(table, &ours, &reference, &path);
                check(table, &ours, &reference, &format!("{path}/"));
                checked += 2;
            }
        }
        for _ in 0..20_000 {
            let mut path = String::new();
            for _ in 0..rng.next() % 6 {
                path.push('/');
                path.push_str(rng.pick(&pieces));
            }
            if path.is_empty() || rng.next().is_multiple_of(8) {
                path.push('/');
            }
            check(table, &ours, &reference, &path);
            checked += 1;
        }
    }
    assert!(checked > 100_000);
}

#[test]
fn refuses_what_matchit_refuses() {
    // (existing templates, new template): matchit refuses the new one, and so do we.
    let cases: &[(&[&str], &str)] = &[
        (&["/users/{id}"], "/users/{uid}"),
        (&["/users/{id}"], "/users/{*rest}"),
        (&["/users/{*rest}"], "/users/{id}"),
        (&["/files/{*a}"], "/files/{*b}"),
        (&["/img/{name}.png"], "/img/{*rest}"),
        (&["/img/{*rest}"], "/img/{name}.png"),
        (&["/v{version}"], "/{version}.json"),
        (&["/{name}.json"], "/v{version}"),
        (&["/a{x}b"], "/c{y}d"),
        (&[], "/a/{*rest}/b"),
        (&[], "/a/{"),
        (&[], "/a/}"),
        (&[], "/a/{}"),
        (&[], "/a/{*}"),
        (&[], "/a/{x}{y}"),
        (&[], "/a/{x*}"),
    ];
    for (existing, new) in cases {
        let mut ours = Router::new();
        let mut reference = matchit::Router::new();
        for template in *existing {
            ours.insert(Method::GET, template, ()).unwrap();
            reference.insert(*template, ()).unwrap();
        }
        assert!(
            reference.insert(*new, ()).is_err(),
            "matchit accepts {new} after {existing:?}"
        );
        assert!(
            ours.insert(Method::GET, new, ()).is_err(),
            "we accept {new} after {existing:?}"
        );
    }
    // Accepted by both.
    let mut ours = Router::new();
    for template in [
        "/{a}/foo",
        "/{b}/bar",
        "/users/me",
        "/users/{id}",
        "/x/{*rest}",
        "/x/{{y}}",
    ] {
        ours.insert(Method::GET, template, ()).unwrap();
    }
}
