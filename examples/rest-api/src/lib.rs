//! rest-api as a library: users and posts over SQLite, served with rest-core primitives:
//! full CRUD, cursor and page paging with `Link` headers, ETags on reads, `If-Match` on
//! writes (428 without it), CORS, idempotent POSTs (`Idempotency-Key`) and an OpenAPI 3.1
//! document. Every error is an RFC 9457 `application/problem+json` body.
//!
//! [`App`] owns the state and answers requests (it implements [`serve::App`]); it opens no
//! socket and spawns no task. `src/main.rs` serves it (`cargo run -p rest-api`), and
//! `examples/showcase` mounts the same [`App`] under `/api` with [`Settings::base_path`]:
//! routes, `Location`, `Link` and the OpenAPI `servers` entry then carry the prefix.
//!
//! The data lives in SQLite by default (in memory, or a file) and in PostgreSQL when
//! [`Settings::db`] is a `postgres://` URL (the `postgres` feature): the same handlers, the
//! same answers; see the README for why and how.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use rest_core::{
    CorsPolicy, CursorCodec, EntityTag, Error, Fingerprint, IdempotencyKey, IdempotencyStore,
    JsonLimits, Link, MemoryIdempotencyStore, OpenApiBuilder, Operation, PageRequest,
    ProblemDetails, QueryLimits, RedisIdempotencyStore, Reservation, RouteMatch, Router,
    StoredResponse, TrailingSlash, Validators, check_precondition_syntax, format_links,
    json_object_body, negotiate_media_type, query, require_precondition,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::database::{Database, DbError, Versioned};

mod database;
#[cfg(feature = "postgres")]
mod postgres;
mod sqlite;

/// Largest request body accepted (413 above it).
const MAX_BODY: usize = 64 * 1024;
/// Paging sizes.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// Highest page number accepted, so that offsets stay small.
const MAX_PAGE: u64 = 1_000_000;

/// The body responses are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;

/// Where the API keeps its data and how it is mounted.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path prefix: empty at the root, or `/api` (no trailing slash).
    pub base_path: String,
    /// Where the data lives: `None` is SQLite in memory, a `postgres://` (or
    /// `postgresql://`) URL is PostgreSQL (the `postgres` feature; migrated at start by
    /// [`App::migrate`] or at the first request), anything else a SQLite file.
    pub db: Option<String>,
    /// The one origin CORS allows.
    pub cors_origin: String,
    /// The key paging cursors are signed with (at least 32 bytes). Instances behind one
    /// load balancer need the same key to accept each other's cursors; `None` draws a
    /// fresh key from the operating system's random source at start.
    pub cursor_key: Option<Vec<u8>>,
    /// Where `Idempotency-Key`s and their responses are kept: `None` in this process; a
    /// Redis store shared by every instance, so that a retry landing on another instance
    /// replays the stored response instead of creating again.
    pub idempotency: Option<RedisIdempotencyStore>,
}

impl Default for Settings {
    /// At the root, in memory, CORS for `http://localhost:3000`.
    fn default() -> Self {
        Self {
            base_path: String::new(),
            db: None,
            cors_origin: "http://localhost:3000".to_owned(),
            cursor_key: None,
            idempotency: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resources

/// A user.
#[derive(Debug, Serialize, JsonSchema)]
struct User {
    /// Its id.
    #[schemars(range(min = 1))]
    id: i64,
    name: String,
    email: String,
}

/// What a client sends to create or replace a user.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserInput {
    /// 1 to 100 characters, no U+0000.
    #[schemars(length(min = 1, max = 100), regex(pattern = "^[^\\u0000]*$"))]
    name: String,
    /// 3 to 254 characters with an `@`, no U+0000.
    #[schemars(
        length(min = 3, max = 254),
        regex(pattern = "^[^\\u0000]*@[^\\u0000]*$")
    )]
    email: String,
}

/// A post, written by a user.
#[derive(Debug, Serialize, JsonSchema)]
struct Post {
    #[schemars(range(min = 1))]
    id: i64,
    #[schemars(range(min = 1))]
    user_id: i64,
    title: String,
    body: String,
}

/// What a client sends to create or replace a post.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PostInput {
    /// 1 to 200 characters, no U+0000.
    #[schemars(length(min = 1, max = 200), regex(pattern = "^[^\\u0000]*$"))]
    title: String,
    /// Up to 10000 characters, no U+0000.
    #[schemars(length(max = 10000), regex(pattern = "^[^\\u0000]*$"))]
    body: String,
}

/// One page of users; follow `next_cursor` (or the `Link: rel="next"` header) for more.
#[derive(Debug, Serialize, JsonSchema)]
struct UserPage {
    items: Vec<User>,
    next_cursor: Option<String>,
}

/// One page of posts, by cursor.
#[derive(Debug, Serialize, JsonSchema)]
struct PostPage {
    items: Vec<Post>,
    next_cursor: Option<String>,
}

/// One numbered page of a user's posts.
#[derive(Debug, Serialize, JsonSchema)]
struct NumberedPostPage {
    items: Vec<Post>,
    page: u64,
    per_page: u64,
    total: u64,
}

