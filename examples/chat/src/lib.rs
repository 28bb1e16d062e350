//! chat as a library: a chat on ws-core with nicknames, rooms and presence over one
//! WebSocket per browser tab, with permessage-deflate; plus `/echo`, the echo endpoint
//! Autobahn runs against, served only when [`Settings::echo`] is set (by the tests: it takes
//! 32 MiB messages from any origin).
//!
//! [`App`] holds the hub and answers requests (it implements [`serve::App`]), spawning one
//! task per upgraded WebSocket; [`App::run_timers`] drives the heartbeats. It opens no
//! socket. `src/main.rs` serves it (`cargo run -p chat`), and `examples/showcase`
//! mounts the same [`App`] under `/chat` with [`Settings::base_path`] (the page opens its
//! socket at the relative URL `ws`, so it works under any prefix that ends in `/`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Notify;
use ws_core::{
    ClientId, CloseCode, Connection, DeflateConfig, HandshakeConfig, Hub, HubConfig, Limits,
    Message, Outgoing, PresenceView, RedisPresence, RedisScaleOut, ScaleOut, WebSocket, accept,
    rejection_response,
};

/// The chat page.
const INDEX_HTML: &str = include_str!("../static/index.html");

/// The body the pages are built with; [`serve::App::handle`] boxes it.
type Body = Full<Bytes>;

/// How the chat is mounted and whom it lets in.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The path prefix: empty at the root, or `/chat` (no trailing slash).
    pub base_path: String,
    /// The `Origin`s `/ws` accepts (browsers send one; other clients may not).
    pub allowed_origins: Vec<String>,
    /// Serve `/echo`, the endpoint conformance tests (Autobahn) run against: it takes
    /// messages of up to 32 MiB from any origin, so it is off unless a test turns it on.
    pub echo: bool,
    /// How rooms reach the members connected to other instances: `None`, only this
    /// process's hub (one instance); Redis pub/sub, one channel per room, so that every
    /// instance sharing the Redis and the prefix delivers a room's messages to its own
    /// members ([`App::run_timers`] subscribes).
    pub scale_out: Option<RedisScaleOut>,
    /// Who is in a room over every instance: `None`, this process's members only; with
    /// [`RedisPresence`], each instance tells the others of its joins and leaves as they
    /// happen (pub/sub) and writes its members on a heartbeat (a third of the presence's
    /// time to live), so that the list a member gets on joining is the union, a join or
    /// leave on another instance reaches this one's members live, the members of an
    /// instance that stops gracefully leave at once, and those of one that died (SIGKILL
    /// included) within the time to live and a heartbeat ([`App::run_timers`] runs all
    /// this). A member of another instance is a name: one connected there twice (two
    /// tabs on two instances) is announced as joined once and as left when its last
    /// connection leaves.
    pub presence: Option<RedisPresence>,
}

/// The largest chat message, in bytes of the JSON command as sent; the page checks it
/// before sending (the welcome message tells it), and a larger one closes with 1009.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The longest nickname, in characters (not bytes: "Zoë 😀" is 5).
pub const MAX_NAME_CHARS: usize = 32;

/// Everything a request handler needs: the handshake policies and the hub.
#[derive(Debug)]
pub struct App {
    base: String,
    /// `None` when [`Settings::echo`] is off: `/echo` is then 404.
    echo: Option<HandshakeConfig>,
    echo_limits: Limits,
    chat: HandshakeConfig,
    chat_limits: Limits,
    state: Mutex<State>,
    /// [`Settings::scale_out`].
    scale_out: Option<RedisScaleOut>,
    /// [`Settings::presence`].
    presence: Option<RedisPresence>,
    /// Wakes the publisher when the hub has broadcasts for the other instances.
    to_publish: Notify,
    /// Wakes the presence task when the hub has joins or leaves for the other instances.
    to_announce: Notify,
    /// Wakes the presence task for its goodbye ([`App::shutdown`]).
    leaving: Notify,
    /// The goodbye has been said (or could not be): [`App::is_drained`] waits for it.
    said_goodbye: AtomicBool,
}

