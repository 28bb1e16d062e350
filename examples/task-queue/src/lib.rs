//! task-queue: a job queue on broker-core. `POST /jobs` enqueues a job (a kind and a JSON
//! payload; an `Idempotency-Key` makes a retried POST return the same job), workers in
//! the same process run it with retries and exponential backoff, `GET /jobs/{id}` shows
//! its state and every attempt, jobs out of attempts land in the dead letters
//! (`GET /jobs/dead`), and `POST /jobs/dead/redrive` queues them again. Every error is an
//! RFC 9457 `application/problem+json` body.
//!
//! [`App`] is a library (it opens no socket; [`App::spawn_workers`] starts the workers on
//! the current tokio runtime); `main.rs` serves it with the `serve` crate, and the
//! showcase mounts it at `/jobs/` ([`Settings::base_path`]).
//!
//! The broker is the embedded one unless [`Settings::broker_url`] names Redis
//! (`redis://`, feature `redis`) or NATS JetStream (`nats://`, feature `nats`). Workers run
//! each job through an idempotent inbox ([`broker_core::Inbox`]: in Redis with the Redis
//! broker, else in memory), so a message delivered again after its job ran (a worker died
//! before its acknowledgement) does not run it twice. Job records (state, attempts) and
//! idempotency keys are kept in this process's memory unless [`Settings::state_url`]
//! names a Redis (feature `redis`): then every instance on it reads and updates the same
//! records and keys, so a job enqueued on one instance is shown, dead-lettered and
//! re-driven on any other (the keys: `src/state.rs`).

mod inbox;
mod jobs;
mod state;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use broker_core::{
    AnyBroker, Broker as _, Envelope, Json, MessageId, QueueConfig, RetryPolicy, redact_url,
};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
#[cfg(feature = "redis")]
use rest_core::RedisIdempotencyStore;
use rest_core::{
    Error, Fingerprint, IdempotencyKey, IdempotencyStore as _, JsonLimits, MemoryIdempotencyStore,
    ProblemDetails, Reservation, RouteMatch, Router, StoredResponse, TrailingSlash,
};
use serde_json::json;

use inbox::Inbox;
pub use jobs::{Attempt, Job, JobState, KINDS, MAX_SLEEP_MS, NewJob};
pub use state::COUNT_WINDOW;

/// Largest request body accepted (413 above it).
pub const MAX_BODY: usize = 64 * 1024;
/// The most dead letters listed or re-driven at once.
pub const MAX_DEAD: usize = 1000;

/// The page at the app's root: enqueue jobs, watch them, re-drive the dead letters.
const PAGE: &str = include_str!("page.html");

/// How the queue runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path prefix: empty at the root, or `/jobs` (no trailing slash).
    pub base_path: String,
    /// `None` (or `embedded`): the embedded broker; `redis://...` or `nats://...` otherwise
    /// (any URL [`broker_core::AnyBroker`] takes).
    pub broker_url: Option<String>,
    /// Where the inbox lives: `None` is Redis when the broker is Redis and memory
    /// otherwise; a `redis://` URL puts it there; `Some("none")` turns it off (each
    /// redelivery then runs the job again: for demonstrations and tests).
    pub inbox_url: Option<String>,
    /// Where job records and `Idempotency-Key`s live: `None` in this process; a
    /// `redis://` URL (feature `redis`): in that Redis under [`Settings::prefix`], shared
    /// by every instance that uses it.
    pub state_url: Option<String>,
    /// The prefix of this application's keys and streams (`A-Z a-z 0-9 - _`).
    pub prefix: String,
    /// The queue's name.
    pub queue: String,
    /// Workers in this process (0: this instance only serves the API).
    pub workers: usize,
    /// Deliveries a worker fetches at once; it settles them after the last one.
    pub batch: usize,
    /// How long a worker may hold a delivery before it is delivered again; also the
    /// inbox lease.
    pub ack_wait: Duration,
    /// Attempts, backoff and jitter.
    pub retry: RetryPolicy,
    /// How long the inbox remembers a finished job.
    pub inbox_keep: Duration,
    /// A file each job's effect appends a line `ID KIND` to (tests count them).
    pub effects_log: Option<PathBuf>,
    /// Job records kept in memory (the oldest finished ones go first), or listed in Redis
    /// (where each is kept for [`Settings::inbox_keep`]).
    pub max_jobs: usize,
}