/// `?limit=&cursor=`
#[derive(Debug, Deserialize, JsonSchema)]
struct CursorQuery {
    /// Items per page (default 20).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `?page=&per_page=`
#[derive(Debug, Deserialize, JsonSchema)]
struct PageQuery {
    /// 1-based page number (default 1).
    #[schemars(range(min = 1, max = 1_000_000))]
    page: Option<u64>,
    /// Items per page (default 20).
    #[schemars(range(min = 1, max = 100))]
    per_page: Option<u64>,
}

/// What a cursor holds: the collection it belongs to and the last id seen.
#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    scope: String,
    after: i64,
}

/// The `/healthz` answer.
#[derive(Debug, Serialize, JsonSchema)]
struct Health {
    status: String,
}

// ---------------------------------------------------------------------------------------
// Application state

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    OpenApi,
    ListUsers,
    CreateUser,
    GetUser,
    ReplaceUser,
    DeleteUser,
    ListUserPosts,
    CreateUserPost,
    ListPosts,
    GetPost,
    ReplacePost,
    DeletePost,
}

/// The API: its routes, database, cursor key, CORS policy and idempotency store.
pub struct App {
    base: String,
    router: Router<Route>,
    db: Database,
    cursors: CursorCodec,
    cors: CorsPolicy,
    idempotency: Idempotency,
    openapi: Bytes,
    json_limits: JsonLimits,
    query_limits: QueryLimits,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// What a handler can fail with: a client error, or the database.
#[derive(Debug)]
enum ApiError {
    Rest(Error),
    Db(DbError),
    /// Another user already has this e-mail address (409).
    EmailTaken(String),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self::Rest(error)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            // A post's user deleted between the check and the insert.
            DbError::NoSuchUser => Self::Rest(Error::NotFound),
            other => Self::Db(other),
        }
    }
}

/// A write refused because another user has the e-mail: 409 with the address, or the
/// database error as it was.
fn email_taken(error: DbError, email: &str) -> ApiError {
    match error {
        DbError::EmailTaken => ApiError::EmailTaken(email.to_owned()),
        other => other.into(),
    }
}

impl ApiError {
    fn into_response(self) -> Response<Bytes> {
        match self {
            Self::Rest(error) => error.to_response(),
            Self::EmailTaken(email) => ProblemDetails::new(StatusCode::CONFLICT)
                .with_detail(format!("another user already has the e-mail {email}"))
                .with_extension("pointer", json!("/email"))
                .to_response(),
            // The engine's own message goes to the log, never to the client.
            Self::Db(DbError::Unavailable(reason)) => {
                tracing::warn!(%reason, "database unavailable");
                let mut response = ProblemDetails::new(StatusCode::SERVICE_UNAVAILABLE)
                    .with_detail("the database is unavailable; try again later")
                    .to_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            Self::Db(DbError::EmailTaken) => ProblemDetails::new(StatusCode::CONFLICT)
                .with_detail("another user already has this e-mail")
                .with_extension("pointer", json!("/email"))
                .to_response(),
            Self::Db(DbError::NoSuchUser) => Error::NotFound.to_response(),
            Self::Db(DbError::Failed(reason)) => {
                tracing::error!(%reason, "database error");
                ProblemDetails::new(StatusCode::INTERNAL_SERVER_ERROR)
                    .with_detail("the database failed; try again")
                    .to_response()
            }
        }
    }
}

type ApiResult = Result<Response<Bytes>, ApiError>;

const ROUTES: &[(Method, &str, Route)] = &[
    (Method::GET, "/healthz", Route::Health),
    (Method::GET, "/openapi.json", Route::OpenApi),
    (Method::GET, "/users", Route::ListUsers),
    (Method::POST, "/users", Route::CreateUser),
    (Method::GET, "/users/{id}", Route::GetUser),
    (Method::PUT, "/users/{id}", Route::ReplaceUser),
    (Method::DELETE, "/users/{id}", Route::DeleteUser),
    (Method::GET, "/users/{id}/posts", Route::ListUserPosts),
    (Method::POST, "/users/{id}/posts", Route::CreateUserPost),
    (Method::GET, "/posts", Route::ListPosts),
    (Method::GET, "/posts/{id}", Route::GetPost),
    (Method::PUT, "/posts/{id}", Route::ReplacePost),
    (Method::DELETE, "/posts/{id}", Route::DeletePost),
];

impl App {
    /// Opens the database (SQLite: creating or migrating the tables; PostgreSQL: reading
    /// the URL, connecting later) and builds the routes under [`Settings::base_path`].
    pub fn new(config: &Settings) -> Result<Self, String> {
        // An empty trailing segment is a different path here (404), not a redirect: ids
        // are never empty.
        let mut router = Router::new().with_trailing_slash(TrailingSlash::Strict);
        for (method, template, route) in ROUTES {
            router
                .insert(
                    method.clone(),
                    &format!("{}{template}", config.base_path),
                    *route,
                )
                .map_err(|error| error.to_string())?;
        }
        // A configured key (shared by instances), or 256 bits from the OS random source.
        // Never derived from the clock or the process id: those are guessable, and with the
        // key a client could sign cursors of its own.
        let key = match &config.cursor_key {
            Some(key) if key.len() < 32 => {
                return Err(format!(
                    "the cursor key has {} bytes; it needs at least 32",
                    key.len()
                ));
            }
            Some(key) => key.clone(),
            None => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|error| format!("no random source for the cursor key: {error}"))?;
                key
            }
        };
        let cursors = CursorCodec::new(&key).map_err(|error| error.to_string())?;
        let db = Database::open(config.db.as_deref())?;
        let cors = CorsPolicy::builder()
            .allow_origin(&config.cors_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                "content-type",
                "if-match",
                "if-none-match",
                "idempotency-key",
            ])
            .expose_headers(["etag", "location", "link", "last-modified"])
            .max_age(Duration::from_secs(600))
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Self {
            base: config.base_path.clone(),
            router,
            db,
            cursors,
            cors,
            idempotency: match &config.idempotency {
                Some(redis) => Idempotency::Redis(redis.clone()),
                None => Idempotency::Memory(MemoryIdempotencyStore::new(IDEMPOTENCY_TTL, 100_000)),
            },
            openapi: openapi_document(&config.base_path)?,
            json_limits: JsonLimits {
                max_bytes: MAX_BODY,
                max_depth: 16,
            },
            query_limits: QueryLimits::default(),
        })
    }

    /// The OpenAPI 3.1 document served at `{base_path}/openapi.json`, as JSON.
    pub fn openapi_json(&self) -> &[u8] {
        &self.openapi
    }

    /// Connects to the database and brings its schema up to date now, rather than at the
    /// first request, so that a wrong `DATABASE_URL` shows at start. Instances starting at
    /// once take turns (PostgreSQL: an advisory lock); each step runs once. SQLite was
    /// migrated by [`App::new`]: nothing to do.
    pub async fn migrate(&self) -> Result<(), String> {
        self.db
            .migrate()
            .await
            .map_err(|error| format!("{} database: {error}", self.db.engine()))
    }

    /// The engine the data lives in: `"SQLite"` or `"PostgreSQL"`.
    pub fn database_engine(&self) -> &'static str {
        self.db.engine()
    }
}

