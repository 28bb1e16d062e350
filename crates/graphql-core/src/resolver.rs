//! Resolvers: how a field of an object type gets its value.
//!
//! A resolver is registered per type and field. It is stored in the compiled schema's field
//! table (no string lookup at execution time) as one of these kinds:
//!
//! - [`Resolver::Default`]: read the field's name from the parent `serde_json::Value`
//!   (an object); the executor borrows the value, nothing is cloned or allocated.
//! - [`Resolver::Sync`]: a plain function `Fn(&Context, &Value, &Args) -> FieldResult`,
//!   called inline: no future is created for it.
//! - [`Resolver::Async`]: a function returning a boxed future, for fields that do IO.
//! - [`Resolver::SyncList`] and [`Resolver::AsyncList`]: the same for a list field whose
//!   items may fail one by one: they return a [`ListResult`], one [`ItemResult`] per item.
//! - [`Resolver::TypedList`]: a list field whose items are Rust values implementing
//!   [`TypedObject`](crate::TypedObject); the executor matches the selection set to the
//!   item type's fields once per list and writes the items without a JSON value per item
//!   (see [`Resolver::typed_list`]).
//!
//! ```
//! use graphql_core::{Resolver, FieldResult};
//! use serde_json::json;
//!
//! let hello = Resolver::sync(|_ctx, _parent, args| {
//!     let name = args.get("name").and_then(|v| v.as_str()).unwrap_or("world");
//!     Ok(json!(format!("hello {name}")))
//! });
//! let slow = Resolver::asynchronous(|input| Box::pin(async move {
//!     FieldResult::Ok(input.parent["id"].clone())
//! }));
//! # let _ = (hello, slow);
//! ```

use crate::typed_object::{TypedItems, TypedObject};
use crate::upload::UploadedFile;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

/// An error a resolver reports: its message and optional `extensions` for the response.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The message clients see.
    pub message: String,
    /// Extra machine-readable data placed under `extensions` in the response error.
    pub extensions: Option<serde_json::Map<String, Value>>,
}

impl FieldError {
    /// An error with a message and no extensions.
    pub fn new(message: impl Into<String>) -> Self {
        FieldError {
            message: message.into(),
            extensions: None,
        }
    }

    /// Adds one extension entry.
    #[must_use]
    pub fn with_extension(mut self, key: impl Into<String>, value: Value) -> Self {
        self.extensions
            .get_or_insert_with(serde_json::Map::new)
            .insert(key.into(), value);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

impl From<String> for FieldError {
    fn from(message: String) -> Self {
        FieldError::new(message)
    }
}

impl From<&str> for FieldError {
    fn from(message: &str) -> Self {
        FieldError::new(message)
    }
}

/// What a resolver returns.
pub type FieldResult = Result<Value, FieldError>;

/// The boxed future an asynchronous resolver returns.
pub type FieldFuture<'a> = Pin<Box<dyn Future<Output = FieldResult> + Send + 'a>>;

/// One item of the list a list resolver returns: its value, or the error that takes its
/// place. The executor records the error at the item's path (`["tags", 1]`) with the
/// field's location and completes the item as null; if the item type is non-null, the null
/// propagates to the nearest nullable parent (spec section 6.4.4), as for any field error.
pub type ItemResult = Result<Value, FieldError>;

/// What a list resolver ([`Resolver::sync_list`], [`Resolver::asynchronous_list`])
/// returns: every item as a value or an error, or an error for the whole field.
pub type ListResult = Result<Vec<ItemResult>, FieldError>;

/// The boxed future an asynchronous list resolver returns.
pub type ListFuture<'a> = Pin<Box<dyn Future<Output = ListResult> + Send + 'a>>;

/// Per-request data handed to every resolver (a database handle, the current user...).
///
/// Cloning is cheap (one `Arc`).
#[derive(Clone, Default)]
pub struct Context {
    data: Option<Arc<dyn Any + Send + Sync>>,
    /// The files of a multipart request (the GraphQL multipart request specification).
    uploads: Option<Arc<[UploadedFile]>>,
}

impl Context {
    /// A context carrying `data`; resolvers get it back with [`Context::data`].
    pub fn new<T: Any + Send + Sync>(data: T) -> Self {
        Context {
            data: Some(Arc::new(data)),
            uploads: None,
        }
    }

    /// The context with the files of a multipart request
    /// ([`read_multipart_request`](crate::read_multipart_request)), which resolvers get
    /// back with [`Context::upload`].
    #[must_use]
    pub fn with_uploads(mut self, files: Vec<UploadedFile>) -> Self {
        self.uploads = Some(files.into());
        self
    }

    /// The file an argument of the `Upload` scalar stands for (its placeholder,
    /// `{"$upload": n}`), if this request carries it.
    pub fn upload(&self, value: &Value) -> Option<&UploadedFile> {
        let index = crate::upload::placeholder_index(value)?;
        self.uploads.as_deref()?.get(index)
    }

    /// The request data, if it is a `T`.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.data.as_deref().and_then(|d| d.downcast_ref::<T>())
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("has_data", &self.data.is_some())
            .field("uploads", &self.uploads.as_deref().map_or(0, <[_]>::len))
            .finish()
    }
}

/// The coerced arguments of one field, in the order the schema defines them.
///
/// Arguments the query omitted and that have no default are absent (not `null`), so a
/// resolver can tell "not given" from "given as null" as the spec requires.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    pub(crate) values: Vec<(Arc<str>, Value)>,
}

