//! Cache hints (`@cacheControl`) and the cache policy of a response, with the rules Apollo
//! Server defines: a field's hint overrides its return type's hint; root fields and fields
//! returning a composite type (object, interface, union) without a `maxAge` get the default
//! (0 unless set); scalar and enum fields, and fields whose hint says `inheritMaxAge`,
//! restrict nothing but their scope; the policy of a response is the smallest `maxAge` of
//! the fields resolved, `PRIVATE` if any of them is private. Responses with errors, mutations
//! and requests that did not execute get no cacheable policy.
//!
//! ```
//! use graphql_core::{CACHE_CONTROL_SDL, Context, Request, Schema};
//!
//! let sdl = format!("{CACHE_CONTROL_SDL}
//!     type Query {{ news: [Item!]! @cacheControl(maxAge: 60) }}
//!     type Item {{ title: String }}");
//! let schema = Schema::build(sdl).finish()?;
//! # let waker = std::task::Waker::noop();
//! # let mut cx = std::task::Context::from_waker(&waker);
//! let request = Request::new("{ news { title } }")
//!     .root_value(serde_json::json!({"news": [{"title": "GraphQL"}]}));
//! let ctx = Context::default();
//! let mut future = schema.execute(&request, &ctx);
//! # let std::task::Poll::Ready(response) = future.as_mut().poll(&mut cx) else { unreachable!() };
//! let policy = response.cache_policy.unwrap();
//! // `Item` has no hint: `news` lists objects, so its items' fields are covered by `news`.
//! assert_eq!(policy.max_age, 60);
//! assert_eq!(policy.header_value(), "max-age=60, public");
//! # Ok::<(), graphql_core::Error>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The definitions to put in an SDL that uses `@cacheControl` (Apollo Server's, unchanged).
/// [`SchemaBuilder::cache_control`](crate::SchemaBuilder::cache_control) adds them when the
/// SDL does not define the directive itself.
pub const CACHE_CONTROL_SDL: &str = "enum CacheControlScope {
  PUBLIC
  PRIVATE
}

directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
";

/// Who may cache a response: any cache, or only the client's own (`Cache-Control:
/// private`, e.g. data that depends on the user).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheScope {
    /// Shared caches may store it.
    #[default]
    Public,
    /// Only the client may store it.
    Private,
}

/// One `@cacheControl(maxAge:, scope:, inheritMaxAge:)`, on a type or a field, or set from
/// code with [`SchemaBuilder::cache_hint`](crate::SchemaBuilder::cache_hint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CacheHint {
    /// Seconds the value stays fresh; `None` leaves it to the rules.
    pub max_age: Option<u32>,
    /// The scope; `None` leaves it as it is.
    pub scope: Option<CacheScope>,
    /// Take the parent field's `maxAge` (a `max_age` given with it is ignored, as Apollo
    /// Server ignores it).
    pub inherit_max_age: bool,
}

impl CacheHint {
    /// A hint with a `maxAge`.
    pub fn max_age(seconds: u32) -> Self {
        CacheHint {
            max_age: Some(seconds),
            ..CacheHint::default()
        }
    }

    /// The same hint with a scope.
    #[must_use]
    pub fn scope(mut self, scope: CacheScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// A hint that inherits the parent's `maxAge`.
    pub fn inherit() -> Self {
        CacheHint {
            inherit_max_age: true,
            ..CacheHint::default()
        }
    }

    /// `inheritMaxAge` wins over a `maxAge` given with it.
    fn normalized(&self) -> CacheHint {
        let mut hint = *self;
        if hint.inherit_max_age {
            hint.max_age = None;
        }
        hint
    }

    /// Apollo's `replace`: what this hint defines overrides `self`'s.
    fn replace(&mut self, other: &CacheHint) {
        if other.max_age.is_some() {
            self.max_age = other.max_age;
        }
        if other.scope.is_some() {
            self.scope = other.scope;
        }
    }
}

/// The cache policy of a response ([`Response::cache_policy`](crate::Response)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CachePolicy {
    /// Seconds the response stays fresh; 0 is not cacheable.
    pub max_age: u32,
    /// Who may store it.
    pub scope: CacheScope,
}

impl CachePolicy {
    /// Not cacheable.
    pub const NO_STORE: CachePolicy = CachePolicy {
        max_age: 0,
        scope: CacheScope::Public,
    };

    /// Whether a cache may store the response.
    pub fn is_cacheable(&self) -> bool {
        self.max_age > 0
    }

