//! broker-live as a library: messages in the browser. A logged-in browser opens one
//! WebSocket (ws-core) to `/ws`, subscribes to subject patterns and publishes JSON on
//! subjects through broker-core; every frame is checked against the connection's own
//! allow-lists ([`broker_core::SubjectPermissions`], made per user from a
//! [`PermissionTemplate`]) and a refusal is an `error` frame that says why (the frames:
//! [`ClientFrame`], [`ServerFrame`]).
//!
//! How a message travels: a publish goes to one broker topic; every instance binds a queue
//! of its own to that topic ([`Settings::instance`]), fetches from it and hands each
//! message to the ws-core hub, whose rooms are the patterns its browsers subscribed to.
//! On the embedded broker that is this process; on Redis Streams or NATS JetStream
//! ([`Settings::broker_url`]) every instance on that broker delivers every message to its
//! own browsers. A browser that does not read is handled by the hub's slow-consumer policy
//! ([`Settings::hub`]: by default its queue holds 256 messages or 1 MiB and then the
//! connection is closed with 1013), never by buffering without bound.
//!
//! Who may connect: the handshake must come from an allowed origin
//! ([`Settings::allowed_origins`]) and carry a logged-in auth-core session, which
//! [`Settings::authenticator`] checks ([`Authenticator`] is implemented for
//! [`auth_login::App`], whose session cookie it reads); anyone else gets 401 before any
//! socket is opened. `GET /me` tells the page who it is and what it may do.
//!
//! [`App`] opens no socket: `src/main.rs` serves it with `auth-login` beside it, and the
//! showcase mounts it at `/broker/` next to its `/auth/`.

mod frame;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use broker_core::{
    AnyBroker, Broker as _, Envelope, QueueConfig, RetryPolicy, Settlement, SubjectPattern,
    SubjectPermissions, redact_url,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Notify;
use ws_core::{
    ClientId, CloseCode, Connection, DeflateConfig, HandshakeConfig, Hub, HubConfig, Limits,
    Message, Outgoing, WebSocket, accept, rejection_response,
};

pub use frame::{ClientFrame, ErrorCode, PermissionTemplate, ServerFrame, user_token};

/// The page.
const PAGE: &str = include_str!("page.html");

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;

/// The largest frame from a browser, in bytes.
pub const MAX_FRAME: usize = 16 * 1024;

/// The header that carries a message's subject through the broker.
pub const SUBJECT_HEADER: &str = "live-subject";
/// The header that carries who published a message.
pub const FROM_HEADER: &str = "live-from";

/// Messages older than this when an instance fetches them are not delivered: they waited
/// in its queue while it was stopped, and browsers want what happens now.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Who is logged in, from a request's headers.
pub trait Authenticator: Send + Sync + 'static {
    /// The user logged in by `headers` (a session cookie, a token), `None` for nobody; an
    /// `Err` when the store could not be asked (the handshake then gets 503).
    fn user<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;
}