impl Args {
    /// An empty argument list.
    pub fn new() -> Self {
        Args::default()
    }

    /// Adds an argument (used by the executor and by tests of resolvers).
    pub fn insert(&mut self, name: impl Into<Arc<str>>, value: Value) {
        let name = name.into();
        if let Some(slot) = self.values.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.values.push((name, value));
        }
    }

    /// The value of an argument, if it was given or has a default.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// Whether no arguments are present.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The arguments as (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(n, v)| (&**n, v))
    }
}

/// What an asynchronous resolver receives; it borrows from the executor for `'a`.
#[derive(Debug, Clone, Copy)]
pub struct ResolverInput<'a> {
    /// The request's context.
    pub ctx: &'a Context,
    /// The parent object's value (for root fields: the root value).
    pub parent: &'a Value,
    /// The coerced arguments.
    pub args: &'a Args,
}

type SyncFn = dyn Fn(&Context, &Value, &Args) -> FieldResult + Send + Sync;
type AsyncFn = dyn for<'a> Fn(ResolverInput<'a>) -> FieldFuture<'a> + Send + Sync;
type SyncListFn = dyn Fn(&Context, &Value, &Args) -> ListResult + Send + Sync;
type AsyncListFn = dyn for<'a> Fn(ResolverInput<'a>) -> ListFuture<'a> + Send + Sync;
type ItemStreamFn = dyn Fn(&Context, &Value, &Args) -> EventStream + Send + Sync;

/// How one field is resolved: the default (read the parent), a synchronous function (no
/// future), or an asynchronous one; a list field's items may each be a value or an error
/// (`SyncList`, `AsyncList`).
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Resolver {
    /// Read the field (by its name) from the parent JSON object; `null` when absent.
    #[default]
    Default,
    /// A synchronous function, called without creating a future.
    Sync(Arc<SyncFn>),
    /// An asynchronous function returning a boxed future.
    Async(Arc<AsyncFn>),
    /// A synchronous function returning a list's items, each a value or an error.
    SyncList(Arc<SyncListFn>),
    /// An asynchronous function returning a list's items, each a value or an error.
    AsyncList(Arc<AsyncListFn>),
    /// A function returning a list's items as a stream (each a value or an error).
    ItemStream(Arc<ItemStreamFn>),
    /// A synchronous function returning a list's items as typed Rust values
    /// ([`Resolver::typed_list`]).
    TypedList(TypedList),
}

impl Resolver {
    /// A synchronous resolver.
    pub fn sync<F>(f: F) -> Self
    where
        F: Fn(&Context, &Value, &Args) -> FieldResult + Send + Sync + 'static,
    {
        Resolver::Sync(Arc::new(f))
    }

