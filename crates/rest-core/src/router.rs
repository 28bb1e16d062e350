//! A routing table: (method, path template) to your value.
//!
//! Lookups answer found (with the path parameters), 404, 405 with `Allow`, an automatic
//! `OPTIONS` answer, or a trailing-slash redirect. `HEAD` is served by the `GET` route
//! (RFC 9110 section 9.3.2) unless a `HEAD` route is registered.
//!
//! ```
//! use http::Method;
//! use rest_core::{RouteMatch, Router};
//!
//! let mut router = Router::new();
//! router.insert(Method::GET, "/users/{id}", "show user")?;
//! router.insert(Method::DELETE, "/users/{id}", "delete user")?;
//! match router.at(&Method::GET, "/users/42") {
//!     RouteMatch::Found { value, params, .. } => {
//!         assert_eq!(*value, "show user");
//!         assert_eq!(params.parse::<u64>("id")?, 42);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! match router.at(&Method::POST, "/users/42") {
//!     RouteMatch::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, DELETE, OPTIONS"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), rest_core::Error>(())
//! ```

use std::borrow::Cow;
use std::str::FromStr;

use http::{HeaderValue, Method};
use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;

use crate::path_tree::{self, Captures, MAX_PARAMS, NONE, PathTree};
use crate::{Error, Result};

/// What the table does with a path that only differs from a route by a trailing `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TrailingSlash {
    /// Answer [`RouteMatch::Redirect`] to the other spelling (send a 308, which keeps the
    /// method and body, RFC 9110 section 15.4.9).
    #[default]
    Redirect,
    /// The two spellings are different paths: the other one is a 404.
    Strict,
}

/// The standard methods get a fixed slot each, so that dispatch is a few enum compares and
/// no pointer chase; extension methods go to a short list.
const STANDARD: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// The slot of a standard method (its index in [`STANDARD`]).
#[inline]
fn slot(method: &Method) -> Option<usize> {
    // Constant patterns compile to one discriminant switch.
    Some(match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => return None,
    })
}

/// A route's path template as registered, e.g. `/users/{id}`.
///
/// A thin pointer to it is what [`RouteMatch::Found`] carries, which keeps a match within
/// 128 bytes: small enough to be returned and moved with a few register stores instead of a
/// `memcpy` call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteTemplate(Box<str>);