/// auth-login's session cookie: the user its login form logged in.
impl<S: auth_core::SessionStore + 'static> Authenticator for auth_login::App<S> {
    fn user<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>> {
        Box::pin(async move {
            self.session_user(headers)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// How the bridge is mounted, whom it lets in and which broker it uses.
pub struct Settings {
    /// The path prefix: empty at the root, or `/broker` (no trailing slash).
    pub base_path: String,
    /// The `Origin`s `/ws` accepts.
    pub allowed_origins: Vec<String>,
    /// Who is logged in.
    pub authenticator: Arc<dyn Authenticator>,
    /// Where the page sends a visitor who is not logged in.
    pub login_url: String,
    /// Each user's allow-lists.
    pub permissions: PermissionTemplate,
    /// `None` (or `embedded`): the embedded broker; `redis://...` (feature `redis`) or
    /// `nats://...` (feature `nats`) (any URL [`broker_core::AnyBroker`] takes).
    pub broker_url: Option<String>,
    /// The prefix of the broker's keys and streams (`A-Z a-z 0-9 - _`); the topic is
    /// `{prefix}-messages`.
    pub prefix: String,
    /// This instance's name among those on the broker (`A-Z a-z 0-9 - _`): its queue is
    /// `{prefix}-to-{instance}`. Two live instances with one name would split the
    /// messages between them; one name across restarts reuses the queue (broker-core has
    /// no unbind, so a new name each start would leave a queue bound for good).
    pub instance: String,
    /// Per-connection queue bounds, the slow-consumer policy, heartbeats; its
    /// `max_rooms_per_client` is the most subscriptions per connection.
    pub hub: HubConfig,
    /// The task queue's API (`/jobs/jobs` in the showcase) for the page's failing-job
    /// demonstration; `None` leaves that part out.
    pub jobs_url: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("base_path", &self.base_path)
            .field("broker_url", &self.broker_url.is_some())
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// At the root, the embedded broker, [`PermissionTemplate::default`], 16 subscriptions
    /// per connection and the hub's default queues (256 messages, 1 MiB, then 1013).
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            base_path: String::new(),
            allowed_origins: Vec::new(),
            authenticator,
            login_url: "/auth/".to_owned(),
            permissions: PermissionTemplate::default(),
            broker_url: None,
            prefix: "broker-live".to_owned(),
            instance: "main".to_owned(),
            hub: HubConfig {
                max_rooms_per_client: 16,
                ..HubConfig::default()
            },
            jobs_url: None,
        }
    }
}

/// The bridge: the hub of browser connections, the broker, and the page.
pub struct App {
    base: String,
    handshake: HandshakeConfig,
    limits: Limits,
    authenticator: Arc<dyn Authenticator>,
    login_url: String,
    jobs_url: Option<String>,
    permissions: PermissionTemplate,
    backend: AnyBroker,
    topic: String,
    queue: String,
    consumer: String,
    state: Mutex<State>,
    /// Set by [`App::shutdown`]: the pump stops fetching.
    stopping: AtomicBool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base", &self.base)
            .field("broker", &self.backend.name())
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The hub, a wake-up handle per connection, and the patterns subscribed in this
/// instance with how many connections hold each.
#[derive(Debug)]
struct State {
    hub: Hub,
    wakers: HashMap<ClientId, Arc<Notify>>,
    patterns: HashMap<String, (SubjectPattern, usize)>,
}

impl State {
    /// Wakes the connections whose hub queue got something.
    fn wake(&mut self) {
        while let Some(id) = self.hub.poll_ready() {
            if let Some(notify) = self.wakers.get(&id) {
                notify.notify_one();
            }
        }
    }
}

impl App {
    /// Connects to the broker, declares this instance's queue and binds it to the topic.
    ///
    /// # Errors
    /// A message naming the broker when it cannot be reached or refuses the names.
    pub async fn new(settings: Settings) -> Result<Self, String> {
        // Unset: the embedded broker. Keys `{prefix}:…` on Redis, streams `Q_{prefix}_…` on NATS.
        let url = settings.broker_url.as_deref().unwrap_or("embedded");
        let backend = AnyBroker::connect_namespaced(url, &settings.prefix)
            .await
            .map_err(|error| format!("broker at {}: {error}", redact_url(url)))?;
        let topic = format!("{}-messages", settings.prefix);
        let queue = format!("{}-to-{}", settings.prefix, settings.instance);
        // Live messages are acked as soon as they are handed to the hub: one attempt.
        let config = QueueConfig::default()
            .ack_wait(Duration::from_secs(30))
            .retry(RetryPolicy::new(1, Duration::from_secs(1)));
        let failed = |error: broker_core::Error| {
            format!("the {} broker: queue {queue}: {error}", backend.name())
        };
        backend.declare(&queue, &config).await.map_err(failed)?;
        backend.bind(&topic, &queue).await.map_err(failed)?;
        Ok(Self {
            base: settings.base_path,
            handshake: HandshakeConfig::default()
                .allow_origins(settings.allowed_origins)
                .deflate(DeflateConfig::default()),
            limits: Limits {
                max_frame: MAX_FRAME,
                max_message: MAX_FRAME,
                max_send_buffer: 256 * 1024,
                ..Limits::default()
            },
            authenticator: settings.authenticator,
            login_url: settings.login_url,
            jobs_url: settings.jobs_url,
            permissions: settings.permissions,
            consumer: settings.instance,
            backend,
            topic,
            queue,
            state: Mutex::new(State {
                hub: Hub::new(settings.hub),
                wakers: HashMap::new(),
                patterns: HashMap::new(),
            }),
            stopping: AtomicBool::new(false),
        })
    }

    /// The broker's name: `embedded`, `redis` or `nats`.
    pub fn broker_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Runs the bridge: fetches this instance's queue and hands each message to the
    /// browsers subscribed to a matching pattern, and runs the hub's heartbeats, until
    /// [`App::shutdown`].
    pub async fn run(self: Arc<Self>) {
        tokio::spawn(heartbeats(Arc::clone(&self)));
        while !self.stopping.load(Ordering::Acquire) {
            let batch = match self
                .backend
                .fetch(&self.queue, &self.consumer, 64, Duration::from_millis(500))
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, queue = %self.queue, "broker-live: fetch failed; trying again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                continue;
            }
            for delivery in &batch {
                self.deliver(&delivery.envelope);
            }
            for result in self.backend.settle_batch(&batch, Settlement::Ack).await {
                if let Err(error) = result {
                    tracing::warn!(%error, "broker-live: ack failed (the message may come again)");
                }
            }
        }
    }

    /// Connections open now and patterns subscribed.
    pub fn occupancy(&self) -> (usize, usize) {
        let state = self.lock();
        (state.hub.len(), state.patterns.len())
    }

    /// Starts a graceful shutdown: every connection gets 1001 after its queue drains, and
    /// the bridge stops fetching.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        let mut state = self.lock();
        state.hub.shutdown(Instant::now());
        state.wake();
    }

    /// Whether every connection has gone.
    pub fn is_drained(&self) -> bool {
        self.lock().hub.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the hub usable: take it anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands one message from the broker to every subscription in this instance whose
    /// pattern matches its subject.
    fn deliver(&self, envelope: &Envelope) {
        let Some(subject) = envelope.headers().get(SUBJECT_HEADER) else {
            tracing::debug!(id = %envelope.id(), "broker-live: a message without a subject; skipped");
            return;
        };
        let published = envelope.published_at();
        if SystemTime::now()
            .duration_since(published)
            .is_ok_and(|age| age > MAX_AGE)
        {
            return;
        }
        let data = serde_json::from_slice(envelope.payload()).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(envelope.payload()).into_owned())
        });
        let published_at_ms = published
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let mut state = self.lock();
        let matching: Vec<String> = state
            .patterns
            .iter()
            .filter(|(_, (pattern, _))| pattern.matches(subject))
            .map(|(text, _)| text.clone())
            .collect();
        for pattern in matching {
            let frame = ServerFrame::Message {
                subject: subject.to_owned(),
                id: envelope.id().to_string(),
                from: envelope
                    .headers()
                    .get(FROM_HEADER)
                    .unwrap_or("?")
                    .to_owned(),
                published_at_ms,
                data: data.clone(),
                pattern: pattern.clone(),
            };
            state
                .hub
                .deliver_remote(&pattern, Message::text(frame.to_text()));
        }
        state.wake();
    }
}

