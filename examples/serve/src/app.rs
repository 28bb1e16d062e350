//! The one shape of an example application: a value that answers a request from a peer
//! with a streaming response.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;

/// Any error a response body may fail with while it streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request an [`App`] reads and every response it answers with: whole
/// pages and streamed ones (a proxied upstream body, GraphQL `@defer` parts) alike, sent
/// frame by frame as they are ready. A plain type rather than hyper's `Incoming`, so that a
/// test builds a request with [`full`] and calls the app in process
/// ([`testing`](crate::testing), feature `testing`), as axum's examples do with `oneshot`.
///
/// Its error is the concrete [`BodyError`] rather than a boxed trait object, so that
/// adapters such as `http_body_util::Limited` over it keep their futures `Send`.
pub struct Body {
    inner: UnsyncBoxBody<Bytes, BoxError>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("size_hint", &self.inner.size_hint())
            .finish_non_exhaustive()
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.inner).poll_frame(cx).map_err(BodyError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Why a [`Body`] failed while it streamed (the client went away, an upstream failed).
#[derive(Debug)]
pub struct BodyError(BoxError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// What [`App::handle`] returns: the response, once it is ready.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// An application the [`Server`](crate::Server) serves, and the showcase mounts under a
/// prefix.
///
/// It is shared by every connection (hence `Arc<Self>`, which also lets a handler hand the
/// app to a task it spawns, such as a WebSocket session after an upgrade). Connections are
/// served with upgrades enabled, so a handler may answer `101 Switching Protocols` and take
/// the connection over with `hyper::upgrade::on(request)` (the upgrade travels in the
/// request's extensions, which the server keeps when it boxes the body).
pub trait App: Send + Sync + 'static {
    /// Answers one request from `peer`.
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<Body>) -> ResponseFuture;

    /// Called once when the server stops accepting: begin closing what the app owns beyond
    /// hyper's connections (upgraded WebSockets, for instance with close code 1001).
    fn shutdown(&self) {}

    /// Whether everything [`App::shutdown`] began closing is closed; the server waits for
    /// it, up to its grace period, before it returns.
    fn is_drained(&self) -> bool {
        true
    }
}

/// Boxes any body of bytes into [`Body`], e.g. `response.map(serve::boxed)` for a
/// `Response<Full<Bytes>>`.
pub fn boxed<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Body {
        inner: body.map_err(Into::into).boxed_unsync(),
    }
}

/// A whole body in one frame.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(Full::new(bytes.into()))
}

/// The part of `path` below the mount point `base` (`""` for an app at the root): `/` for
/// `base` itself, `None` outside it (`/oauth-login` is not below `/oauth`).
///
/// ```
/// assert_eq!(serve::local_path("/auth", "/auth/login"), Some("/login"));
/// assert_eq!(serve::local_path("/auth", "/auth"), Some("/"));
/// assert_eq!(serve::local_path("/auth", "/authx"), None);
/// assert_eq!(serve::local_path("", "/healthz"), Some("/healthz"));
/// ```
pub fn local_path<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    match path.strip_prefix(base)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}
