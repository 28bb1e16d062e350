//! The rest-api example's "GET one user" written in axum 0.8, for the wrk comparison in
//! scripts/bench-rest-api.sh: the same SQLite table and query, the same ETag, Last-Modified
//! and conditional-request handling (rest-core's functions), the same JSON and problem
//! bodies. Only the framework differs. Seeds user 1 at start.
//!
//! Run with: `PORT=8081 cargo run --release --manifest-path benches/Cargo.toml --bin rest_api_axum`

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rest_core::{
    EntityTag, Error, Precondition, evaluate_preconditions, format_http_date, negotiate_media_type,
};
use rusqlite::{Connection, OptionalExtension, params};

#[derive(serde::Serialize)]
struct User {
    id: i64,
    name: String,
    email: String,
}

type Db = Arc<Mutex<Connection>>;

fn problem(error: &Error) -> Response {
    error.to_response::<axum::body::Body>()
}

async fn get_user(
    State(db): State<Db>,
    Path(id): Path<i64>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(error) = negotiate_media_type(&headers, &["application/json"]) {
        return problem(&error);
    }
    let found = {
        let conn = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut statement = match conn
            .prepare_cached("SELECT id, name, email, version, updated_at FROM users WHERE id = ?1")
        {
            Ok(statement) => statement,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
        statement
            .query_row(params![id], |row| {
                Ok((
                    User {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        email: row.get(2)?,
                    },
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })
            .optional()
    };
    let Ok(Some((user, version, updated_at))) = found else {
        return problem(&Error::NotFound);
    };
    let etag =
        EntityTag::strong(format!("v{version}")).unwrap_or_else(|_| EntityTag::from_content(b""));
    let modified = UNIX_EPOCH + Duration::from_secs(u64::try_from(updated_at).unwrap_or(0));
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, etag.to_header_value());
    if let Ok(value) = HeaderValue::from_str(&format_http_date(modified)) {
        out.insert(header::LAST_MODIFIED, value);
    }
    match evaluate_preconditions(&method, &headers, Some(&etag), Some(modified)) {
        Precondition::NotModified => (StatusCode::NOT_MODIFIED, out).into_response(),
        Precondition::Failed => problem(&Error::PreconditionFailed),
        Precondition::Proceed => {
            let body = serde_json::to_vec(&user).unwrap_or_default();
            out.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            (StatusCode::OK, out, body).into_response()
        }
    }
}

#[tokio::main]
async fn main() {
    let conn = Connection::open_in_memory().expect("sqlite");
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, \
         email TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, updated_at INTEGER NOT NULL);",
    )
    .expect("schema");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    conn.execute(
        "INSERT INTO users (name, email, updated_at) VALUES ('Ada', 'ada@example.com', ?1)",
        params![now],
    )
    .expect("seed");
    let db: Db = Arc::new(Mutex::new(conn));
    let app = Router::new()
        .route("/users/{id}", get(get_user))
        .with_state(db);
    let port = std::env::var("PORT").unwrap_or_else(|_| "8081".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
        .await
        .expect("bind");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("addr")
    );
    axum::serve(listener, app).await.expect("serve");
}