impl serve::App for App {
    /// Answers one request: the page, `/me`, `/healthz`, or the WebSocket handshake on
    /// `/ws`, whose session then runs on a task of its own.
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move { handle(self, request).await.map(serve::boxed) })
    }

    fn shutdown(&self) {
        App::shutdown(self);
    }

    fn is_drained(&self) -> bool {
        App::is_drained(self)
    }
}

async fn handle(app: Arc<App>, request: Request<serve::Body>) -> Response<Body> {
    let Some(path) = serve::local_path(&app.base, request.uri().path()).map(str::to_owned) else {
        return serve::page::not_found();
    };
    let method = request.method().clone();
    match path.as_str() {
        "/" => serve::page::get_or_head(&method, "text/html; charset=utf-8", PAGE),
        "/healthz" => serve::page::get_or_head(&method, "application/json", r#"{"status":"ok"}"#),
        "/me" if method == Method::GET => {
            // A copy: the request's body is not `Sync`, so no borrow of it may be held
            // across the await.
            let headers = request.headers().clone();
            me(&app, &headers).await
        }
        "/me" => serve::page::method_not_allowed("GET"),
        "/ws" => open_socket(app, request).await,
        _ => serve::page::not_found(),
    }
}

/// `GET /me`: who the session is and what they may do, or 401 with where to log in.
async fn me(app: &App, headers: &HeaderMap) -> Response<Body> {
    let common = json!({
        "broker": app.backend.name(),
        "login_url": app.login_url,
        "jobs_url": app.jobs_url,
    });
    let (status, mut body) = match app.authenticator.user(headers).await {
        Ok(Some(user)) => match app.permissions.for_user(&user) {
            Ok(permissions) => {
                let welcome = serde_json::to_value(ServerFrame::welcome(&user, &permissions))
                    .unwrap_or(Value::Null);
                (StatusCode::OK, welcome)
            }
            Err(error) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": format!("the allow-list does not parse: {error}")}),
            ),
        },
        Ok(None) => (
            StatusCode::UNAUTHORIZED,
            json!({"error": "You are not logged in: log in first, then come back to this page."}),
        ),
        Err(error) => {
            tracing::warn!(%error, "broker-live: the session store is unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "The session store is not answering; try again in a few seconds."}),
            )
        }
    };
    if let (Some(body), Value::Object(common)) = (body.as_object_mut(), common) {
        body.extend(common);
    }
    let mut response = serve::page::json(status, body.to_string());
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// Answers the handshake (origin, then session) and, on success, runs the connection on
/// the upgraded stream.
async fn open_socket(app: Arc<App>, request: Request<serve::Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let accepted = match accept(&parts, &app.handshake) {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::info!(%error, "broker-live: handshake rejected");
            return rejection_response(&error).map(|text| Full::new(Bytes::from(text)));
        }
    };
    let user = match app.authenticator.user(&parts.headers).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            return serve::page::text(
                StatusCode::UNAUTHORIZED,
                &format!("log in first at {}", app.login_url),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "broker-live: the session store is unavailable");
            return serve::page::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the session store is not answering; try again in a few seconds",
            );
        }
    };
    let permissions = match app.permissions.for_user(&user) {
        Ok(permissions) => permissions,
        Err(error) => {
            tracing::error!(%error, "broker-live: the allow-list does not parse");
            return serve::page::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "allow-list misconfigured",
            );
        }
    };
    let deflate = accepted.deflate.clone();
    let limits = app.limits;
    let request = Request::from_parts(parts, body);
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let ws = WebSocket::new(TokioIo::new(upgraded), Connection::new(limits, deflate));
                session(app, ws, user, permissions).await;
            }
            Err(error) => tracing::debug!(%error, "broker-live: upgrade failed"),
        }
    });
    accepted.response.map(|()| Full::new(Bytes::new()))
}