/// The hub and a wake-up handle per connected client.
#[derive(Debug)]
struct State {
    hub: Hub,
    wakers: HashMap<ClientId, Arc<Notify>>,
    /// The other instances' members, from their live joins and leaves and their
    /// heartbeats, and the joins and leaves to announce to this hub's members.
    view: PresenceView,
}

impl State {
    /// Hands the other instances' joins and leaves that the view has to announce to the
    /// members of their rooms here, and wakes those.
    fn announce_remote(&mut self) {
        while let Some(presence) = self.view.poll_event() {
            self.hub.deliver_remote_presence(presence);
        }
        self.wake();
    }

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
    /// A chat with an empty hub; start [`App::run_timers`] next to it.
    pub fn new(settings: Settings) -> Self {
        // Autobahn sends messages of up to 16 MiB to the echo endpoint.
        let echo_limits = Limits {
            max_frame: 32 << 20,
            max_message: 32 << 20,
            max_send_buffer: 32 << 20,
            ..Limits::default()
        };
        Self {
            base: settings.base_path,
            echo: settings.echo.then(|| {
                HandshakeConfig::default()
                    .protocols(["echo.v1"])
                    .deflate(DeflateConfig::default())
            }),
            echo_limits,
            chat: HandshakeConfig::default()
                .allow_origins(settings.allowed_origins)
                .protocols(["chat.v1"])
                .deflate(DeflateConfig::default()),
            chat_limits: Limits {
                max_frame: MAX_MESSAGE,
                max_message: MAX_MESSAGE,
                max_send_buffer: 256 * 1024,
                ..Limits::default()
            },
            state: Mutex::new(State {
                hub: {
                    let mut hub = Hub::new(HubConfig::default());
                    hub.enable_publishing(settings.scale_out.is_some());
                    hub.enable_membership_changes(settings.presence.is_some());
                    hub
                },
                wakers: HashMap::new(),
                view: PresenceView::new(settings.presence.as_ref().map_or(0, RedisPresence::node)),
            }),
            scale_out: settings.scale_out,
            presence: settings.presence,
            to_publish: Notify::new(),
            to_announce: Notify::new(),
            leaving: Notify::new(),
            said_goodbye: AtomicBool::new(false),
        }
    }

    /// Runs the hub's timers (pings, pong deadlines, the shutdown grace) forever, with
    /// [`Settings::scale_out`] the exchange of room messages with the other instances, and
    /// with [`Settings::presence`] the live joins and leaves, the presence heartbeat and,
    /// on [`App::shutdown`], the goodbye.
    pub async fn run_timers(self: Arc<Self>) {
        if let Some(bus) = self.scale_out.clone() {
            tokio::spawn(publish(Arc::clone(&self), bus.clone()));
            tokio::spawn(subscribe(Arc::clone(&self), bus));
        }
        if let Some(presence) = self.presence.clone() {
            tokio::spawn(share_presence(Arc::clone(&self), presence.clone()));
            tokio::spawn(hear_presence(Arc::clone(&self), presence));
        }
        heartbeats(self).await;
    }

    /// Connections to `room` on other instances, as this instance knows them (empty
    /// without [`Settings::presence`]): (instance, id there, name).
    pub fn remote_members(&self, room: &str) -> Vec<(u64, u64, String)> {
        self.lock()
            .view
            .connections(room)
            .into_iter()
            .map(|(node, client, name)| (node, client, name.to_string()))
            .collect()
    }

