//! Keep-alive HTTP/1 connections to the upstreams of one pool, kept per worker thread.
//!
//! hyper-util's pooled client served this before, and cost more per request than the proxy
//! needs: a pool key made from the URI (an absolute URI built and parsed per request), a
//! pool shared by every thread behind one lock, the race between checkout and a new
//! connection, and its own retry loop around both. Here each worker thread (one
//! current-thread runtime each) has its own list of idle connections per upstream, so a
//! request takes the newest ready connection under an uncontended lock, and sends its
//! origin-form request on it as it is.
//!
//! A connection goes back to its list when the response body has been read to its end
//! ([`PooledBody`]); one whose body is dropped early is closed, as hyper cannot reuse it.
//! Idle connections past the idle timeout, or closed by the upstream, are never handed out,
//! and are dropped by [`Upstreams::reap`], which the proxy runs every second.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use proxy_core::UpstreamId;

use crate::{BoxError, ProxyBody};

/// At most this many idle connections are kept per upstream and worker thread.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

type IdleLists = HashMap<UpstreamId, Vec<Idle>>;

/// The idle connections of one pool: one map per worker thread.
pub(crate) struct Upstreams {
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// Indexed by worker thread. Each lock is taken by its own thread, and once a second by
    /// the reaper, so it is almost never contended; a mounted [`crate::App`] (one slot) shares
    /// slot 0 between the threads of its host's runtime.
    idle: Vec<Mutex<IdleLists>>,
}

/// Why an upstream request failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be made (refused, unreachable, timed out, handshake failed).
    Connect,
    /// The connection failed after the request was (or may have been) sent.
    Request,
}

impl Upstreams {
    pub(crate) fn new(workers: usize, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            idle_timeout,
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
        }
    }

    fn slot(&self) -> Option<&Mutex<IdleLists>> {
        self.idle
            .get(crate::state::worker())
            .or_else(|| self.idle.first())
    }

    /// An idle connection to `id` that is still open and within the idle timeout: the newest
    /// one that is ready for a request, else the newest usable one. A connection is checked
    /// in as soon as its response body ends, which can be before its connection task has run
    /// and made it ready again; taking a ready one spares the request a wait for that task.
    /// The search stops at the first ready connection from the end (usually the last one);
    /// unusable ones are left for [`Upstreams::reap`], so a checkout never walks the whole
    /// list to clean it.
    fn checkout(&self, id: UpstreamId) -> Option<SendRequest<ProxyBody>> {
        let mut lists = self.slot()?.lock().ok()?;
        let list = lists.get_mut(&id)?;
        let now = Instant::now();
        let usable = |idle: &Idle| {
            !idle.sender.is_closed()
                && now.saturating_duration_since(idle.since) < self.idle_timeout
        };
        let index = list
            .iter()
            .rposition(|idle| idle.sender.is_ready() && usable(idle))
            .or_else(|| list.iter().rposition(usable))?;
        Some(list.swap_remove(index).sender)
    }

    fn checkin(&self, id: UpstreamId, sender: SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let Some(mut lists) = self.slot().and_then(|s| s.lock().ok()) else {
            return;
        };
        let list = lists.entry(id).or_default();
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Closes idle connections past the idle timeout, and ones the upstream closed.
    pub(crate) fn reap(&self) {
        let now = Instant::now();
        for slot in &self.idle {
            if let Ok(mut lists) = slot.lock() {
                for list in lists.values_mut() {
                    list.retain(|idle| {
                        !idle.sender.is_closed()
                            && now.saturating_duration_since(idle.since) < self.idle_timeout
                    });
                }
                lists.retain(|_, list| !list.is_empty());
            }
        }
    }

    async fn connect(&self, address: &str) -> Result<SendRequest<ProxyBody>, SendError> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            _ => return Err(SendError::Connect),
        };
        // Requests and responses are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| SendError::Connect)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `request` (origin-form target) to the upstream `id` at `address`, on an idle
    /// connection when there is one. `Host` is set to `address` when the request has none.
    /// A request refused unsent by a reused connection (the upstream closed it meanwhile)
    /// is sent again on another, as hyper-util's client did.
    pub(crate) async fn send(
        self: &Arc<Self>,
        id: UpstreamId,
        address: &str,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<PooledBody>, SendError> {
        if !request.headers().contains_key(HOST)
            && let Ok(host) = HeaderValue::from_str(address)
        {
            request.headers_mut().insert(HOST, host);
        }
        loop {
            let (mut sender, reused) = match self.checkout(id) {
                Some(sender) => (sender, true),
                None => (self.connect(address).await?, false),
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(SendError::Connect);
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let upgrade = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                    return Ok(response.map(|body| PooledBody {
                        body,
                        ended: false,
                        // An upgraded connection belongs to the tunnel from now on.
                        back: (!upgrade).then(|| (self.clone(), id, sender)),
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Request),
                },
            }
        }
    }
}

/// A response body from an upstream that returns its connection to the idle list once read
/// to the end.
pub(crate) struct PooledBody {
    body: Incoming,
    ended: bool,
    back: Option<(Arc<Upstreams>, UpstreamId, SendRequest<ProxyBody>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((upstreams, id, sender)) = self.back.take() {
            upstreams.checkin(id, sender);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.ended || self.body.is_end_stream() {
            self.release();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
            self.release();
        }
        polled.map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