/// Runs the hub's timers: pings, pong deadlines, the shutdown grace.
async fn heartbeats(app: Arc<App>) {
    loop {
        let next = app.lock().hub.poll_timeout();
        let wait = next.map_or(Duration::from_secs(1), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        let mut state = app.lock();
        state.hub.handle_timeout(Instant::now());
        state.wake();
    }
}

/// One browser connection: frames in, deliveries and replies out.
struct Session {
    id: ClientId,
    user: String,
    permissions: SubjectPermissions,
    /// The patterns this connection subscribed to (each a hub room).
    subscriptions: HashSet<String>,
}

async fn session<S>(
    app: Arc<App>,
    mut ws: WebSocket<S>,
    user: String,
    permissions: SubjectPermissions,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let notify = Arc::new(Notify::new());
    let connected = {
        let mut state = app.lock();
        let id = state.hub.connect(user.as_str(), Instant::now()).ok();
        if let Some(id) = id {
            state.wakers.insert(id, notify.clone());
        }
        id
    };
    let Some(id) = connected else {
        let _ = ws.start_close(CloseCode::Away, "server shutting down");
        while ws.next_message().await.is_some() {}
        return;
    };
    let welcome = ServerFrame::welcome(&user, &permissions);
    let mut session = Session {
        id,
        user,
        permissions,
        subscriptions: HashSet::new(),
    };
    let mut open = ws.queue(Message::text(welcome.to_text())).is_ok();
    // A message that did not fit in what was left of the send buffer; it goes first once
    // queued output is written.
    let mut held = None;
    while open {
        // Move hub output into the connection while it has room; the rest waits in the
        // hub queue, where the slow-consumer policy bounds it.
        if drain(&app, id, &mut ws, &mut held) {
            break;
        }
        if !ws.has_room() || held.is_some() {
            // The browser is not reading: only write, and give up if the hub closes it
            // (the close frame goes after what is already in the socket's buffer).
            tokio::select! {
                result = ws.flush() => if result.is_err() { break },
                () = notify.notified() => if close_if_closing(&app, id, &mut ws) { break },
            }
            continue;
        }
        tokio::select! {
            message = ws.next_message() => match message {
                Some(Ok(message)) => {
                    app.lock().hub.handle_activity(id, Instant::now());
                    if let Message::Text(text) = &message {
                        let reply = received(&app, &mut session, text.as_str()).await;
                        open = ws.queue_or_hold(Message::text(reply.to_text()), &mut held).is_ok();
                    }
                }
                Some(Err(error)) => {
                    tracing::info!(%error, client = id.get(), "broker-live: connection dropped");
                    open = false;
                }
                None => open = false,
            },
            () = notify.notified() => {}
        }
    }
    disconnect(&app, &session);
    // Finish a close handshake we started, within a bound.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while ws.next_message().await.is_some() {}
    })
    .await;
}