    /// An asynchronous resolver: `|input| Box::pin(async move { ... })`.
    pub fn asynchronous<F>(f: F) -> Self
    where
        F: for<'a> Fn(ResolverInput<'a>) -> FieldFuture<'a> + Send + Sync + 'static,
    {
        Resolver::Async(Arc::new(f))
    }

    /// A synchronous resolver of a list field whose items may fail one by one (as a
    /// graphql-js resolver returns `Error` objects inside a list): each `Err` item is null
    /// in the response, with its error at the item's path.
    ///
    /// ```
    /// use graphql_core::{FieldError, Resolver};
    /// use serde_json::json;
    ///
    /// let tags = Resolver::sync_list(|_, _, _| {
    ///     Ok(vec![Ok(json!("a")), Err(FieldError::new("tag 1 is gone")), Ok(json!("c"))])
    /// });
    /// # let _ = tags;
    /// ```
    pub fn sync_list<F>(f: F) -> Self
    where
        F: Fn(&Context, &Value, &Args) -> ListResult + Send + Sync + 'static,
    {
        Resolver::SyncList(Arc::new(f))
    }

    /// The asynchronous form of [`Resolver::sync_list`]:
    /// `|input| Box::pin(async move { Ok(vec![...]) })`.
    pub fn asynchronous_list<F>(f: F) -> Self
    where
        F: for<'a> Fn(ResolverInput<'a>) -> ListFuture<'a> + Send + Sync + 'static,
    {
        Resolver::AsyncList(Arc::new(f))
    }

    /// A list field whose items arrive as a stream (a database cursor, a broker
    /// subscription, ...). The list is the stream's items, in order, each `Err` a null item
    /// with its error. Under `@stream` (with
    /// [`SchemaBuilder::incremental_delivery`](crate::SchemaBuilder::incremental_delivery))
    /// the items after `initialCount` are sent as each arrives, and the stream is read no
    /// further than the client stays; otherwise it is read to its end first.
    ///
    /// ```
    /// use graphql_core::Resolver;
    /// use serde_json::json;
    ///
    /// let numbers = Resolver::item_stream(|_, _, _| {
    ///     Box::pin(futures_util::stream::iter((1..=3).map(|n| Ok(json!(n)))))
    /// });
    /// # let _ = numbers;
    /// ```
    pub fn item_stream<F>(f: F) -> Self
    where
        F: Fn(&Context, &Value, &Args) -> EventStream + Send + Sync + 'static,
    {
        Resolver::ItemStream(Arc::new(f))
    }

    /// A synchronous resolver of a list field whose items are Rust values of a type that
    /// implements [`TypedObject`] (the field's item type must be an object type).
    ///
    /// The executor matches the items' selection set against [`TypedObject::FIELDS`] once
    /// per list and writes each item's selected fields from [`TypedObject::field`]: no
    /// `serde_json::Value`, no name lookup and no allocation per item. This is the fast
    /// way to return long lists; the response is the same as for a resolver returning the
    /// items as JSON objects. The schema refuses it on a field that is not a list of an
    /// object type, and a name in `FIELDS` the item type does not have.
    ///
    /// ```
    /// use graphql_core::{FieldValue, Resolver, TypedObject};
    ///
    /// struct Tag {
    ///     name: String,
    ///     uses: u32,
    /// }
    ///
    /// impl TypedObject for Tag {
    ///     const FIELDS: &'static [&'static str] = &["name", "uses"];
    ///     fn field(&self, index: usize) -> FieldValue<'_> {
    ///         match index {
    ///             0 => (&self.name).into(),
    ///             1 => self.uses.into(),
    ///             _ => FieldValue::Null,
    ///         }
    ///     }
    /// }
    ///
    /// // For `type Query { tags: [Tag!]! }` and `type Tag { name: String! uses: Int! }`.
    /// let tags = Resolver::typed_list(|_ctx, _parent, _args| {
    ///     Ok(vec![Tag { name: "rust".to_owned(), uses: 3 }])
    /// });
    /// # let _ = tags;
    /// ```
    ///
    /// See the [`TypedObject`] docs for a whole schema.
    pub fn typed_list<T, F>(f: F) -> Self
    where
        T: TypedObject,
        F: Fn(&Context, &Value, &Args) -> Result<Vec<T>, FieldError> + Send + Sync + 'static,
    {
        Resolver::TypedList(TypedList::new(f))
    }

    /// Whether this is the default (read from the parent) resolver.
    pub fn is_default(&self) -> bool {
        matches!(self, Resolver::Default)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resolver::Default => "Resolver::Default",
            Resolver::Sync(_) => "Resolver::Sync",
            Resolver::Async(_) => "Resolver::Async",
            Resolver::SyncList(_) => "Resolver::SyncList",
            Resolver::AsyncList(_) => "Resolver::AsyncList",
            Resolver::ItemStream(_) => "Resolver::ItemStream",
            Resolver::TypedList(_) => "Resolver::TypedList",
        })
    }
}

type TypedListFn =
    dyn Fn(&Context, &Value, &Args) -> Result<Box<dyn TypedItems>, FieldError> + Send + Sync;

/// The resolver of [`Resolver::TypedList`], made by
/// [`Resolver::typed_list`].
#[derive(Clone)]
pub struct TypedList {
    resolve: Arc<TypedListFn>,
    names: &'static [&'static str],
}

impl TypedList {
    pub(crate) fn new<T, F>(f: F) -> Self
    where
        T: TypedObject,
        F: Fn(&Context, &Value, &Args) -> Result<Vec<T>, FieldError> + Send + Sync + 'static,
    {
        TypedList {
            resolve: Arc::new(move |ctx, parent, args| {
                f(ctx, parent, args).map(|items| Box::new(items) as Box<dyn TypedItems>)
            }),
            names: T::FIELDS,
        }
    }

