//! The graphql-transport-ws protocol (the `graphql-ws` library's protocol, subprotocol
//! `graphql-transport-ws`) as a sans-IO state machine: text messages and the current time
//! in, messages to send, subscriptions to start or stop, and a close code out. The WebSocket
//! itself (handshake, frames) belongs to ws-core or any other WebSocket stack.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use graphql_core::{WsAction, WsSession};
//!
//! let start = Instant::now();
//! let mut session = WsSession::new(start, Duration::from_secs(3));
//! let actions = session.handle_text(r#"{"type":"connection_init"}"#, start);
//! assert_eq!(actions, [WsAction::Send(r#"{"type":"connection_ack"}"#.to_owned())]);
//! let actions = session.handle_text(
//!     r#"{"id":"1","type":"subscribe","payload":{"query":"subscription { ticks(count: 2) { n } }"}}"#,
//!     start,
//! );
//! assert!(matches!(&actions[..], [WsAction::Subscribe { id, .. }] if id == "1"));
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::execution::{Request, Response};

/// The WebSocket subprotocol name to negotiate.
pub const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";

/// Close codes of the protocol.
pub mod close_code {
    /// A message that is not valid for the protocol.
    pub const INVALID_MESSAGE: u16 = 4400;
    /// `subscribe` before the connection was acknowledged.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The server refused the connection (`connection_init` payload rejected).
    pub const FORBIDDEN: u16 = 4403;
    /// The subprotocol was not `graphql-transport-ws`.
    pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
    /// No `connection_init` within the initialisation timeout.
    pub const CONNECTION_INITIALISATION_TIMEOUT: u16 = 4408;
    /// A `subscribe` reused the id of a running subscription.
    pub const SUBSCRIBER_ALREADY_EXISTS: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITIALISATION_REQUESTS: u16 = 4429;
}

/// What the session asks its owner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum WsAction {
    /// Send this text message.
    Send(String),
    /// Start an operation (run it with `Schema::subscribe` for subscriptions, `execute` for
    /// queries and mutations) and feed its responses back with [`WsSession::next`] and
    /// [`WsSession::complete`].
    Subscribe {
        /// The client's id for the operation.
        id: String,
        /// The request.
        request: Box<Request>,
    },
    /// Stop the operation `id` (the client sent `complete`).
    Cancel {
        /// The operation's id.
        id: String,
    },
    /// Close the WebSocket with this code and reason.
    Close(u16, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingInit,
    Acknowledged,
    Closed,
}

/// Decides on a `connection_init` payload; see [`WsSession::authorize`].
type AuthorizeHook = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// One graphql-transport-ws connection's protocol state.
pub struct WsSession {
    phase: Phase,
    init_deadline: Instant,
    running: HashSet<String>,
    /// Most operations running at once; a `subscribe` past it gets an `error` message.
    max_operations: usize,
    /// Accepts or refuses the `connection_init` payload (default: accept).
    authorize: Option<AuthorizeHook>,
}

impl std::fmt::Debug for WsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSession")
            .field("phase", &self.phase)
            .field("init_deadline", &self.init_deadline)
            .field("running", &self.running)
            .field("max_operations", &self.max_operations)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

fn message(kind: &str, id: Option<&str>, payload: Option<Value>) -> String {
    let mut m = Map::new();
    if let Some(id) = id {
        m.insert("id".into(), Value::String(id.to_owned()));
    }
    m.insert("type".into(), Value::String(kind.to_owned()));
    if let Some(p) = payload {
        m.insert("payload".into(), p);
    }
    Value::Object(m).to_string()
}

impl WsSession {
    /// How many operations a connection may run at once unless
    /// [`WsSession::max_operations`] says otherwise.
    pub const DEFAULT_MAX_OPERATIONS: usize = 100;

    /// A session opened at `now`; the client must send `connection_init` within
    /// `init_timeout` (close 4408 otherwise).
    pub fn new(now: Instant, init_timeout: Duration) -> Self {
        WsSession {
            phase: Phase::AwaitingInit,
            init_deadline: now + init_timeout,
            running: HashSet::new(),
            max_operations: Self::DEFAULT_MAX_OPERATIONS,
            authorize: None,
        }
    }

    /// Sets how many operations may run at once on the connection (default 100). A
    /// `subscribe` past it is answered with an `error` message for its id and not started,
    /// so one client cannot make the server run (and buffer the results of) an unbounded
    /// number of operations; the ones running are not disturbed.
    #[must_use]
    pub fn max_operations(mut self, max: usize) -> Self {
        self.max_operations = max;
        self
    }

    /// Decides on the `connection_init` payload (e.g. a token): `false` closes with 4403.
    /// The check may capture state, such as a key set to verify a JWT with; it is shared,
    /// so one check can serve every connection's session.
    #[must_use]
    pub fn authorize<F>(mut self, check: F) -> Self
    where
        F: Fn(&Value) -> bool + Send + Sync + 'static,
    {
        self.authorize = Some(Arc::new(check));
        self
    }

    /// What to do when the negotiated subprotocol is not `graphql-transport-ws`.
    pub fn subprotocol_rejected() -> WsAction {
        WsAction::Close(
            close_code::SUBPROTOCOL_NOT_ACCEPTABLE,
            "Subprotocol not acceptable".to_owned(),
        )
    }