    /// The `Cache-Control` header value: `max-age=N, public` or `max-age=N, private`, or
    /// `no-store` when not cacheable.
    pub fn header_value(&self) -> String {
        match (self.is_cacheable(), self.scope) {
            (false, _) => "no-store".to_owned(),
            (true, CacheScope::Public) => format!("max-age={}, public", self.max_age),
            (true, CacheScope::Private) => format!("max-age={}, private", self.max_age),
        }
    }
}

/// What one field contributes to the policy, worked out once per field when the schema is
/// built: its `maxAge` at the root and below it (`None`: nothing, it inherits), and whether
/// it is private.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CacheRule {
    pub(crate) root: Option<u32>,
    pub(crate) nested: Option<u32>,
    pub(crate) private: bool,
}

impl CacheRule {
    /// Apollo Server's rules for a field whose return type is composite or not, with the
    /// hint of that return type (composite types only) and the field's own hint.
    pub(crate) fn of_field(
        composite: bool,
        type_hint: Option<&CacheHint>,
        field_hint: Option<&CacheHint>,
        default_max_age: u32,
    ) -> CacheRule {
        let mut policy = CacheHint::default();
        let mut inherit = false;
        if composite && let Some(hint) = type_hint.map(CacheHint::normalized) {
            policy.replace(&hint);
            inherit = hint.inherit_max_age;
        }
        if let Some(hint) = field_hint.map(CacheHint::normalized) {
            if hint.inherit_max_age && policy.max_age.is_none() {
                inherit = true;
                if hint.scope.is_some() {
                    policy.scope = hint.scope;
                }
            } else {
                policy.replace(&hint);
            }
        }
        CacheRule {
            root: Some(policy.max_age.unwrap_or(default_max_age)),
            nested: match policy.max_age {
                Some(age) => Some(age),
                None if composite && !inherit => Some(default_max_age),
                None => None,
            },
            private: policy.scope == Some(CacheScope::Private),
        }
    }

    /// Both rules together: the smallest `maxAge` of each, private if either is.
    pub(crate) fn and(self, other: CacheRule) -> CacheRule {
        let min = |a: Option<u32>, b: Option<u32>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        CacheRule {
            root: min(self.root, other.root),
            nested: min(self.nested, other.nested),
            private: self.private || other.private,
        }
    }
}

/// The policy of one execution, restricted as objects are completed (shared by the
/// concurrent parts of an execution).
#[derive(Debug)]
pub(crate) struct CacheAccumulator {
    max_age: AtomicU64,
    private: AtomicBool,
}

impl CacheAccumulator {
    pub(crate) fn new() -> Self {
        CacheAccumulator {
            max_age: AtomicU64::new(u64::MAX),
            private: AtomicBool::new(false),
        }
    }

    /// Restricts the policy by a collected selection's rule, at the root or below it.
    pub(crate) fn restrict(&self, rule: &CacheRule, root: bool) {
        let age = if root { rule.root } else { rule.nested };
        if let Some(age) = age {
            let age = u64::from(age);
            // A plain load first: most objects do not lower the policy.
            if age < self.max_age.load(Ordering::Relaxed) {
                self.max_age.fetch_min(age, Ordering::Relaxed);
            }
        }
        if rule.private && !self.private.load(Ordering::Relaxed) {
            self.private.store(true, Ordering::Relaxed);
        }
    }

    /// The policy so far (not cacheable when nothing restricted it).
    pub(crate) fn policy(&self) -> CachePolicy {
        let age = self.max_age.load(Ordering::Relaxed);
        CachePolicy {
            max_age: if age == u64::MAX {
                0
            } else {
                u32::try_from(age).unwrap_or(u32::MAX)
            },
            scope: if self.private.load(Ordering::Relaxed) {
                CacheScope::Private
            } else {
                CacheScope::Public
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        assert_eq!(CachePolicy::NO_STORE.header_value(), "no-store");
        let p = CachePolicy {
            max_age: 30,
            scope: CacheScope::Private,
        };
        assert_eq!(p.header_value(), "max-age=30, private");
    }

    #[test]
    fn accumulator_takes_the_minimum_and_private() {
        let acc = CacheAccumulator::new();
        assert_eq!(acc.policy(), CachePolicy::NO_STORE);
        let rule = |age, private| CacheRule {
            root: Some(age),
            nested: Some(age),
            private,
        };
        acc.restrict(&rule(60, false), true);
        acc.restrict(&rule(30, false), false);
        acc.restrict(&rule(90, true), false);
        assert_eq!(
            acc.policy(),
            CachePolicy {
                max_age: 30,
                scope: CacheScope::Private
            }
        );
    }
}