    /// Runs the resolver.
    pub(crate) fn resolve(
        &self,
        ctx: &Context,
        parent: &Value,
        args: &Args,
    ) -> Result<Box<dyn TypedItems>, FieldError> {
        (self.resolve)(ctx, parent, args)
    }

    /// The item type's field names ([`TypedObject::FIELDS`]).
    pub fn field_names(&self) -> &'static [&'static str] {
        self.names
    }
}

impl fmt::Debug for TypedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedList")
            .field("fields", &self.names)
            .finish()
    }
}

type TypeResolveFn = dyn Fn(&Context, &Value) -> Option<String> + Send + Sync;

/// Decides which object type a value of an interface or union is.
///
/// The default reads a `__typename` string member of the value.
#[derive(Clone, Default)]
pub enum TypeResolver {
    /// Read `__typename` from the value.
    #[default]
    Typename,
    /// A function naming the object type.
    Custom(Arc<TypeResolveFn>),
}

impl TypeResolver {
    /// A custom type resolver.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&Context, &Value) -> Option<String> + Send + Sync + 'static,
    {
        TypeResolver::Custom(Arc::new(f))
    }

    /// Names the object type of `value`, if known.
    pub fn resolve(&self, ctx: &Context, value: &Value) -> Option<String> {
        match self {
            TypeResolver::Typename => value
                .get("__typename")
                .and_then(Value::as_str)
                .map(str::to_owned),
            TypeResolver::Custom(f) => f(ctx, value),
        }
    }
}

impl fmt::Debug for TypeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeResolver::Typename => "TypeResolver::Typename",
            TypeResolver::Custom(_) => "TypeResolver::Custom",
        })
    }
}

type ScalarFn = dyn Fn(&Value) -> Result<Value, String> + Send + Sync;

/// Input coercion and result serialization of a custom scalar.
///
/// `parse` turns a client's input (a variable's JSON value, or a literal converted to JSON)
/// into the value resolvers receive; `serialize` turns a resolver's value into the response's
/// JSON. Both return an error message when the value is not acceptable. The default accepts
/// and returns any JSON value unchanged.
#[derive(Clone, Default)]
pub struct ScalarCoercion {
    parse: Option<Arc<ScalarFn>>,
    serialize: Option<Arc<ScalarFn>>,
}

impl ScalarCoercion {
    /// Accept any value both ways.
    pub fn any() -> Self {
        ScalarCoercion::default()
    }

    /// The `Upload` scalar of the GraphQL multipart request specification: an input only,
    /// whose values are the placeholders
    /// [`read_multipart_request`](crate::read_multipart_request) puts where the files go;
    /// anything else (a string, a file name) is refused. Register it for the SDL's
    /// `scalar Upload`: `.scalar("Upload", ScalarCoercion::upload())`.
    pub fn upload() -> Self {
        ScalarCoercion::any()
            .parse(|value| {
                if crate::upload::placeholder_index(value).is_some() {
                    Ok(value.clone())
                } else {
                    Err("Upload values are files sent as parts of a multipart request (GraphQL multipart request specification).".to_owned())
                }
            })
            .serialize(|_| Err("Upload is an input type; it cannot be returned.".to_owned()))
    }

    /// Sets the input coercion.
    #[must_use]
    pub fn parse<F>(mut self, f: F) -> Self
    where
        F: Fn(&Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.parse = Some(Arc::new(f));
        self
    }

    /// Sets the result serialization.
    #[must_use]
    pub fn serialize<F>(mut self, f: F) -> Self
    where
        F: Fn(&Value) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.serialize = Some(Arc::new(f));
        self
    }

    /// Coerces an input value.
    pub fn parse_value(&self, value: &Value) -> Result<Value, String> {
        match &self.parse {
            Some(f) => f(value),
            None => Ok(value.clone()),
        }
    }

    /// Serializes a result value.
    pub fn serialize_value(&self, value: &Value) -> Result<Value, String> {
        match &self.serialize {
            Some(f) => f(value),
            None => Ok(value.clone()),
        }
    }
}

impl fmt::Debug for ScalarCoercion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalarCoercion")
            .field("custom_parse", &self.parse.is_some())
            .field("custom_serialize", &self.serialize.is_some())
            .finish()
    }
}

/// A stream of events for a subscription field.
pub type EventStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = FieldResult> + Send>>;

type SourceFn = dyn Fn(&Context, &Args) -> EventStream + Send + Sync;

/// The source of events of one subscription field.
#[derive(Clone)]
pub struct SubscriptionSource(pub(crate) std::sync::Arc<SourceFn>);

impl SubscriptionSource {
    /// A source from a function of the request context and the field's coerced arguments.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&Context, &Args) -> EventStream + Send + Sync + 'static,
    {
        SubscriptionSource(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for SubscriptionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubscriptionSource")
    }
}