    /// When [`WsSession::handle_timeout`] should next be called, if at all.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.phase == Phase::AwaitingInit).then_some(self.init_deadline)
    }

    /// Advances time: closes with 4408 when `connection_init` is late.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<WsAction> {
        if self.phase == Phase::AwaitingInit && now >= self.init_deadline {
            return self.close(
                close_code::CONNECTION_INITIALISATION_TIMEOUT,
                "Connection initialisation timeout",
            );
        }
        Vec::new()
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    fn close(&mut self, code: u16, reason: &str) -> Vec<WsAction> {
        self.phase = Phase::Closed;
        let mut out: Vec<WsAction> = self
            .running
            .drain()
            .map(|id| WsAction::Cancel { id })
            .collect();
        out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out.push(WsAction::Close(code, reason.to_owned()));
        out
    }

    /// Handles one text message from the client.
    pub fn handle_text(&mut self, text: &str, now: Instant) -> Vec<WsAction> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        let timeout = self.handle_timeout(now);
        if !timeout.is_empty() {
            return timeout;
        }
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(text) else {
            return self.close(close_code::INVALID_MESSAGE, "Invalid message received");
        };
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
        let id = msg.get("id").and_then(Value::as_str).map(str::to_owned);
        match kind {
            "connection_init" => {
                if self.phase != Phase::AwaitingInit {
                    return self.close(
                        close_code::TOO_MANY_INITIALISATION_REQUESTS,
                        "Too many initialisation requests",
                    );
                }
                let payload = msg.get("payload").cloned().unwrap_or(Value::Null);
                if !matches!(payload, Value::Null | Value::Object(_)) {
                    return self.close(close_code::INVALID_MESSAGE, "Invalid message received");
                }
                if let Some(check) = &self.authorize
                    && !check(&payload)
                {
                    return self.close(close_code::FORBIDDEN, "Forbidden");
                }
                self.phase = Phase::Acknowledged;
                vec![WsAction::Send(message("connection_ack", None, None))]
            }
            "ping" => vec![WsAction::Send(message(
                "pong",
                None,
                msg.get("payload").cloned(),
            ))],
            "pong" => Vec::new(),
            "subscribe" => {
                if self.phase != Phase::Acknowledged {
                    return self.close(close_code::UNAUTHORIZED, "Unauthorized");
                }
                let Some(id) = id.filter(|i| !i.is_empty()) else {
                    return self.close(close_code::INVALID_MESSAGE, "Invalid message received");
                };
                let Some(request) = msg.get("payload").and_then(parse_request) else {
                    return self.close(close_code::INVALID_MESSAGE, "Invalid message received");
                };
                if self.running.len() >= self.max_operations && !self.running.contains(&id) {
                    let error = crate::limits::limit_error(format!(
                        "Too many operations: {} are running on this connection, the limit.",
                        self.max_operations
                    ));
                    let errors = Value::Array(vec![error.to_json()]);
                    return vec![WsAction::Send(message("error", Some(&id), Some(errors)))];
                }
                if !self.running.insert(id.clone()) {
                    return self.close(
                        close_code::SUBSCRIBER_ALREADY_EXISTS,
                        &format!("Subscriber for {id} already exists"),
                    );
                }
                vec![WsAction::Subscribe {
                    id,
                    request: Box::new(request),
                }]
            }
            "complete" => {
                let Some(id) = id else {
                    return self.close(close_code::INVALID_MESSAGE, "Invalid message received");
                };
                if self.running.remove(&id) {
                    vec![WsAction::Cancel { id }]
                } else {
                    Vec::new()
                }
            }
            _ => self.close(close_code::INVALID_MESSAGE, "Invalid message received"),
        }
    }

    /// A response of operation `id`: `next` (or `error` when it is a request error, which
    /// also ends the operation).
    pub fn next(&mut self, id: &str, response: &Response) -> Vec<WsAction> {
        if !self.running.contains(id) {
            return Vec::new();
        }
        if response.has_data() {
            let payload: Value = serde_json::from_str(&response.to_json()).unwrap_or(Value::Null);
            vec![WsAction::Send(message("next", Some(id), Some(payload)))]
        } else {
            self.running.remove(id);
            let errors = Value::Array(response.errors.iter().map(|e| e.to_json()).collect());
            vec![WsAction::Send(message("error", Some(id), Some(errors)))]
        }
    }

    /// Operation `id` finished on the server side: tell the client.
    pub fn complete(&mut self, id: &str) -> Vec<WsAction> {
        if self.running.remove(id) {
            vec![WsAction::Send(message("complete", Some(id), None))]
        } else {
            Vec::new()
        }
    }
}

fn parse_request(payload: &Value) -> Option<Request> {
    let query = payload.get("query")?.as_str()?.to_owned();
    let mut request = Request::new(query);
    match payload.get("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => request.operation_name = Some(s.clone()),
        Some(_) => return None,
    }
    match payload.get("variables") {
        None | Some(Value::Null) => {}
        Some(Value::Object(v)) => request.variables = v.clone(),
        Some(_) => return None,
    }
    Some(request)
}