impl Default for Settings {
    /// The embedded broker, 4 workers fetching 8 at a time, 30 s ack wait, 3 attempts
    /// with a 1 s backoff doubling to at most 30 s (20% jitter).
    fn default() -> Self {
        Self {
            base_path: String::new(),
            broker_url: None,
            inbox_url: None,
            state_url: None,
            prefix: "task-queue".to_owned(),
            queue: "jobs".to_owned(),
            workers: 4,
            batch: 8,
            ack_wait: Duration::from_secs(30),
            retry: RetryPolicy::new(3, Duration::from_secs(1)).max_delay(Duration::from_secs(30)),
            inbox_keep: Duration::from_secs(24 * 3600),
            effects_log: None,
            max_jobs: 10_000,
        }
    }
}

fn env_number(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}={value:?} is not a whole number")),
        _ => Ok(None),
    }
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Settings {
    /// The defaults, changed by `BROKER_URL`, `INBOX_URL`, `STATE_URL`, `BROKER_PREFIX`, `WORKERS`,
    /// `BATCH`, `ACK_WAIT_MS`, `MAX_ATTEMPTS`, `RETRY_INITIAL_MS` and `EFFECTS_LOG`.
    ///
    /// # Errors
    /// A message naming the variable whose value is not a number.
    pub fn from_env() -> Result<Self, String> {
        let mut settings = Self {
            broker_url: env_text("BROKER_URL"),
            inbox_url: env_text("INBOX_URL"),
            state_url: env_text("STATE_URL"),
            effects_log: env_text("EFFECTS_LOG").map(PathBuf::from),
            ..Self::default()
        };
        if let Some(prefix) = env_text("BROKER_PREFIX") {
            settings.prefix = prefix;
        }
        let small = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if let Some(n) = env_number("WORKERS")? {
            settings.workers = small(n).min(256);
        }
        if let Some(n) = env_number("BATCH")? {
            settings.batch = small(n).clamp(1, 1000);
        }
        if let Some(ms) = env_number("ACK_WAIT_MS")? {
            settings.ack_wait = Duration::from_millis(ms.max(100));
        }
        let attempts = env_number("MAX_ATTEMPTS")?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(settings.retry.max_attempts());
        let initial = env_number("RETRY_INITIAL_MS")?
            .map(Duration::from_millis)
            .unwrap_or(settings.retry.initial());
        settings.retry = RetryPolicy::new(attempts, initial).max_delay(Duration::from_secs(30));
        Ok(settings)
    }
}

/// What the workers and the handlers share.
#[derive(Debug)]
pub(crate) struct Core {
    settings: Settings,
    broker: AnyBroker,
    inbox: Option<Inbox>,
    jobs: state::Records,
    queue: String,
    stopping: AtomicBool,
    running: AtomicUsize,
}