impl serve::App for App {
    /// Answers one request; paths outside [`Settings::base_path`] are 404 problems.
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move { handle(&self, request).await.map(serve::boxed) })
    }
}

async fn handle(app: &App, request: Request<serve::Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let mut response = respond(app, &parts, body).await;
    app.cors.decorate(&parts.headers, response.headers_mut());
    if parts.method == Method::HEAD {
        // HEAD sends GET's headers without the body (RFC 9110 section 9.3.2).
        let length = response.body().len();
        *response.body_mut() = Bytes::new();
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    // The server logs each request (examples/serve).
    response.map(Full::new)
}

async fn respond(app: &App, parts: &Parts, body: serve::Body) -> Response<Bytes> {
    if CorsPolicy::is_preflight(&parts.method, &parts.headers) {
        return app
            .cors
            .preflight(&parts.headers)
            .unwrap_or_else(|error| error.to_response());
    }
    let path = parts.uri.path();
    let (route, params) = match app.router.at(&parts.method, path) {
        RouteMatch::Found { value, params, .. } => (*value, params),
        RouteMatch::Options { allow } => {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response.headers_mut().insert(header::ALLOW, allow.clone());
            return response;
        }
        RouteMatch::Redirect { location } => {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
        other => {
            return other.error().unwrap_or(Error::NotFound).to_response();
        }
    };
    let id = match params.raw("id") {
        Some(_) => match params.parse::<i64>("id") {
            Ok(id) => Some(id),
            Err(error) => return error.to_response(),
        },
        None => None,
    };
    let body = if parts.method == Method::POST || parts.method == Method::PUT {
        match read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(error) => return error.to_response(),
        }
    } else {
        Bytes::new()
    };
    let result = dispatch(app, route, id.unwrap_or(0), parts, &body).await;
    result.unwrap_or_else(ApiError::into_response)
}

/// Reads a body of at most [`MAX_BODY`] bytes (413 above it, checked on the declared length
/// first so that an honest client gets its answer before sending the body).
async fn read_body(headers: &HeaderMap, body: serve::Body) -> Result<Bytes, Error> {
    rest_core::check_content_length(headers, MAX_BODY)?;
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Error::PayloadTooLarge { limit: MAX_BODY }),
    }
}