    /// Starts a graceful shutdown: every chat connection gets 1001 after its queue drains,
    /// and with [`Settings::presence`] this instance's members are removed from the shared
    /// presence at once, and the other instances told (they announce them as left).
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.hub.shutdown(Instant::now());
        state.wake();
        drop(state);
        self.leaving.notify_one();
    }

    /// Whether every chat connection has gone (and, with [`Settings::presence`], the
    /// other instances have been told that this one stopped, or could not be).
    pub fn is_drained(&self) -> bool {
        self.lock().hub.is_empty()
            && (self.presence.is_none() || self.said_goodbye.load(Ordering::Acquire))
    }

    /// Chat connections open now and rooms with at least one member (for metrics: takes
    /// the hub's lock briefly).
    pub fn occupancy(&self) -> (usize, usize) {
        let state = self.lock();
        (state.hub.len(), state.hub.room_count())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the hub usable: take it anyway.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl serve::App for App {
    /// Answers one request: the page, `/healthz`, or a WebSocket handshake on `/ws` (chat)
    /// or `/echo`, whose session then runs on a task of its own (the server serves
    /// connections with upgrades enabled).
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        let response = handle(self, request).map(serve::boxed);
        Box::pin(std::future::ready(response))
    }

    fn shutdown(&self) {
        App::shutdown(self);
    }

    fn is_drained(&self) -> bool {
        App::is_drained(self)
    }
}

/// What a chat client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    Join { room: String },
    Leave { room: String },
    Say { room: String, text: String },
    Dm { to: u64, text: String },
}

/// Hands the hub's room broadcasts to the other instances, in order. A failure (Redis
/// down) loses those broadcasts for the other instances only, and is logged.
async fn publish(app: Arc<App>, bus: RedisScaleOut) {
    loop {
        app.to_publish.notified().await;
        let batch: Vec<_> = {
            let mut state = app.lock();
            std::iter::from_fn(|| state.hub.poll_publish()).collect()
        };
        for publication in &batch {
            if let Err(error) = bus.publish(publication).await {
                tracing::warn!(%error, room = %publication.room, "room message not shared with the other instances");
            }
        }
    }
}

/// Delivers the other instances' room broadcasts to this hub's members; when the
/// subscription fails or ends (Redis restarting), subscribes again after a second.
async fn subscribe(app: Arc<App>, bus: RedisScaleOut) {
    bus.relay(
        Duration::from_secs(1),
        |remote| {
            let mut state = app.lock();
            state.hub.deliver_remote(&remote.room, remote.message);
            state.wake();
        },
        |error| tracing::warn!(%error, "the chat's Redis subscription is down; subscribing again"),
    )
    .await;
}

/// Shares this instance's presence: its joins and leaves as they happen, and every third
/// of the presence's time to live a snapshot of its members, after which it reads the
/// others' (the sweep: it repairs changes lost on the way and finds the instances that
/// died). While Redis is down the view is kept as it was (this instance's members drop out
/// of the others' views when its snapshot expires). On [`App::shutdown`] it stops the
/// heartbeats and says goodbye: the snapshot goes and the others are told at once.
async fn share_presence(app: Arc<App>, presence: RedisPresence) {
    let every = (presence.ttl() / 3).max(Duration::from_millis(100));
    let mut next_beat = tokio::time::Instant::now();
    while !app.lock().hub.is_shutting_down() {
        tokio::select! {
            biased;
            () = app.leaving.notified() => break,
            () = app.to_announce.notified() => announce(&app, &presence).await,
            () = tokio::time::sleep_until(next_beat) => {
                announce(&app, &presence).await;
                sweep(&app, &presence).await;
                next_beat = tokio::time::Instant::now() + every;
            }
        }
    }
    if let Err(error) = presence.remove().await {
        tracing::warn!(%error, "chat presence: the other instances were not told that this one stopped; its members leave their lists when its snapshot expires");
    }
    app.said_goodbye.store(true, Ordering::Release);
}