impl Core {
    /// The inbox lease: the ack wait, so a redelivery after a dead worker's deadline finds
    /// the lease expired too.
    fn lease(&self) -> Duration {
        self.settings.ack_wait
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Page,
    Health,
    Enqueue,
    List,
    Dead,
    Redrive,
    Job,
}

const ROUTES: [(Method, &str, Route); 7] = [
    (Method::GET, "/", Route::Page),
    (Method::GET, "/healthz", Route::Health),
    (Method::POST, "/jobs", Route::Enqueue),
    (Method::GET, "/jobs", Route::List),
    (Method::GET, "/jobs/dead", Route::Dead),
    (Method::POST, "/jobs/dead/redrive", Route::Redrive),
    (Method::GET, "/jobs/{id}", Route::Job),
];

/// Where `Idempotency-Key`s live: with the job records.
#[derive(Debug)]
enum Keys {
    Memory(MemoryIdempotencyStore),
    #[cfg(feature = "redis")]
    Redis(RedisIdempotencyStore),
}

/// How long an `Idempotency-Key` and the job it made are remembered.
const KEY_TTL: Duration = Duration::from_secs(24 * 3600);

impl Keys {
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: SystemTime,
    ) -> rest_core::Result<Reservation> {
        match self {
            Keys::Memory(store) => store.begin(key, fingerprint, now).await,
            #[cfg(feature = "redis")]
            Keys::Redis(store) => store.begin(key, fingerprint, now).await,
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
            Keys::Memory(store) => store.complete(key, fingerprint, response, now).await,
            #[cfg(feature = "redis")]
            Keys::Redis(store) => store.complete(key, fingerprint, response, now).await,
        }
    }

    async fn abandon(
        &self,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
    ) -> rest_core::Result<()> {
        match self {
            Keys::Memory(store) => store.abandon(key, fingerprint).await,
            #[cfg(feature = "redis")]
            Keys::Redis(store) => store.abandon(key, fingerprint).await,
        }
    }
}

/// The application.
#[derive(Debug)]
pub struct App {
    core: Arc<Core>,
    base: String,
    router: Router<Route>,
    idempotency: Keys,
}

impl App {
    /// Connects to the broker (and the inbox), declares the queue.
    ///
    /// # Errors
    /// A message when a URL is unusable, a server cannot be reached or the settings do
    /// not fit together.
    pub async fn new(settings: Settings) -> Result<Self, String> {
        let base = settings.base_path.trim_end_matches('/').to_owned();
        let mut router = Router::new().with_trailing_slash(TrailingSlash::Strict);
        for (method, template, route) in ROUTES {
            let path = match (template, base.is_empty()) {
                ("/", false) => format!("{base}/"),
                _ => format!("{base}{template}"),
            };
            router
                .insert(method, &path, route)
                .map_err(|error| error.to_string())?;
        }
        settings
            .retry
            .validate()
            .map_err(|error| error.to_string())?;
        // Unset: the embedded broker. Keys `{prefix}:…` on Redis, streams `Q_{prefix}_…` on NATS.
        let url = settings.broker_url.as_deref().unwrap_or("embedded");
        let broker = AnyBroker::connect_namespaced(url, &settings.prefix)
            .await
            .map_err(|error| format!("BROKER_URL {}: {error}", redact_url(url)))?;
        let inbox = match settings.inbox_url.as_deref() {
            Some("none") => None,
            Some(url) => Some(Inbox::connect(Some(url), &settings.prefix).await?),
            None => Some(Inbox::connect(settings.broker_url.as_deref(), &settings.prefix).await?),
        };
        let records = state::Records::connect(
            settings.state_url.as_deref(),
            &settings.prefix,
            settings.max_jobs,
            settings.inbox_keep,
        )
        .await?;
        let idempotency = match settings.state_url.as_deref() {
            #[cfg(feature = "redis")]
            Some(url) => Keys::Redis(
                RedisIdempotencyStore::connect(
                    url,
                    &format!("{}:state:idem:", settings.prefix),
                    KEY_TTL,
                )
                .await
                .map_err(|error| format!("Idempotency-Keys at {url}: {error}"))?,
            ),
            _ => Keys::Memory(MemoryIdempotencyStore::new(KEY_TTL, 100_000)),
        };
        let queue = settings.queue.clone();
        let config = QueueConfig::default()
            .ack_wait(settings.ack_wait)
            .retry(settings.retry.clone());
        broker
            .declare(&queue, &config)
            .await
            .map_err(|error| format!("cannot declare the queue {queue:?}: {error}"))?;
        let core = Arc::new(Core {
            jobs: records,
            settings,
            broker,
            inbox,
            queue,
            stopping: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        });
        Ok(Self {
            core,
            base,
            router,
            idempotency,
        })
    }