impl RouteTemplate {
    /// The template text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for RouteTemplate {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RouteTemplate {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RouteTemplate {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for RouteTemplate {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

/// No route for this (path, method) in [`Router::slots`].
const NO_ROUTE: u32 = u32::MAX;

/// What the table knows of one path template (the cold part: read on a 405, an `OPTIONS`, an
/// extension method, or when the caller reads the template).
#[derive(Debug)]
struct PathEntry {
    template: RouteTemplate,
    /// The parameter names, in template order.
    names: Box<[Box<str>]>,
    /// Extension methods (not in [`STANDARD`]) with their route index.
    other: Vec<(Method, u32)>,
    allow: HeaderValue,
}

/// A routing table from (method, path template) to `T`.
///
/// Templates use `matchit`'s syntax: `/users/{id}` for a segment, `/img/{name}.png` for a
/// parameter with a static prefix or suffix inside its segment, `/files/{*path}` for the rest
/// of the path (not empty), `{{` and `}}` for literal braces; at most 8 parameters per
/// template. Static segments win over parameters, which win over a catch-all. Two
/// templates that would be ambiguous are refused by [`Router::insert`], by `matchit`'s rules.
///
/// A hit walks the path one `/` segment at a time (a static segment is one hash lookup, a
/// parameter is a byte range into the path: nothing is allocated), then loads the route
/// from a compact table (nine `u32` route indexes per path, a few KiB for hundreds of
/// routes, so it stays in the L1 cache); the value and the template are returned by
/// reference without being read.
#[derive(Debug)]
pub struct Router<T> {
    // The tree holds a path index; the values live apart, so the walk stays on few cache
    // lines whatever `T` is.
    tree: PathTree,
    /// Per path, the route index for each standard method slot, or [`NO_ROUTE`].
    slots: Vec<[u32; 9]>,
    /// Per path, the cold data.
    entries: Vec<PathEntry>,
    /// Route values by route index (insertion order).
    values: Vec<T>,
    /// Per route (same order as `values`): its method and path index.
    routes: Vec<(Method, usize)>,
    trailing_slash: TrailingSlash,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of a lookup.
#[derive(Debug)]
pub enum RouteMatch<'r, 'p, T> {
    /// A route serves this method and path.
    Found {
        /// The value the route was registered with.
        value: &'r T,
        /// The path parameters (still percent-encoded; the accessors decode).
        params: PathParams<'r, 'p>,
        /// The route's template, e.g. `/users/{id}` (for logs and metrics).
        template: &'r RouteTemplate,
    },
    /// An `OPTIONS` request for a path without an `OPTIONS` route: answer 204 with `Allow`.
    Options {
        /// The `Allow` header value.
        allow: &'r HeaderValue,
    },
    /// The path exists but not for this method: answer 405 with `Allow`.
    MethodNotAllowed {
        /// The `Allow` header value (RFC 9110 section 15.5.6 requires it on a 405).
        allow: &'r HeaderValue,
    },
    /// The path matches a route once a trailing `/` is added or removed: redirect (308) to
    /// `location`, to which the caller appends the query string.
    Redirect {
        /// The path to redirect to.
        location: String,
    },
    /// No route has this path.
    NotFound,
}

impl<T> RouteMatch<'_, '_, T> {
    /// The error a non-found outcome stands for (`None` for `Found`, `Options`, `Redirect`).
    #[must_use]
    pub fn error(&self) -> Option<Error> {
        match self {
            Self::MethodNotAllowed { allow } => Some(Error::MethodNotAllowed {
                allow: (*allow).clone(),
            }),
            Self::NotFound => Some(Error::NotFound),
            _ => None,
        }
    }
}

impl<T> Router<T> {
    /// An empty table with the [`TrailingSlash::Redirect`] policy.
    #[must_use]
    pub fn new() -> Self {
        Self {
            tree: PathTree::default(),
            slots: Vec::new(),
            entries: Vec::new(),
            values: Vec::new(),
            routes: Vec::new(),
            trailing_slash: TrailingSlash::default(),
        }
    }

    /// Sets the trailing-slash policy.
    #[must_use]
    pub fn with_trailing_slash(mut self, policy: TrailingSlash) -> Self {
        self.trailing_slash = policy;
        self
    }

    /// Adds a route.
    ///
    /// # Errors
    ///
    /// [`Error::RouteConflict`] when the template is malformed, does not start with `/`,
    /// conflicts with another template, or already has a route for this method.
    pub fn insert(&mut self, method: Method, template: &str, value: T) -> Result<()> {
        let conflict = |reason: String| Error::RouteConflict {
            route: template.to_owned(),
            reason,
        };
        if !template.starts_with('/') {
            return Err(conflict("a template must start with '/'".to_owned()));
        }
        let route = u32::try_from(self.values.len())
            .ok()
            .filter(|route| *route != NO_ROUTE)
            .ok_or_else(|| conflict("more than 2^32 - 1 routes".to_owned()))?;
        let index = match self.entries.iter().position(|e| e.template == template) {
            Some(index) => index,
            None => {
                let index = self.entries.len();
                let id = u32::try_from(index)
                    .ok()
                    .filter(|id| *id != NONE)
                    .ok_or_else(|| conflict("more than 2^32 - 1 paths".to_owned()))?;
                let parsed = path_tree::parse(template).map_err(conflict)?;
                self.tree.insert(&parsed, id).map_err(|refused| {
                    let with = self
                        .entries
                        .get(refused.with as usize)
                        .map_or("another route", |entry| entry.template.as_str());
                    conflict(format!("ambiguous with {with}: {}", refused.why))
                })?;
                self.entries.push(PathEntry {
                    template: RouteTemplate(template.into()),
                    names: parsed.names.into(),
                    other: Vec::new(),
                    allow: HeaderValue::from_static(""),
                });
                self.slots.push([NO_ROUTE; 9]);
                index
            }
        };
        let (Some(entry), Some(slots)) = (self.entries.get_mut(index), self.slots.get_mut(index))
        else {
            return Err(conflict("internal index out of range".to_owned()));
        };
        let taken = match slot(&method).and_then(|slot| slots.get_mut(slot)) {
            Some(place) if *place != NO_ROUTE => true,
            Some(place) => {
                *place = route;
                false
            }
            None if entry.other.iter().any(|(m, _)| *m == method) => true,
            None => {
                entry.other.push((method.clone(), route));
                false
            }
        };
        if taken {
            return Err(conflict(format!("{method} is already routed")));
        }
        let methods: Vec<&Method> = STANDARD
            .iter()
            .zip(slots.iter())
            .filter(|(_, route)| **route != NO_ROUTE)
            .map(|(method, _)| method)
            .chain(entry.other.iter().map(|(m, _)| m))
            .collect();
        entry.allow = allow_header(&methods)?;
        self.values.push(value);
        self.routes.push((method, index));
        Ok(())
    }