/// Tells the other instances of this hub's joins and leaves, in order. After a failure the
/// rest wait for the next snapshot (which carries them); once shutting down, the goodbye
/// covers them.
async fn announce(app: &App, presence: &RedisPresence) {
    let changes: Vec<_> = {
        let mut state = app.lock();
        let changes: Vec<_> = std::iter::from_fn(|| state.hub.poll_membership_change()).collect();
        if state.hub.is_shutting_down() {
            return;
        }
        changes
    };
    for change in &changes {
        if let Err(error) = presence.announce(change).await {
            tracing::warn!(%error, "chat presence: a join or leave not shared live with the other instances (the next heartbeat carries it)");
            return;
        }
    }
}

/// One heartbeat and sweep.
async fn sweep(app: &App, presence: &RedisPresence) {
    let (version, memberships) = {
        let state = app.lock();
        (state.hub.membership_version(), state.hub.memberships())
    };
    let snapshots = match presence.heartbeat(version, &memberships).await {
        Ok(()) => presence.snapshots().await,
        Err(error) => Err(error),
    };
    match snapshots {
        Ok(snapshots) => {
            let mut state = app.lock();
            state.view.handle_snapshots(snapshots);
            state.announce_remote();
        }
        Err(error) => {
            tracing::warn!(%error, "chat presence not shared with the other instances")
        }
    }
}

/// Hears the other instances' joins, leaves and goodbyes live, and announces them to this
/// instance's members; when the subscription fails or ends (Redis restarting), subscribes
/// again after a second (the sweeps catch up with what was missed).
async fn hear_presence(app: Arc<App>, presence: RedisPresence) {
    presence
        .relay(
            Duration::from_secs(1),
            |update| {
                let mut state = app.lock();
                state.view.handle_update(update);
                state.announce_remote();
            },
            |error| tracing::warn!(%error, "the chat's Redis presence subscription is down; subscribing again"),
        )
        .await;
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

fn handle(app: Arc<App>, request: Request<serve::Body>) -> Response<Body> {
    let Some(path) = serve::local_path(&app.base, request.uri().path()).map(str::to_owned) else {
        return serve::page::not_found();
    };
    match path.as_str() {
        "/echo" => match &app.echo {
            Some(config) => upgrade(request, config, app.echo_limits, echo),
            None => serve::page::not_found(),
        },
        "/ws" => {
            let name = nickname(request.uri().query());
            let session_app = app.clone();
            upgrade(request, &app.chat, app.chat_limits, move |ws| {
                chat(session_app, ws, name)
            })
        }
        _ => page(request.method(), &path),
    }
}

/// Answers the handshake and, on success, runs `session` on the upgraded stream.
fn upgrade<F, Fut>(
    request: Request<serve::Body>,
    config: &HandshakeConfig,
    limits: Limits,
    session: F,
) -> Response<Body>
where
    F: FnOnce(WebSocket<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (parts, body) = request.into_parts();
    let accepted = match accept(&parts, config) {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::info!(%error, "handshake rejected");
            return rejection_response(&error).map(|text| Full::new(Bytes::from(text)));
        }
    };
    let deflate = accepted.deflate.clone();
    let request = Request::from_parts(parts, body);
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let ws = WebSocket::new(TokioIo::new(upgraded), Connection::new(limits, deflate));
                session(ws).await;
            }
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
    });
    accepted.response.map(|()| Full::new(Bytes::new()))
}

/// Echoes text and binary messages until the peer closes.
async fn echo<S>(mut ws: WebSocket<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(result) = ws.next_message().await {
        match result {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(error) = ws.queue(message) {
                    tracing::debug!(%error, "echo stopped");
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%error, "echo connection failed");
                break;
            }
        }
    }
}

fn page(method: &Method, path: &str) -> Response<Body> {
    match path {
        "/" => serve::page::get_or_head(method, "text/html; charset=utf-8", INDEX_HTML),
        "/healthz" => serve::page::get_or_head(method, "application/json", r#"{"status":"ok"}"#),
        _ => serve::page::not_found(),
    }
}

/// The `name` query parameter (percent-decoded) as a nickname: without control and
/// invisible formatting characters (which could fake another name), trimmed, and cut to
/// [`MAX_NAME_CHARS`] characters, never inside one; `guest` if nothing is left.
fn nickname(query: Option<&str>) -> String {
    let raw = query
        .and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(key, _)| key == "name")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    let visible: String = raw.chars().filter(|&c| !is_hidden(c)).collect();
    let name: String = visible.trim().chars().take(MAX_NAME_CHARS).collect();
    match name.trim_end() {
        "" => "guest".to_owned(),
        name => name.to_owned(),
    }
}