    /// Starts [`Settings::workers`] workers on the current tokio runtime; they stop after
    /// [`serve::App::shutdown`], once their batch is settled.
    pub fn spawn_workers(&self) {
        let instance = MessageId::new().as_uuid().simple().to_string();
        let instance = instance
            .get(instance.len().saturating_sub(8)..)
            .unwrap_or("");
        for n in 0..self.core.settings.workers {
            self.core.running.fetch_add(1, Ordering::AcqRel);
            let name = format!("worker-{instance}-{n}");
            tokio::spawn(worker::run(Arc::clone(&self.core), name));
        }
    }

    /// The broker's name (`embedded`, `redis`, `nats`).
    pub fn broker_name(&self) -> &'static str {
        self.core.broker.name()
    }

    /// How many jobs this instance knows in each state (`queued`, `running`, `retrying`,
    /// `succeeded`, `dead`; a state no job is in is left out): with the records in memory,
    /// what `GET /jobs` counts; with them in Redis, the jobs this instance enqueued or
    /// updated (its share of the work), while `GET /jobs` counts every instance's.
    pub fn job_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.core.jobs.local_counts()
    }

    /// Where job records and `Idempotency-Key`s live (`memory`, `redis`).
    pub fn state_name(&self) -> &'static str {
        self.core.jobs.engine()
    }

    /// The inbox's name (`memory`, `redis`, `none`).
    pub fn inbox_name(&self) -> &'static str {
        self.core.inbox.as_ref().map_or("none", Inbox::name)
    }

    /// Deletes this application's NATS streams (for tests and teardown; a no-op on the
    /// other backends).
    ///
    /// # Errors
    /// The broker's error.
    pub async fn delete_queues(&self) -> Result<(), String> {
        // Redis keys and embedded queues are left as they are.
        #[cfg(feature = "nats")]
        if let AnyBroker::Nats(broker) = &self.core.broker {
            return broker
                .delete_streams()
                .await
                .map_err(|error| error.to_string());
        }
        Ok(())
    }

    /// Answers one request; paths outside [`Settings::base_path`] are 404 problems.
    pub async fn respond(&self, request: Request<serve::Body>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        let (route, id) = match self.router.at(&parts.method, parts.uri.path()) {
            RouteMatch::Found { value, params, .. } => {
                (*value, params.raw("id").map(str::to_owned))
            }
            RouteMatch::Redirect { location } => {
                return serve::page::redirect(StatusCode::PERMANENT_REDIRECT, &location);
            }
            other => return other.error().unwrap_or(Error::NotFound).to_response(),
        };
        match route {
            Route::Page => serve::page::html(StatusCode::OK, PAGE),
            Route::Health => serve::page::text(StatusCode::OK, "ok"),
            Route::Enqueue => match read_body(&parts, body).await {
                Ok(body) => self.enqueue(&parts, &body).await,
                Err(error) => error.to_response(),
            },
            Route::List => self.list().await,
            Route::Job => self.job(id.as_deref().unwrap_or("")).await,
            Route::Dead => self.dead().await,
            Route::Redrive => self.redrive().await,
        }
    }

    fn location(&self, id: &str) -> String {
        format!("{}/jobs/{id}", self.base)
    }

    async fn enqueue(&self, parts: &Parts, body: &[u8]) -> Response<Bytes> {
        let limits = JsonLimits {
            max_bytes: MAX_BODY,
            max_depth: 32,
        };
        let job: NewJob = match rest_core::json_body(&parts.headers, body, &limits) {
            Ok(job) => job,
            Err(error) => return error.to_response(),
        };
        if let Err(invalid) = job.work() {
            return Error::InvalidJson {
                pointer: invalid.pointer,
                reason: invalid.reason,
            }
            .to_response();
        }
        let key = match IdempotencyKey::from_headers(&parts.headers) {
            Ok(key) => key,
            Err(error) => return error.to_response(),
        };
        let now = SystemTime::now();
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let claim = key.map(|key| (key, Fingerprint::of(&parts.method, path, body)));
        if let Some((key, fingerprint)) = &claim {
            match self.idempotency.begin(key, fingerprint, now).await {
                Ok(Reservation::Started) => {}
                Ok(Reservation::Replay(stored)) => return self.replay(&stored).await,
                Err(error) => return error.to_response(),
            }
        }
        let envelope = match Envelope::encode(&Json, &job) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.abandon(claim.as_ref()).await;
                return problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
            }
        };
        let id = envelope.id();
        // Recorded before publishing, so a worker that is quick finds the record.
        let record = match self.core.jobs.insert(id, &job, now).await {
            Ok(record) => record,
            Err(error) => {
                self.abandon(claim.as_ref()).await;
                return state_problem(&error);
            }
        };
        if let Err(error) = self.core.broker.publish(&self.core.queue, envelope).await {
            self.core.jobs.remove(id).await;
            self.abandon(claim.as_ref()).await;
            tracing::warn!(%error, "publish failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the broker did not take the job: {error}"),
            );
        }
        let location = self.location(&record.id);
        if let Some((key, fingerprint)) = &claim {
            let mut headers = Vec::new();
            if let Ok(value) = HeaderValue::from_str(&location) {
                headers.push((header::LOCATION, value));
            }
            let stored = StoredResponse::new(
                StatusCode::ACCEPTED,
                headers,
                Bytes::from(record.id.clone()),
            );
            if let Err(error) = self
                .idempotency
                .complete(key, fingerprint, stored, now)
                .await
            {
                // The job is queued; a retry with the key will be told it is in progress
                // until the reservation's lease ends.
                tracing::warn!(%error, "idempotency response not stored");
            }
        }
        json_response(StatusCode::ACCEPTED, &record, Some(&location))
    }

    /// Releases the key of a request that failed before acting.
    async fn abandon(&self, claim: Option<&(IdempotencyKey, Fingerprint)>) {
        if let Some((key, fingerprint)) = claim
            && let Err(error) = self.idempotency.abandon(key, fingerprint).await
        {
            tracing::warn!(%error, "idempotency key not released");
        }
    }

    /// A retried POST with a known key: the job it created, as it is now.
    async fn replay(&self, stored: &StoredResponse) -> Response<Bytes> {
        let id = String::from_utf8_lossy(&stored.body).into_owned();
        let record = match id.parse::<MessageId>() {
            Ok(parsed) => match self.core.jobs.get(parsed).await {
                Ok(record) => record,
                Err(error) => return state_problem(&error),
            },
            Err(_) => None,
        };
        let mut response = match record {
            Some(job) => json_response(StatusCode::OK, &job, Some(&self.location(&id))),
            // The record was dropped since (the store keeps the newest jobs): the id still
            // names the job.
            None => json_response(
                StatusCode::OK,
                &json!({ "id": id }),
                Some(&self.location(&id)),
            ),
        };
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        response
    }

    async fn list(&self) -> Response<Bytes> {
        let (jobs, counts) = match self.core.jobs.recent(50).await {
            Ok(listed) => listed,
            Err(error) => return state_problem(&error),
        };
        json_response(
            StatusCode::OK,
            &json!({
                "broker": self.broker_name(),
                "inbox": self.inbox_name(),
                "state": self.state_name(),
                "counts": counts,
                "jobs": jobs,
            }),
            None,
        )
    }

    async fn job(&self, id: &str) -> Response<Bytes> {
        let record = match id.parse::<MessageId>() {
            Ok(parsed) => match self.core.jobs.get(parsed).await {
                Ok(record) => record,
                Err(error) => return state_problem(&error),
            },
            Err(_) => None,
        };
        match record {
            Some(job) => json_response(StatusCode::OK, &job, None),
            None => problem(StatusCode::NOT_FOUND, &format!("no job with id {id:?}")),
        }
    }

    async fn dead(&self) -> Response<Bytes> {
        let letters = match self
            .core
            .broker
            .dead_letters(&self.core.queue, MAX_DEAD)
            .await
        {
            Ok(letters) => letters,
            Err(error) => return broker_problem(&error),
        };
        let now = SystemTime::now();
        let mut listed = Vec::with_capacity(letters.len());
        for letter in &letters {
            let job: Option<NewJob> = letter.envelope.decode(&Json).ok();
            if let Some(job) = &job
                && let Err(error) = self
                    .core
                    .jobs
                    .update(letter.envelope.id(), Some(job), now, |record| {
                        record.die(letter);
                    })
                    .await
            {
                tracing::warn!(id = %letter.envelope.id(), %error, "dead job not recorded");
            }
            listed.push(json!({
                    "id": letter.envelope.id().to_string(),
                    "kind": job.as_ref().map(|job| job.kind.as_str()),
                    "payload": job.as_ref().map(|job| &job.payload),
                    "reason": letter.reason,
                    "attempts": letter.attempts,
                "dead_at": jobs::timestamp(letter.dead_at),
            }));
        }
        json_response(StatusCode::OK, &json!({ "dead_letters": listed }), None)
    }

    async fn redrive(&self) -> Response<Bytes> {
        let letters = match self
            .core
            .broker
            .dead_letters(&self.core.queue, MAX_DEAD)
            .await
        {
            Ok(letters) => letters,
            Err(error) => return broker_problem(&error),
        };
        let moved = match self.core.broker.redrive(&self.core.queue, MAX_DEAD).await {
            Ok(moved) => moved,
            Err(error) => return broker_problem(&error),
        };
        // Both take the oldest first: the first `moved` letters are the ones re-driven.
        let ids: Vec<MessageId> = letters
            .iter()
            .take(moved)
            .map(|letter| letter.envelope.id())
            .collect();
        let now = SystemTime::now();
        for id in &ids {
            if let Err(error) = self
                .core
                .jobs
                .update(*id, None, now, jobs::Job::requeue)
                .await
            {
                tracing::warn!(%id, %error, "re-driven job not recorded");
            }
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        json_response(
            StatusCode::OK,
            &json!({ "redriven": moved, "ids": ids }),
            None,
        )
    }
}