fn disconnect(app: &App, session: &Session) {
    let mut state = app.lock();
    for pattern in &session.subscriptions {
        release(&mut state, pattern);
    }
    state.hub.disconnect(session.id, Instant::now());
    state.wakers.remove(&session.id);
    state.wake();
}

/// One connection fewer holds `pattern`.
fn release(state: &mut State, pattern: &str) {
    if let Some((_, count)) = state.patterns.get_mut(pattern) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            state.patterns.remove(pattern);
        }
    }
}

/// Applies one frame from the browser and returns the reply.
async fn received(app: &App, session: &mut Session, text: &str) -> ServerFrame {
    let frame = match ClientFrame::parse(text) {
        Ok(frame) => frame,
        Err(refusal) => return *refusal,
    };
    match frame {
        ClientFrame::Subscribe { pattern } => subscribe(app, session, pattern),
        ClientFrame::Unsubscribe { pattern } => {
            if session.subscriptions.remove(&pattern) {
                let mut state = app.lock();
                let _ = state.hub.leave(session.id, &pattern, Instant::now());
                release(&mut state, &pattern);
            }
            ServerFrame::Unsubscribed { pattern }
        }
        ClientFrame::Publish { subject, data } => publish(app, session, subject, &data).await,
    }
}

fn subscribe(app: &App, session: &mut Session, pattern: String) -> ServerFrame {
    let parsed = match SubjectPattern::parse(&pattern) {
        Ok(parsed) => parsed,
        Err(error) => {
            return ServerFrame::error(
                ErrorCode::InvalidSubject,
                error.to_string(),
                Some(&pattern),
            );
        }
    };
    if let Err(refusal) = session.permissions.check_subscribe(&parsed) {
        return ServerFrame::refused(&refusal, &pattern);
    }
    if session.subscriptions.contains(&pattern) {
        return ServerFrame::Subscribed { pattern };
    }
    let mut state = app.lock();
    match state.hub.join(session.id, &pattern, Instant::now()) {
        Ok(()) => {}
        Err(ws_core::Error::TooManyRooms { limit }) => {
            return ServerFrame::error(
                ErrorCode::TooManySubscriptions,
                format!("at most {limit} subscriptions per connection: unsubscribe from one first"),
                Some(&pattern),
            );
        }
        Err(error) => {
            return ServerFrame::error(ErrorCode::Unavailable, error.to_string(), Some(&pattern));
        }
    }
    state
        .patterns
        .entry(pattern.clone())
        .or_insert((parsed, 0))
        .1 += 1;
    drop(state);
    session.subscriptions.insert(pattern.clone());
    ServerFrame::Subscribed { pattern }
}