/// Control characters, and the zero-width and bidirectional formatting ones that change
/// how a name looks without being seen.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Whether two nicknames would look the same to the room (case and surrounding space
/// aside).
fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// One chat connection: commands in, hub output out.
async fn chat<S>(app: Arc<App>, mut ws: WebSocket<S>, name: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let notify = Arc::new(Notify::new());
    let connected = connect(&app, &name, &notify);
    let Some(id) = connected else {
        let _ = ws.start_close(CloseCode::Away, "server shutting down");
        while ws.next_message().await.is_some() {}
        return;
    };
    let welcome = json!({"type": "welcome", "id": id.get(), "name": name,
                         "max_message": MAX_MESSAGE});
    let mut open = ws.queue(Message::text(welcome.to_string())).is_ok();
    // A message taken from the hub that did not fit in the connection's send buffer; it
    // goes first once queued output is written.
    let mut held = None;
    while open {
        // Move hub output into the connection while it has room; the rest waits in the
        // hub queue, where the slow-consumer policy bounds it.
        let closing = drain(&app, id, &mut ws, &mut held);
        if closing {
            break;
        }
        if !ws.has_room() || held.is_some() {
            // The peer is not reading: only write, and give up if the hub closes it.
            tokio::select! {
                result = ws.flush() => if result.is_err() { break },
                () = notify.notified() => if is_closing(&app, id) { break },
            }
            continue;
        }
        tokio::select! {
            message = ws.next_message() => match message {
                Some(Ok(message)) => open = received(&app, id, &mut ws, &mut held, &message),
                Some(Err(error)) => {
                    // A message over the limit, a protocol error, or a peer gone without a
                    // close frame: the member leaves the room, which the operator should see.
                    tracing::warn!(%error, client = id.get(), "chat connection dropped");
                    open = false;
                }
                None => open = false,
            },
            () = notify.notified() => {}
        }
    }
    disconnect(&app, id);
    // Finish a close handshake we started, within a bound.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while ws.next_message().await.is_some() {}
    })
    .await;
}

fn connect(app: &App, name: &str, notify: &Arc<Notify>) -> Option<ClientId> {
    let mut state = app.lock();
    let id = state.hub.connect(name, Instant::now()).ok()?;
    state.wakers.insert(id, notify.clone());
    Some(id)
}

fn disconnect(app: &App, id: ClientId) {
    let mut state = app.lock();
    state.hub.disconnect(id, Instant::now());
    state.wakers.remove(&id);
    state.wake();
    drop(state);
    if app.presence.is_some() {
        app.to_announce.notify_one();
    }
}

fn is_closing(app: &App, id: ClientId) -> bool {
    app.lock().hub.is_closing(id)
}

/// Handles one message from a chat client; `false` if the connection should end.
fn received<S>(
    app: &App,
    id: ClientId,
    ws: &mut WebSocket<S>,
    held: &mut Option<Message>,
    message: &Message,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut state = app.lock();
    state.hub.handle_activity(id, Instant::now());
    let mut open = true;
    if let Message::Text(text) = message
        && let Err(refusal) = command(&mut state.hub, id, text.as_str())
    {
        let reply = json!({"type": "error", "code": refusal.code, "message": refusal.message});
        open = ws
            .queue_or_hold(Message::text(reply.to_string()), held)
            .is_ok();
    }
    state.wake();
    drop(state);
    if app.scale_out.is_some() {
        app.to_publish.notify_one();
    }
    if app.presence.is_some() {
        app.to_announce.notify_one();
    }
    open
}

