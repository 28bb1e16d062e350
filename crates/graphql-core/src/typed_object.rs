//! Typed list items: a list field whose resolver returns Rust values (`Vec<T>`) instead of
//! one `serde_json::Value` per item ([`TypedObject`], [`FieldValue`]).

use std::borrow::Cow;

use serde_json::{Map, Value};

/// One field of a [`TypedObject`], borrowed from it.
///
/// The scalar variants are written directly when the field's type is the matching
/// built-in scalar (`Int` for [`FieldValue::Int`] within 32 bits, `Float` for a finite
/// [`FieldValue::Float`], `String` or `ID` for [`FieldValue::String`], `Boolean` for
/// [`FieldValue::Boolean`]). Anything else (an enum, a custom scalar, a nested object or
/// list with its own selection set, an `Int` out of range) is completed as the same JSON
/// value returned by a resolver would be, with the same errors.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue<'v> {
    /// `null` (also what an absent field is).
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number; not finite is `null`, as in `serde_json`.
    Float(f64),
    /// A string.
    String(&'v str),
    /// Any JSON value: an enum value, a custom scalar, a nested object or list.
    Json(Cow<'v, Value>),
}

impl FieldValue<'_> {
    /// The same value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            FieldValue::Null => Value::Null,
            FieldValue::Boolean(b) => Value::Bool(*b),
            FieldValue::Int(n) => Value::from(*n),
            FieldValue::Float(f) => Value::from(*f),
            FieldValue::String(s) => Value::String((*s).to_owned()),
            FieldValue::Json(v) => v.as_ref().clone(),
        }
    }
}

impl From<bool> for FieldValue<'_> {
    fn from(b: bool) -> Self {
        FieldValue::Boolean(b)
    }
}

impl From<i32> for FieldValue<'_> {
    fn from(n: i32) -> Self {
        FieldValue::Int(i64::from(n))
    }
}

impl From<i64> for FieldValue<'_> {
    fn from(n: i64) -> Self {
        FieldValue::Int(n)
    }
}

impl From<u32> for FieldValue<'_> {
    fn from(n: u32) -> Self {
        FieldValue::Int(i64::from(n))
    }
}

impl From<f64> for FieldValue<'_> {
    fn from(f: f64) -> Self {
        FieldValue::Float(f)
    }
}

impl<'v> From<&'v str> for FieldValue<'v> {
    fn from(s: &'v str) -> Self {
        FieldValue::String(s)
    }
}

impl<'v> From<&'v String> for FieldValue<'v> {
    fn from(s: &'v String) -> Self {
        FieldValue::String(s)
    }
}

impl From<Value> for FieldValue<'_> {
    fn from(v: Value) -> Self {
        FieldValue::Json(Cow::Owned(v))
    }
}

impl<'v> From<&'v Value> for FieldValue<'v> {
    fn from(v: &'v Value) -> Self {
        FieldValue::Json(Cow::Borrowed(v))
    }
}

impl<'v, T: Into<FieldValue<'v>>> From<Option<T>> for FieldValue<'v> {
    fn from(v: Option<T>) -> Self {
        v.map_or(FieldValue::Null, Into::into)
    }
}