async fn dispatch(app: &App, route: Route, id: i64, parts: &Parts, body: &[u8]) -> ApiResult {
    match route {
        Route::Health => json_response(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
            },
        ),
        Route::OpenApi => {
            let mut response = Response::new(app.openapi.clone());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Route::ListUsers => list_users(app, parts).await,
        Route::CreateUser => idempotent(app, parts, body, || create_user(app, parts, body)).await,
        Route::GetUser => get_user(app, id, parts).await,
        Route::ReplaceUser => replace_user(app, id, parts, body).await,
        Route::DeleteUser => delete_user(app, id, parts).await,
        Route::ListUserPosts => list_user_posts(app, id, parts).await,
        Route::CreateUserPost => {
            idempotent(app, parts, body, || create_post(app, id, parts, body)).await
        }
        Route::ListPosts => list_posts(app, parts).await,
        Route::GetPost => get_post(app, id, parts).await,
        Route::ReplacePost => replace_post(app, id, parts, body).await,
        Route::DeletePost => delete_post(app, id, parts).await,
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_vec(value).map_err(|error| {
        ApiError::Rest(Error::Config(format!(
            "cannot serialize a response: {error}"
        )))
    })?;
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The only representation is JSON: anything else the client insists on is 406.
fn accept_json(parts: &Parts) -> Result<(), Error> {
    negotiate_media_type(&parts.headers, &["application/json"]).map(|_| ())
}

fn etag(version: i64) -> EntityTag {
    // "v" + digits is always a valid entity tag.
    EntityTag::strong(format!("v{version}")).unwrap_or_else(|_| EntityTag::from_content(b""))
}

fn modified(updated_at: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(updated_at).unwrap_or(0))
}

/// The validators of a stored row: its version as a strong ETag, its update time.
fn validators(version: i64, updated_at: i64) -> Validators {
    Validators::new()
        .etag(etag(version))
        .last_modified(modified(updated_at))
}

fn with_validators(
    mut response: Response<Bytes>,
    version: i64,
    updated_at: i64,
) -> Response<Bytes> {
    validators(version, updated_at).write_headers(response.headers_mut());
    response
}

/// Reads with validators: 304 when the client's copy is current (RFC 9110 section 13.2.2).
fn conditional_read<T: Serialize>(
    parts: &Parts,
    value: &T,
    version: i64,
    updated_at: i64,
) -> ApiResult {
    let validators = validators(version, updated_at);
    if let Some(not_modified) = validators.read(&parts.method, &parts.headers)? {
        return Ok(not_modified.map(|()| Bytes::new()));
    }
    let mut response = json_response(StatusCode::OK, value)?;
    validators.write_headers(response.headers_mut());
    Ok(response)
}

/// Writes must carry `If-Match` (428 otherwise) matching the current ETag (412 otherwise).
fn conditional_write(parts: &Parts, version: i64, updated_at: i64) -> Result<(), Error> {
    validators(version, updated_at).write(&parts.method, &parts.headers)
}

/// Checks a string's length in characters (as JSON Schema counts them), naming the field.
/// U+0000 is refused too: PostgreSQL's text cannot hold it, and both engines answer alike.
fn check_length(pointer: &str, value: &str, min: usize, max: usize) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::InvalidJson {
            pointer: pointer.to_owned(),
            reason: "must not contain U+0000".to_owned(),
        });
    }
    let length = value.chars().count();
    if length < min || length > max {
        return Err(Error::InvalidJson {
            pointer: pointer.to_owned(),
            reason: format!("must be {min} to {max} characters, not {length}"),
        });
    }
    Ok(())
}

fn user_input(parts: &Parts, body: &[u8], limits: &JsonLimits) -> Result<UserInput, Error> {
    let input: UserInput = json_object_body(&parts.headers, body, limits)?;
    check_length("/name", &input.name, 1, 100)?;
    check_length("/email", &input.email, 3, 254)?;
    if !input.email.contains('@') {
        return Err(Error::InvalidJson {
            pointer: "/email".to_owned(),
            reason: "must contain '@'".to_owned(),
        });
    }
    Ok(input)
}

fn post_input(parts: &Parts, body: &[u8], limits: &JsonLimits) -> Result<PostInput, Error> {
    let input: PostInput = json_object_body(&parts.headers, body, limits)?;
    check_length("/title", &input.title, 1, 200)?;
    check_length("/body", &input.body, 0, 10_000)?;
    Ok(input)
}

/// serde reads `?limit=` as "absent"; an empty number is malformed here.
fn reject_empty_numbers(parts: &Parts, names: &[&str]) -> Result<(), Error> {
    let query = parts.uri.query().unwrap_or("");
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if value.is_empty() && names.contains(&name.as_ref()) {
            return Err(Error::InvalidQuery(format!("{name} must be a number")));
        }
    }
    Ok(())
}