/// Queues hub output for one client; `true` once a close was queued or the connection
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
        let message = match item {
            Outgoing::Message {
                room,
                from,
                message,
            } => {
                let name = state.hub.name(from).unwrap_or("?").to_owned();
                let text = message.to_text().unwrap_or_default();
                match room {
                    Some(room) => {
                        // Room messages carry their sender's name, which another
                        // instance's hub does not know (its `from` is 0 there).
                        let said: Said = serde_json::from_str(text).unwrap_or(Said {
                            name: name.clone(),
                            text: text.to_owned(),
                        });
                        json!({"type": "message", "room": &*room, "from": from.get(), "name": said.name, "text": said.text})
                    }
                    None => json!({"type": "dm", "from": from.get(), "name": name, "text": text}),
                }
            }
            // Only the joiner gets the member list, with its own join; the others get the
            // change and keep their list. Building the list for every member on every join
            // was quadratic in the room size, under the hub's lock.
            Outgoing::Presence(presence) if presence.joined && presence.client == id => {
                let mut members: Vec<_> = state
                    .hub
                    .members(&presence.room)
                    .into_iter()
                    .map(|(id, name)| json!({"id": id.get(), "name": &*name}))
                    .collect();
                // Members on other instances: a name each (however many connections it
                // has there), with a string id that their joins and leaves repeat; they
                // cannot be written to directly.
                members.extend(
                    state.view.members(&presence.room).into_iter().map(
                        |name| json!({"id": remote_id(&name), "name": &*name, "remote": true}),
                    ),
                );
                json!({"type": "presence", "room": &*presence.room, "id": presence.client.get(),
                       "name": &*presence.name, "joined": true, "members": members})
            }
            Outgoing::Presence(presence) => {
                json!({"type": "presence", "room": &*presence.room, "id": presence.client.get(),
                       "name": &*presence.name, "joined": presence.joined})
            }
            Outgoing::RemotePresence(presence) => {
                json!({"type": "presence", "room": &*presence.room, "id": remote_id(&presence.name),
                       "name": &*presence.name, "joined": presence.joined, "remote": true})
            }
            Outgoing::Ping => {
                let _ = ws.queue(Message::Ping(bytes::Bytes::new()));
                continue;
            }
            Outgoing::Close(code, reason) => {
                // The hub gave up on this member (a slow consumer, a missed heartbeat).
                tracing::warn!(client = id.get(), code = u16::from(code), reason = %reason, "chat connection dropped by the server");
                let _ = ws.start_close(code, reason);
                return true;
            }
        };
        if ws
            .queue_or_hold(Message::text(message.to_string()), held)
            .is_err()
        {
            return true;
        }
        if held.is_some() {
            break;
        }
    }
    false
}

/// The id a member of other instances has in member lists and presence events: its name
/// (one entry however many connections it has there), as a string, never a number like
/// this instance's ids.
fn remote_id(name: &str) -> String {
    format!("remote:{name}")
}

/// A room message as the hub carries it (and Redis, to the other instances): the sender's
/// name with the text.
#[derive(Debug, Deserialize, serde::Serialize)]
struct Said {
    name: String,
    text: String,
}

/// Why a command was refused: a code the page can act on, and a sentence for the user.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Self {
            code: "refused",
            message,
        }
    }
}

impl From<ws_core::Error> for Refusal {
    fn from(error: ws_core::Error) -> Self {
        Self::from(error.to_string())
    }
}