impl serve::App for App {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move {
            let head = request.method() == Method::HEAD;
            let mut response = self.respond(request).await;
            if head {
                *response.body_mut() = Bytes::new();
            }
            response.map(serve::full)
        })
    }

    fn shutdown(&self) {
        self.core.stopping.store(true, Ordering::Release);
    }

    fn is_drained(&self) -> bool {
        self.core.running.load(Ordering::Acquire) == 0
    }
}

/// Reads a body of at most [`MAX_BODY`] bytes (413 above it, on the declared length first).
async fn read_body(parts: &Parts, body: serve::Body) -> Result<Bytes, Error> {
    rest_core::check_content_length(&parts.headers, MAX_BODY)?;
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(Error::PayloadTooLarge { limit: MAX_BODY }),
    }
}

fn json_response<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
    location: Option<&str>,
) -> Response<Bytes> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response: Response<Bytes> = serve::page::json(status, body);
            if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(error) => problem(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

fn problem(status: StatusCode, detail: &str) -> Response<Bytes> {
    ProblemDetails::new(status)
        .with_detail(detail)
        .to_response()
}

fn state_problem(error: &str) -> Response<Bytes> {
    tracing::warn!(%error, "job records unavailable");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the job records are unavailable: {error}"),
    )
}

fn broker_problem(error: &broker_core::Error) -> Response<Bytes> {
    tracing::warn!(%error, "broker call failed");
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the broker failed: {error}"),
    )
}