async fn publish(app: &App, session: &Session, subject: String, data: &Value) -> ServerFrame {
    if let Err(refusal) = session.permissions.check_publish(&subject) {
        return ServerFrame::refused(&refusal, &subject);
    }
    let envelope = serde_json::to_vec(data)
        .map_err(|error| error.to_string())
        .and_then(|payload| {
            Envelope::new(payload)
                .with_header(SUBJECT_HEADER, subject.as_str())
                .and_then(|envelope| envelope.with_header(FROM_HEADER, session.user.as_str()))
                .map_err(|error| error.to_string())
        });
    let envelope = match envelope {
        Ok(envelope) => envelope,
        Err(error) => {
            return ServerFrame::error(
                ErrorCode::InvalidSubject,
                format!("the message cannot be sent: {error}"),
                Some(&subject),
            );
        }
    };
    let id = envelope.id().to_string();
    match app.backend.publish_topic(&app.topic, envelope).await {
        Ok(()) => ServerFrame::Published { subject, id },
        Err(error) => {
            tracing::warn!(%error, %subject, "broker-live: publish failed");
            ServerFrame::error(
                ErrorCode::Unavailable,
                "the broker did not take the message; try again in a few seconds",
                Some(&subject),
            )
        }
    }
}

/// When the hub has given up on a connection whose send buffer is full: drops what it
/// still queues for it and starts the close handshake with the hub's code; `true` then.
fn close_if_closing<S>(app: &App, id: ClientId, ws: &mut WebSocket<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut state = app.lock();
    if !state.hub.is_closing(id) {
        return false;
    }
    while let Some(item) = state.hub.poll_transmit(id) {
        if let Outgoing::Close(code, reason) = item {
            tracing::warn!(client = id.get(), code = u16::from(code), reason = %reason, "broker-live: connection closed by the server");
            let _ = ws.start_close(code, reason);
            break;
        }
    }
    true
}

/// Queues hub output for one connection; `true` once a close was queued or the connection
/// refused a message. A message that does not fit in what is left of the send buffer is
/// kept in `held` (never dropped) and queued first by the next call.
fn drain<S>(app: &App, id: ClientId, ws: &mut WebSocket<S>, held: &mut Option<Message>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Some(message) = held.take() {
        if ws.queue_or_hold(message, held).is_err() {
            return true;
        }
        if held.is_some() {
            return false;
        }
    }
    let mut state = app.lock();
    while ws.has_room() {
        let Some(item) = state.hub.poll_transmit(id) else {
            break;
        };
        match item {
            Outgoing::Message { message, .. } => {
                if ws.queue_or_hold(message, held).is_err() {
                    return true;
                }
                if held.is_some() {
                    break;
                }
            }
            // Subscribing is a hub join: its presence events are not for the browser.
            Outgoing::Presence(_) | Outgoing::RemotePresence(_) => {}
            Outgoing::Ping => {
                let _ = ws.queue(Message::Ping(Bytes::new()));
            }
            Outgoing::Close(code, reason) => {
                // The hub gave up on this browser (a slow consumer, a missed heartbeat).
                tracing::warn!(client = id.get(), code = u16::from(code), reason = %reason, "broker-live: connection closed by the server");
                let _ = ws.start_close(code, reason);
                return true;
            }
        }
    }
    false
}