/// Applies one chat command.
fn command(hub: &mut Hub, id: ClientId, text: &str) -> Result<(), Refusal> {
    let now = Instant::now();
    let command: Command =
        serde_json::from_str(text).map_err(|error| format!("bad command: {error}"))?;
    let checked = |room: &str| {
        if room.is_empty() || room.len() > 64 {
            Err("room names are 1 to 64 bytes".to_owned())
        } else {
            Ok(())
        }
    };
    match command {
        Command::Join { room } => {
            checked(&room)?;
            let name = hub.name(id).unwrap_or_default().to_owned();
            let taken = hub
                .members(&room)
                .iter()
                .any(|(member, other)| *member != id && same_name(other, &name));
            if taken {
                return Err(Refusal {
                    code: "name-taken",
                    message: format!(
                        "someone in room \u{201c}{room}\u{201d} is already called \u{201c}{name}\u{201d}: choose another name and join again"
                    ),
                });
            }
            Ok(hub.join(id, &room, now)?)
        }
        Command::Leave { room } => Ok(hub.leave(id, &room, now)?),
        Command::Say { room, text } => {
            let name = hub.name(id).unwrap_or_default().to_owned();
            let said = serde_json::to_string(&Said { name, text })
                .map_err(|error| format!("message not sent: {error}"))?;
            hub.broadcast(id, &room, Message::text(said), now)?;
            Ok(())
        }
        Command::Dm { to, text } => {
            let to = hub
                .client(to)
                .ok_or_else(|| "that person has left the chat".to_owned())?;
            Ok(hub.send_to(id, to, Message::text(text), now)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_are_cut_by_characters_and_keep_what_people_type() {
        assert_eq!(nickname(Some("name=Zo%C3%AB+%F0%9F%98%80")), "Zoë 😀");
        assert_eq!(nickname(Some("x=1&name=%20ada%20")), "ada");
        // 40 two-byte characters: cut at 32 characters, never inside one.
        let long = "é".repeat(40);
        let query = format!(
            "name={}",
            form_urlencoded::byte_serialize(long.as_bytes()).collect::<String>()
        );
        assert_eq!(nickname(Some(&query)), "é".repeat(32));
        let emoji = "😀".repeat(33);
        let query = format!(
            "name={}",
            form_urlencoded::byte_serialize(emoji.as_bytes()).collect::<String>()
        );
        assert_eq!(nickname(Some(&query)).chars().count(), 32);
        // Control and invisible formatting characters go; nothing left is `guest`.
        assert_eq!(nickname(Some("name=a%0Ab%E2%80%AEc%E2%80%8Bd")), "abcd");
        assert_eq!(nickname(Some("name=%E2%80%8B%20")), "guest");
        assert_eq!(nickname(Some("name=")), "guest");
        assert_eq!(nickname(None), "guest");
    }

    #[test]
    fn a_name_already_in_the_room_is_refused_with_a_reason() {
        let now = Instant::now();
        let mut hub = Hub::new(HubConfig::default());
        let first = hub.connect("Zoë 😀", now).unwrap();
        let second = hub.connect("zoë 😀", now).unwrap();
        let third = hub.connect("Zoe", now).unwrap();
        let join = r#"{"type":"join","room":"lobby"}"#;
        command(&mut hub, first, join).unwrap();
        let refusal = command(&mut hub, second, join).unwrap_err();
        assert_eq!(refusal.code, "name-taken");
        assert!(
            refusal.message.contains("already called “zoë 😀”"),
            "{}",
            refusal.message
        );
        assert_eq!(hub.member_count("lobby"), 1);
        // Another room, or another name, is fine; joining again is not a conflict with oneself.
        command(&mut hub, second, r#"{"type":"join","room":"other"}"#).unwrap();
        command(&mut hub, third, join).unwrap();
        command(&mut hub, first, join).unwrap();
        assert_eq!(hub.member_count("lobby"), 2);
    }

    #[test]
    fn a_direct_message_to_someone_gone_says_so() {
        let now = Instant::now();
        let mut hub = Hub::new(HubConfig::default());
        let ada = hub.connect("ada", now).unwrap();
        let refusal = command(&mut hub, ada, r#"{"type":"dm","to":999,"text":"hi"}"#).unwrap_err();
        assert_eq!(refusal.message, "that person has left the chat");
    }
}