    /// The route index for a path index and a method, or [`NO_ROUTE`].
    #[inline]
    fn route(&self, path: usize, method: &Method) -> u32 {
        match slot(method) {
            Some(slot) => self
                .slots
                .get(path)
                .and_then(|slots| slots.get(slot))
                .copied()
                .unwrap_or(NO_ROUTE),
            None => self.other_route(path, method),
        }
    }

    #[cold]
    fn other_route(&self, path: usize, method: &Method) -> u32 {
        self.entries
            .get(path)
            .and_then(|entry| entry.other.iter().find(|(m, _)| m == method))
            .map_or(NO_ROUTE, |(_, route)| *route)
    }

    /// Looks up a request's method and path (the URI's path, still percent-encoded).
    #[inline]
    pub fn at<'r, 'p>(&'r self, method: &Method, path: &'p str) -> RouteMatch<'r, 'p, T> {
        let mut ranges: Captures = [(0, 0); MAX_PARAMS];
        let found = self.tree.find(path, &mut ranges);
        let Some(entry) = self.entries.get(found as usize) else {
            return self.miss(path);
        };
        let index = found as usize;
        let params = PathParams {
            path,
            names: &entry.names,
            ranges,
        };
        // The value is not read here: only its address is taken.
        if let Some(value) = self.values.get(self.route(index, method) as usize) {
            return RouteMatch::Found {
                value,
                params,
                template: &entry.template,
            };
        }
        self.fallback(index, method, params)
    }

    /// HEAD served by GET, the automatic OPTIONS answer, or 405.
    #[cold]
    fn fallback<'r, 'p>(
        &'r self,
        index: usize,
        method: &Method,
        params: PathParams<'r, 'p>,
    ) -> RouteMatch<'r, 'p, T> {
        let Some(entry) = self.entries.get(index) else {
            return RouteMatch::NotFound;
        };
        if *method == Method::HEAD
            && let Some(value) = self.values.get(self.route(index, &Method::GET) as usize)
        {
            return RouteMatch::Found {
                value,
                params,
                template: &entry.template,
            };
        }
        if *method == Method::OPTIONS {
            return RouteMatch::Options {
                allow: &entry.allow,
            };
        }
        RouteMatch::MethodNotAllowed {
            allow: &entry.allow,
        }
    }

    #[cold]
    fn miss<'r, 'p>(&'r self, path: &'p str) -> RouteMatch<'r, 'p, T> {
        if self.trailing_slash == TrailingSlash::Strict || path == "/" {
            return RouteMatch::NotFound;
        }
        let other = match path.strip_suffix('/') {
            Some(trimmed) => trimmed.to_owned(),
            None => format!("{path}/"),
        };
        if self.tree.find(&other, &mut [(0, 0); MAX_PARAMS]) != NONE {
            RouteMatch::Redirect { location: other }
        } else {
            RouteMatch::NotFound
        }
    }

