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
use hyper::body::Incoming;

/// Any error a response body may fail with while it streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body every [`App`] answers with: whole pages and streamed ones (a proxied
/// upstream body, GraphQL `@defer` parts) alike, sent frame by frame as they are ready.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// What [`App::handle`] returns: the response, once it is ready.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// An application the [`Server`](crate::Server) serves, and the showcase mounts under a
/// prefix.
///
/// It is shared by every connection (hence `Arc<Self>`, which also lets a handler hand the
/// app to a task it spawns, such as a WebSocket session after an upgrade). Connections are
/// served with upgrades enabled, so a handler may answer `101 Switching Protocols` and take
/// the connection over with `hyper::upgrade::on(request)`.
pub trait App: Send + Sync + 'static {
    /// Answers one request from `peer`.
    fn handle(self: Arc<Self>, peer: SocketAddr, request: Request<Incoming>) -> ResponseFuture;

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
    body.map_err(Into::into).boxed_unsync()
}

/// A whole body in one frame.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    boxed(Full::new(bytes.into()))
}