fn cursor_page(app: &App, parts: &Parts, scope: &str) -> Result<(i64, u32), Error> {
    reject_empty_numbers(parts, &["limit"])?;
    let q: CursorQuery = query(parts.uri.query(), &app.query_limits)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::InvalidQuery(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let after = match q.cursor {
        Some(cursor) => {
            let position: CursorPosition = app.cursors.decode(&cursor)?;
            if position.scope != scope {
                return Err(Error::InvalidCursor);
            }
            position.after
        }
        None => 0,
    };
    Ok((after, limit))
}

/// `next_cursor` and the `Link: rel="next"` header of a cursor page.
fn next_link(
    app: &App,
    scope: &str,
    path: &str,
    limit: u32,
    last: Option<i64>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let Some(after) = last else {
        return Ok((None, None));
    };
    let cursor = app.cursors.encode(&CursorPosition {
        scope: scope.to_owned(),
        after,
    })?;
    let link = format_links(&[Link::new(
        format!("{path}?limit={limit}&cursor={cursor}"),
        "next",
    )]);
    Ok((Some(cursor), Some(link)))
}

fn with_link(mut response: Response<Bytes>, link: Option<String>) -> Response<Bytes> {
    if let Some(value) = link.and_then(|link| HeaderValue::from_str(&link).ok()) {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// How long a stored `Idempotency-Key` response is replayed.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where the idempotency keys live ([`Settings::idempotency`]).
enum Idempotency {
    Memory(MemoryIdempotencyStore),
    Redis(RedisIdempotencyStore),
}

impl Idempotency {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: SystemTime,
    ) -> rest_core::Result<Reservation> {
        match self {
            Self::Memory(store) => store.begin(key, fingerprint, now).await,
            Self::Redis(store) => store.begin(key, fingerprint, now).await,
        }
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        response: StoredResponse,
        now: SystemTime,
    ) -> rest_core::Result<()> {
        match self {
            Self::Memory(store) => store.complete(key, fingerprint, response, now).await,
            Self::Redis(store) => store.complete(key, fingerprint, response, now).await,
        }
    }

    async fn abandon(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
    ) -> rest_core::Result<()> {
        match self {
            Self::Memory(store) => store.abandon(key, fingerprint).await,
            Self::Redis(store) => store.abandon(key, fingerprint).await,
        }
    }
}

/// Runs a creating request at most once per `Idempotency-Key`: a retry with the same key
/// and payload replays the stored response; another payload is 422.
async fn idempotent(
    app: &App,
    parts: &Parts,
    body: &[u8],
    create: impl AsyncFnOnce() -> ApiResult,
) -> ApiResult {
    let Some(key) = IdempotencyKey::from_headers(&parts.headers)? else {
        return create().await;
    };
    // This API restricts keys to tokens (the draft allows any string).
    if !key
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
        || parts
            .headers
            .get(rest_core::IDEMPOTENCY_KEY)
            .is_some_and(|v| v.as_bytes().first() == Some(&b'"'))
    {
        return Err(Error::InvalidHeader {
            name: "Idempotency-Key",
            reason: "must be 1 to 255 of A-Z a-z 0-9 _ . : -".to_owned(),
        }
        .into());
    }
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let fingerprint = Fingerprint::of(&parts.method, path, body);
    let now = SystemTime::now();
    match app.idempotency.begin(&key, &fingerprint, now).await? {
        Reservation::Replay(stored) => {
            // A replay must not point a client at a resource deleted since: say so instead.
            let location = stored
                .headers
                .iter()
                .find(|(name, _)| name == header::LOCATION)
                .and_then(|(_, value)| value.to_str().ok());
            if let Some(location) = location
                && !resource_exists(app, location).await?
            {
                return Ok(ProblemDetails::new(StatusCode::CONFLICT)
                    .with_detail(
                        "the resource created with this Idempotency-Key has been deleted since",
                    )
                    .to_response());
            }
            Ok(stored.to_response())
        }
        Reservation::Started => match create().await {
            Ok(response) if response.status().is_success() => {
                let keep: Vec<(HeaderName, HeaderValue)> = response
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                let stored = StoredResponse::new(response.status(), keep, response.body().clone());
                // The resource exists now: a store that failed to keep the response must
                // not turn the creation into an error. A retry is told the key is in
                // progress until the reservation lapses.
                if let Err(error) = app
                    .idempotency
                    .complete(&key, &fingerprint, stored, now)
                    .await
                {
                    tracing::warn!(%error, "idempotency response not stored");
                }
                Ok(response)
            }
            other => {
                // Nothing was created; if the key cannot be released, it lapses.
                if let Err(error) = app.idempotency.abandon(&key, &fingerprint).await {
                    tracing::warn!(%error, "idempotency key not released");
                }
                other
            }
        },
    }
}

/// Whether the resource at a `Location` this server issued still exists.
async fn resource_exists(app: &App, location: &str) -> Result<bool, ApiError> {
    let RouteMatch::Found { value, params, .. } = app.router.at(&Method::GET, location) else {
        return Ok(false);
    };
    let id = params.parse::<i64>("id")?;
    Ok(match value {
        Route::GetUser => app.db.user(id).await?.is_some(),
        Route::GetPost => app.db.post(id).await?.is_some(),
        _ => false,
    })
}

// ---------------------------------------------------------------------------------------
// Users

async fn list_users(app: &App, parts: &Parts) -> ApiResult {
    accept_json(parts)?;
    let (after, limit) = cursor_page(app, parts, "users")?;
    let mut items = app.db.users_after(after, i64::from(limit) + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let last = if more {
        items.last().map(|user| user.id)
    } else {
        None
    };
    let (next_cursor, link) = next_link(app, "users", &format!("{}/users", app.base), limit, last)?;
    Ok(with_link(
        json_response(StatusCode::OK, &UserPage { items, next_cursor })?,
        link,
    ))
}

async fn create_user(app: &App, parts: &Parts, body: &[u8]) -> ApiResult {
    accept_json(parts)?;
    let input = user_input(parts, body, &app.json_limits)?;
    let now = now_seconds();
    let id = app
        .db
        .insert_user(&input, now)
        .await
        .map_err(|error| email_taken(error, &input.email))?;
    let user = User {
        id,
        name: input.name,
        email: input.email,
    };
    let mut response = with_validators(json_response(StatusCode::CREATED, &user)?, 1, now);
    if let Ok(location) = HeaderValue::from_str(&format!("{}/users/{id}", app.base)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_user(app: &App, id: i64, parts: &Parts) -> ApiResult {
    accept_json(parts)?;
    let found = app.db.user(id).await?.ok_or(Error::NotFound)?;
    conditional_read(parts, &found.value, found.version, found.updated_at)
}

async fn replace_user(app: &App, id: i64, parts: &Parts, body: &[u8]) -> ApiResult {
    accept_json(parts)?;
    let Versioned {
        version,
        updated_at,
        ..
    } = app.db.user(id).await?.ok_or(Error::NotFound)?;
    require_precondition(&parts.headers)?;
    check_precondition_syntax(&parts.headers)?;
    let input = user_input(parts, body, &app.json_limits)?;
    conditional_write(parts, version, updated_at)?;
    let now = now_seconds();
    // The version check in SQL keeps the write atomic with the precondition.
    let replaced = app
        .db
        .update_user(id, version, &input, now)
        .await
        .map_err(|error| email_taken(error, &input.email))?;
    if !replaced {
        return Err(Error::PreconditionFailed.into());
    }
    let user = User {
        id,
        name: input.name,
        email: input.email,
    };
    Ok(with_validators(
        json_response(StatusCode::OK, &user)?,
        version + 1,
        now,
    ))
}

async fn delete_user(app: &App, id: i64, parts: &Parts) -> ApiResult {
    let Versioned {
        version,
        updated_at,
        ..
    } = app.db.user(id).await?.ok_or(Error::NotFound)?;
    conditional_write(parts, version, updated_at)?;
    if !app.db.delete_user(id, version).await? {
        return Err(Error::PreconditionFailed.into());
    }
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// Posts

async fn list_posts(app: &App, parts: &Parts) -> ApiResult {
    accept_json(parts)?;
    let (after, limit) = cursor_page(app, parts, "posts")?;
    let mut items = app.db.posts_after(after, i64::from(limit) + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let last = if more {
        items.last().map(|post| post.id)
    } else {
        None
    };
    let (next_cursor, link) = next_link(app, "posts", &format!("{}/posts", app.base), limit, last)?;
    Ok(with_link(
        json_response(StatusCode::OK, &PostPage { items, next_cursor })?,
        link,
    ))
}

async fn list_user_posts(app: &App, user_id: i64, parts: &Parts) -> ApiResult {
    accept_json(parts)?;
    reject_empty_numbers(parts, &["page", "per_page"])?;
    let q: PageQuery = query(parts.uri.query(), &app.query_limits)?;
    if q.page.is_some_and(|page| !(1..=MAX_PAGE).contains(&page))
        || q.per_page
            .is_some_and(|size| !(1..=u64::from(MAX_LIMIT)).contains(&size))
    {
        return Err(Error::InvalidQuery(format!(
            "page must be 1 to {MAX_PAGE} and per_page 1 to {MAX_LIMIT}"
        ))
        .into());
    }
    let page = PageRequest::new(
        q.page,
        q.per_page,
        u64::from(DEFAULT_LIMIT),
        u64::from(MAX_LIMIT),
    );
    app.db.user(user_id).await?.ok_or(Error::NotFound)?;
    let total = app.db.count_user_posts(user_id).await?;
    let total = u64::try_from(total).unwrap_or(0);
    let items = app
        .db
        .user_posts(
            user_id,
            i64::try_from(page.per_page).unwrap_or(i64::MAX),
            i64::try_from(page.offset()).unwrap_or(i64::MAX),
        )
        .await?;
    let pages = page.page_count(total).max(1);
    let base = format!("{}/users/{user_id}/posts", app.base);
    let at =
        |n: u64, rel: &str| Link::new(format!("{base}?page={n}&per_page={}", page.per_page), rel);
    let mut links = vec![at(1, "first"), at(pages, "last")];
    if page.page > 1 {
        links.push(at((page.page - 1).min(pages), "prev"));
    }
    if page.page < pages {
        links.push(at(page.page + 1, "next"));
    }
    let response = json_response(
        StatusCode::OK,
        &NumberedPostPage {
            items,
            page: page.page,
            per_page: page.per_page,
            total,
        },
    )?;
    Ok(with_link(response, Some(format_links(&links))))
}

async fn create_post(app: &App, user_id: i64, parts: &Parts, body: &[u8]) -> ApiResult {
    accept_json(parts)?;
    app.db.user(user_id).await?.ok_or(Error::NotFound)?;
    let input = post_input(parts, body, &app.json_limits)?;
    let now = now_seconds();
    // A user deleted since the check above: the foreign key refuses the post (404).
    let id = app.db.insert_post(user_id, &input, now).await?;
    let post = Post {
        id,
        user_id,
        title: input.title,
        body: input.body,
    };
    let mut response = with_validators(json_response(StatusCode::CREATED, &post)?, 1, now);
    if let Ok(location) = HeaderValue::from_str(&format!("{}/posts/{id}", app.base)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

async fn get_post(app: &App, id: i64, parts: &Parts) -> ApiResult {
    accept_json(parts)?;
    let found = app.db.post(id).await?.ok_or(Error::NotFound)?;
    conditional_read(parts, &found.value, found.version, found.updated_at)
}

async fn replace_post(app: &App, id: i64, parts: &Parts, body: &[u8]) -> ApiResult {
    accept_json(parts)?;
    let Versioned {
        value: post,
        version,
        updated_at,
    } = app.db.post(id).await?.ok_or(Error::NotFound)?;
    require_precondition(&parts.headers)?;
    check_precondition_syntax(&parts.headers)?;
    let input = post_input(parts, body, &app.json_limits)?;
    conditional_write(parts, version, updated_at)?;
    let now = now_seconds();
    if !app.db.update_post(id, version, &input, now).await? {
        return Err(Error::PreconditionFailed.into());
    }
    let post = Post {
        id,
        user_id: post.user_id,
        title: input.title,
        body: input.body,
    };
    Ok(with_validators(
        json_response(StatusCode::OK, &post)?,
        version + 1,
        now,
    ))
}

async fn delete_post(app: &App, id: i64, parts: &Parts) -> ApiResult {
    let Versioned {
        version,
        updated_at,
        ..
    } = app.db.post(id).await?.ok_or(Error::NotFound)?;
    conditional_write(parts, version, updated_at)?;
    if !app.db.delete_post(id, version).await? {
        return Err(Error::PreconditionFailed.into());
    }
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// OpenAPI

fn openapi_document(base_path: &str) -> Result<Bytes, String> {
    let mut api = OpenApiBuilder::new("backend-kit rest-api", "1.0.0").description(
        "Users and posts. Errors are RFC 9457 problem details. Reads carry ETag and \
         Last-Modified; writes need If-Match (428 without it, 412 when stale).",
    );
    let user = api.schema::<User>();
    let user_input = api.schema::<UserInput>();
    let post = api.schema::<Post>();
    let post_input = api.schema::<PostInput>();
    let user_page = api.schema::<UserPage>();
    let post_page = api.schema::<PostPage>();
    let numbered = api.schema::<NumberedPostPage>();
    let health = api.schema::<Health>();
    let cursor_query = api.query_parameters::<CursorQuery>();
    let page_query = api.query_parameters::<PageQuery>();
    let id = json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX});
    let text = json!({"type": "string"});
    let etag_value = json!({"type": "string", "pattern": "^\"v[0-9]+\"$"});
    // `*` or a list of entity tags (RFC 9110 section 13.1.1); anything else is 400.
    let if_match = json!({
        "type": "string",
        "pattern": "^(\\*|(W/)?\"[\\x21\\x23-\\x7e]*\"([ \\t]*,[ \\t]*(W/)?\"[\\x21\\x23-\\x7e]*\")*)$"
    });
    let idempotency_key = json!({"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,255}$"});

    let list =
        |op: &str, summary: &str, schema: &serde_json::Value, params: &[rest_core::Parameter]| {
            Operation::new(op)
                .summary(summary)
                .parameters(params.to_vec())
                .response(200, "A page", Some(schema.clone()))
                .response_header(200, "Link", false, text.clone())
                .problem(400, "A malformed query or a forged cursor")
                .problem(406, "Only application/json is available")
                .problem(414, "The query string is too long")
                .problem(
                    503,
                    "The database is unavailable (PostgreSQL down or unreachable)",
                )
        };
    let create = |op: &str,
                  summary: &str,
                  input: &serde_json::Value,
                  output: &serde_json::Value| {
        Operation::new(op)
            .summary(summary)
            .header_param("Idempotency-Key", false, idempotency_key.clone())
            .json_body(input.clone())
            .response(201, "Created", Some(output.clone()))
            .response_header(201, "Location", true, text.clone())
            .response_header(201, "ETag", true, etag_value.clone())
            .problem(400, "Malformed JSON (with line and column) or a bad header")
            .problem(406, "Only application/json is available")
            .problem(409, "A request with this Idempotency-Key is still running, or (users) another user has the e-mail")
            .problem(413, "The body is over 64 KiB")
            .problem(415, "The body is not application/json")
            .problem(422, "A field is invalid (named by JSON pointer), or the Idempotency-Key was used for another request")
            .problem(503, "The idempotency store is full")
    };
    let read = |op: &str, summary: &str, output: &serde_json::Value| {
        Operation::new(op)
            .summary(summary)
            .path_param("id", id.clone())
            .response(200, "Found", Some(output.clone()))
            .response_header(200, "ETag", true, etag_value.clone())
            .response_header(200, "Last-Modified", true, text.clone())
            .response(
                304,
                "Not modified (If-None-Match / If-Modified-Since)",
                None,
            )
            .problem(400, "The id is not an integer")
            .problem(404, "No such resource")
            .problem(406, "Only application/json is available")
            .problem(
                412,
                "An If-Match or If-Unmodified-Since precondition is false",
            )
            .problem(
                503,
                "The database is unavailable (PostgreSQL down or unreachable)",
            )
    };
    let replace =
        |op: &str, summary: &str, input: &serde_json::Value, output: &serde_json::Value| {
            Operation::new(op)
                .summary(summary)
                .path_param("id", id.clone())
                .header_param("If-Match", true, if_match.clone())
                .json_body(input.clone())
                .response(200, "Replaced", Some(output.clone()))
                .response_header(200, "ETag", true, etag_value.clone())
                .problem(400, "Malformed JSON (with line and column) or a bad id")
                .problem(404, "No such resource")
                .problem(406, "Only application/json is available")
                .problem(409, "(users) Another user has the e-mail")
                .problem(412, "The ETag in If-Match is not the current one")
                .problem(413, "The body is over 64 KiB")
                .problem(415, "The body is not application/json")
                .problem(422, "A field is invalid (named by JSON pointer)")
                .problem(428, "If-Match is required")
                .problem(
                    503,
                    "The database is unavailable (PostgreSQL down or unreachable)",
                )
        };
    let delete = |op: &str, summary: &str| {
        Operation::new(op)
            .summary(summary)
            .path_param("id", id.clone())
            .header_param("If-Match", true, if_match.clone())
            .response(204, "Deleted", None)
            .problem(400, "The id is not an integer")
            .problem(404, "No such resource")
            .problem(412, "The ETag in If-Match is not the current one")
            .problem(428, "If-Match is required")
            .problem(
                503,
                "The database is unavailable (PostgreSQL down or unreachable)",
            )
    };
    let link = |op: &str, with_etag: bool| {
        let parameters = if with_etag {
            json!({"path.id": "$response.body#/id", "header.If-Match": "$response.header.ETag"})
        } else {
            json!({"path.id": "$response.body#/id"})
        };
        json!({"operationId": op, "parameters": parameters})
    };
    let user_links = |operation: Operation, status: u16| {
        operation
            .response_link(status, "GetUser", link("getUser", false))
            .response_link(status, "ReplaceUser", link("replaceUser", true))
            .response_link(status, "DeleteUser", link("deleteUser", true))
            .response_link(status, "ListUserPosts", link("listUserPosts", false))
            .response_link(status, "CreateUserPost", link("createUserPost", false))
    };
    let post_links = |operation: Operation, status: u16| {
        operation
            .response_link(status, "GetPost", link("getPost", false))
            .response_link(status, "ReplacePost", link("replacePost", true))
            .response_link(status, "DeletePost", link("deletePost", true))
    };

    let operations = [
        (
            Method::GET,
            "/healthz",
            Operation::new("health").summary("Liveness").response(
                200,
                "The server is up",
                Some(health),
            ),
        ),
        (
            Method::GET,
            "/users",
            list("listUsers", "Users, by cursor", &user_page, &cursor_query),
        ),
        (
            Method::POST,
            "/users",
            user_links(
                create("createUser", "Create a user", &user_input, &user),
                201,
            ),
        ),
        (
            Method::GET,
            "/users/{id}",
            user_links(read("getUser", "One user", &user), 200),
        ),
        (
            Method::PUT,
            "/users/{id}",
            user_links(
                replace("replaceUser", "Replace a user", &user_input, &user),
                200,
            ),
        ),
        (
            Method::DELETE,
            "/users/{id}",
            delete("deleteUser", "Delete a user and their posts"),
        ),
        (
            Method::GET,
            "/users/{id}/posts",
            list(
                "listUserPosts",
                "A user's posts, by page",
                &numbered,
                &page_query,
            )
            .path_param("id", id.clone())
            .problem(404, "No such user"),
        ),
        (
            Method::POST,
            "/users/{id}/posts",
            post_links(
                create("createUserPost", "Write a post", &post_input, &post),
                201,
            )
            .path_param("id", id.clone())
            .problem(404, "No such user"),
        ),
        (
            Method::GET,
            "/posts",
            list("listPosts", "Posts, by cursor", &post_page, &cursor_query),
        ),
        (
            Method::GET,
            "/posts/{id}",
            post_links(read("getPost", "One post", &post), 200),
        ),
        (
            Method::PUT,
            "/posts/{id}",
            post_links(
                replace("replacePost", "Replace a post", &post_input, &post),
                200,
            ),
        ),
        (
            Method::DELETE,
            "/posts/{id}",
            delete("deletePost", "Delete a post"),
        ),
    ];
    for (method, path, operation) in operations {
        api.operation(&method, path, operation)
            .map_err(|error| error.to_string())?;
    }
    let document = api.build().to_json();
    if base_path.is_empty() {
        return Ok(document);
    }
    // Mounted under a prefix: the paths stay as written, the server URL carries the prefix
    // (OpenAPI 3.1 section 4.8.5, relative server URLs).
    let mut value: serde_json::Value =
        serde_json::from_slice(&document).map_err(|error| error.to_string())?;
    if let Some(object) = value.as_object_mut() {
        object.insert("servers".to_owned(), json!([{ "url": base_path }]));
    }
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|error| error.to_string())
}