    /// Every route as (method, template), in insertion order.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &str)> {
        self.routes.iter().filter_map(|(method, path)| {
            self.entries
                .get(*path)
                .map(|entry| (method, entry.template.as_str()))
        })
    }
}

/// `Allow` lists the routed methods, `HEAD` when `GET` is routed, and `OPTIONS`.
fn allow_header(methods: &[&Method]) -> Result<HeaderValue> {
    let mut names: Vec<&str> = Vec::with_capacity(methods.len() + 2);
    let has = |wanted: &Method| methods.contains(&wanted);
    for method in methods {
        names.push(method.as_str());
        if **method == Method::GET && !has(&Method::HEAD) {
            names.push("HEAD");
        }
    }
    if !has(&Method::OPTIONS) {
        names.push("OPTIONS");
    }
    HeaderValue::from_str(&names.join(", ")).map_err(|error| Error::RouteConflict {
        route: String::new(),
        reason: error.to_string(),
    })
}

/// The parameters of a matched path, borrowed from the request's path.
///
/// Values are matched on the percent-encoded path, so `%2F` inside a parameter never splits
/// a segment; the accessors decode afterwards and refuse invalid UTF-8 (400).
pub struct PathParams<'r, 'p> {
    path: &'p str,
    /// The route's parameter names; `ranges` holds as many byte ranges into `path`.
    names: &'r [Box<str>],
    ranges: Captures,
}

impl std::fmt::Debug for PathParams<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'r, 'p> PathParams<'r, 'p> {
    /// The raw (still percent-encoded) value of a parameter (the first one of that name).
    #[must_use]
    pub fn raw(&self, name: &str) -> Option<&'p str> {
        self.iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, value)| value)
    }

    /// The percent-decoded value of a parameter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPathParam`] when it is absent or not UTF-8 once decoded.
    pub fn get(&self, name: &str) -> Result<Cow<'p, str>> {
        let raw = self.raw(name).ok_or_else(|| Error::InvalidPathParam {
            name: name.to_owned(),
            reason: "no such parameter in the route".to_owned(),
        })?;
        decode(name, raw)
    }

    /// A parameter parsed with `FromStr`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPathParam`] when it is absent, not UTF-8, or does not parse.
    pub fn parse<V: FromStr>(&self, name: &str) -> Result<V>
    where
        V::Err: std::fmt::Display,
    {
        let value = self.get(name)?;
        value
            .parse()
            .map_err(|error: V::Err| Error::InvalidPathParam {
                name: name.to_owned(),
                reason: error.to_string(),
            })
    }

    /// All parameters deserialized into a struct (or map) with serde.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPathParam`] when a value is not UTF-8 or does not fit its field.
    pub fn deserialize<V: DeserializeOwned>(&self) -> Result<V> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, raw) in self.iter() {
            form.append_pair(name, &decode(name, raw)?);
        }
        serde_html_form::from_str(&form.finish()).map_err(|error| Error::InvalidPathParam {
            name: String::new(),
            reason: error.to_string(),
        })
    }

    /// (name, raw value) pairs in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&'r str, &'p str)> + '_ {
        let path = self.path;
        self.names
            .iter()
            .zip(&self.ranges)
            .map(move |(name, &(start, end))| {
                (
                    &**name,
                    path.get(start as usize..end as usize).unwrap_or(""),
                )
            })
    }

    /// The number of parameters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the route has no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn decode<'p>(name: &str, raw: &'p str) -> Result<Cow<'p, str>> {
    percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::InvalidPathParam {
            name: name.to_owned(),
            reason: "not UTF-8 once percent-decoded".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Router<&'static str> {
        let mut router = Router::new();
        router.insert(Method::GET, "/users", "list").unwrap();
        router.insert(Method::POST, "/users", "create").unwrap();
        router.insert(Method::GET, "/users/{id}", "show").unwrap();
        router
            .insert(Method::GET, "/users/{id}/posts/{post_id}", "post")
            .unwrap();
        router
            .insert(Method::GET, "/files/{*path}", "file")
            .unwrap();
        router
    }

    #[test]
    fn finds_routes_with_params_and_catch_all() {
        let router = table();
        let RouteMatch::Found {
            value,
            params,
            template,
        } = router.at(&Method::GET, "/users/7/posts/9")
        else {
            panic!("no match");
        };
        assert_eq!(*value, "post");
        assert_eq!(template, "/users/{id}/posts/{post_id}");
        assert_eq!(params.parse::<u32>("post_id").unwrap(), 9);
        let RouteMatch::Found { params, .. } = router.at(&Method::GET, "/files/a/b%20c.txt") else {
            panic!("no match");
        };
        assert_eq!(params.get("path").unwrap(), "a/b c.txt");
    }

    #[test]
    fn head_uses_get_and_options_lists_allow() {
        let router = table();
        assert!(matches!(
            router.at(&Method::HEAD, "/users"),
            RouteMatch::Found { value: &"list", .. }
        ));
        let RouteMatch::Options { allow } = router.at(&Method::OPTIONS, "/users") else {
            panic!("no options");
        };
        assert_eq!(allow, "GET, HEAD, POST, OPTIONS");
        let RouteMatch::MethodNotAllowed { allow } = router.at(&Method::PUT, "/users/1") else {
            panic!("no 405");
        };
        assert_eq!(allow, "GET, HEAD, OPTIONS");
    }

    #[test]
    fn slots_follow_the_standard_table() {
        for (index, method) in STANDARD.iter().enumerate() {
            assert_eq!(slot(method), Some(index));
        }
        assert_eq!(slot(&Method::from_bytes(b"PURGE").unwrap()), None);
        let mut router = Router::new();
        router
            .insert(Method::from_bytes(b"PURGE").unwrap(), "/cache", 1)
            .unwrap();
        router.insert(Method::PATCH, "/cache", 2).unwrap();
        assert!(matches!(
            router.at(&Method::from_bytes(b"PURGE").unwrap(), "/cache"),
            RouteMatch::Found { value: &1, .. }
        ));
        let RouteMatch::MethodNotAllowed { allow } = router.at(&Method::GET, "/cache") else {
            panic!("no 405");
        };
        assert_eq!(allow, "PATCH, PURGE, OPTIONS");
        assert_eq!(router.routes().count(), 2);
    }

    #[test]
    fn conflicts_are_errors_not_panics() {
        let mut router = table();
        assert!(matches!(
            router.insert(Method::GET, "/users", "again"),
            Err(Error::RouteConflict { .. })
        ));
        assert!(
            router
                .insert(Method::GET, "/users/{uid}", "other name")
                .is_err()
        );
        assert!(router.insert(Method::GET, "users", "no slash").is_err());
        assert!(
            router
                .insert(Method::GET, "/a/{*rest}/b", "catch-all inside")
                .is_err()
        );
        assert!(router.insert(Method::GET, "/a/{", "unclosed").is_err());
    }

    #[test]
    fn trailing_slash_policy() {
        let router = table();
        match router.at(&Method::GET, "/users/") {
            RouteMatch::Redirect { location } => assert_eq!(location, "/users"),
            other => panic!("{other:?}"),
        }
        let strict = table().with_trailing_slash(TrailingSlash::Strict);
        assert!(matches!(
            strict.at(&Method::GET, "/users/"),
            RouteMatch::NotFound
        ));
        assert!(matches!(
            router.at(&Method::GET, "/nothing"),
            RouteMatch::NotFound
        ));
    }

    #[test]
    fn encoded_slashes_stay_inside_a_segment_and_bad_utf8_is_refused() {
        let router = table();
        let RouteMatch::Found { value, params, .. } = router.at(&Method::GET, "/users/..%2F..")
        else {
            panic!("no match");
        };
        assert_eq!(*value, "show");
        assert_eq!(params.get("id").unwrap(), "../..");
        assert!(params.parse::<u64>("id").is_err());
        let RouteMatch::Found { params, .. } = router.at(&Method::GET, "/users/%FF%FE") else {
            panic!("no match");
        };
        assert_eq!(params.get("id").unwrap_err().status(), 400);
    }

    #[test]
    fn params_deserialize_into_a_struct() {
        #[derive(Debug, serde::Deserialize)]
        struct Ids {
            id: u64,
            post_id: u64,
        }
        let router = table();
        let RouteMatch::Found { params, .. } = router.at(&Method::GET, "/users/3/posts/4") else {
            panic!("no match");
        };
        let ids: Ids = params.deserialize().unwrap();
        assert_eq!((ids.id, ids.post_id), (3, 4));
        let RouteMatch::Found { params, .. } = router.at(&Method::GET, "/users/x/posts/4") else {
            panic!("no match");
        };
        assert_eq!(params.deserialize::<Ids>().unwrap_err().status(), 400);
    }
}