/// A Rust type whose values are GraphQL objects: the items of a
/// [`Resolver::typed_list`](crate::Resolver::typed_list), returned as `Vec<T>` instead of
/// one `serde_json::Value` per item.
///
/// A type implements [`TypedObject`]: it names the GraphQL fields it answers
/// ([`TypedObject::FIELDS`]) and returns field number `index` of them as a borrowed
/// [`FieldValue`]. [`Resolver::typed_list`](crate::Resolver::typed_list) registers a
/// resolver returning `Vec<T>`. When the executor completes such a list, it matches the
/// selection set against `FIELDS` once per list (each selected field becomes an index) and
/// then writes every item's fields straight into the response: no name lookup, no
/// `serde_json::Map` and no allocation per item or field.
///
/// ```
/// use graphql_core::{Context, FieldValue, Request, Resolver, Schema, TypedObject};
///
/// struct Book {
///     id: i32,
///     title: String,
///     rating: Option<f64>,
/// }
///
/// impl TypedObject for Book {
///     const FIELDS: &'static [&'static str] = &["id", "title", "rating"];
///
///     fn field(&self, index: usize) -> FieldValue<'_> {
///         match index {
///             0 => self.id.into(),
///             1 => self.title.as_str().into(),
///             2 => self.rating.into(),
///             _ => FieldValue::Null,
///         }
///     }
/// }
///
/// let schema = Schema::build(
///     "type Query { books: [Book!]! }
///      type Book { id: Int! title: String! rating: Float }",
/// )
/// .resolver(
///     "Query",
///     "books",
///     Resolver::typed_list(|_ctx, _parent, _args| {
///         Ok(vec![
///             Book { id: 1, title: "Dune".to_owned(), rating: Some(4.5) },
///             Book { id: 2, title: "Emma".to_owned(), rating: None },
///         ])
///     }),
/// )
/// .finish()?;
///
/// let request = Request::new("{ books { title rating } }");
/// let response = block_on(schema.execute(&request, &Context::default()));
/// assert_eq!(
///     response.to_json(),
///     r#"{"data":{"books":[{"title":"Dune","rating":4.5},{"title":"Emma","rating":null}]}}"#
/// );
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     // A schema whose resolvers are all synchronous completes on the first poll.
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     match f.as_mut().poll(&mut cx) { std::task::Poll::Ready(v) => v, _ => unreachable!() }
/// # }
/// # Ok::<(), graphql_core::Error>(())
/// ```
///
/// What stays as with other resolvers: a field of the item type that has its own resolver
/// (for arguments, the context, or IO) receives the item as a JSON object of its `FIELDS`,
/// built for it; so does every item when the list is completed on the asynchronous path
/// (a sibling or sub-field needs it), under `@stream`, or under `@defer` inside the items.
/// Results are the same either way; only the fast path is skipped.
pub trait TypedObject: Send + Sync + 'static {
    /// The names of the schema fields this type answers; [`TypedObject::field`] numbers
    /// them in this order. A selected field of the item type that is not here is `null`
    /// (as a field absent from a JSON parent), unless it has its own resolver.
    const FIELDS: &'static [&'static str];

    /// Field number `index` of [`TypedObject::FIELDS`] (never called with an index
    /// beyond it).
    fn field(&self, index: usize) -> FieldValue<'_>;
}

/// A resolved list of typed items with the type erased, as the executor reads it.
pub(crate) trait TypedItems: Send + Sync {
    /// The item type's [`TypedObject::FIELDS`].
    fn names(&self) -> &'static [&'static str];
    /// The number of items.
    fn len(&self) -> usize;
    /// Field `index` of item `item` (`Null` when either is out of range).
    fn field(&self, item: usize, index: usize) -> FieldValue<'_>;
    /// The items as a JSON list of objects (for the paths that complete JSON values).
    fn to_json(&self) -> Value;
}

impl<T: TypedObject> TypedItems for Vec<T> {
    fn names(&self) -> &'static [&'static str] {
        T::FIELDS
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    #[inline]
    fn field(&self, item: usize, index: usize) -> FieldValue<'_> {
        match self.get(item) {
            Some(object) if index < T::FIELDS.len() => object.field(index),
            _ => FieldValue::Null,
        }
    }

    fn to_json(&self) -> Value {
        Value::Array(
            self.iter()
                .map(|object| {
                    let mut map = Map::new();
                    for (index, name) in T::FIELDS.iter().enumerate() {
                        map.insert((*name).to_owned(), object.field(index).to_json());
                    }
                    Value::Object(map)
                })
                .collect(),
        )
    }
}
