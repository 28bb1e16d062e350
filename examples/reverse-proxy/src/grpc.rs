//! gRPC pass-through: what the proxy does differently for a gRPC call (`content-type:
//! application/grpc*` from an HTTP/2 client), on top of forwarding it to an `h2c` pool with
//! its bodies streamed both ways and its trailers kept.
//!
//! - The proxy's own failures (no member, member unreachable, timed out) are answered as
//!   gRPC statuses in a trailers-only response (HTTP 200, `grpc-status`, `grpc-message`),
//!   not as an HTTP error page a client could only map to a generic code.
//! - `grpc-timeout` is the call's deadline: the response head must come by then (and within
//!   the pool's `request_timeout_ms`), and a response still streaming at the deadline ends
//!   with `grpc-status: 4` (DEADLINE_EXCEEDED) in its trailers. Each attempt passes on what
//!   is left of it as the upstream's `grpc-timeout`; no attempt starts after it.
//! - A rate-limited call is RESOURCE_EXHAUSTED (with `Retry-After`), not an HTTP 429 that a
//!   client would read as UNAVAILABLE.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use proxy_core::{GrpcCode, grpc_status_fields, grpc_trailers_only};

use crate::forward::UpstreamUnreachable;
use crate::{BoxError, ProxyBody};

/// A trailers-only gRPC answer written by the proxy.
pub(crate) fn answer(code: GrpcCode, message: &str) -> Response<ProxyBody> {
    grpc_trailers_only(code, message).map(|()| {
        http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed()
    })
}

/// The client's answer to a gRPC call from the forwarded `response`: a failure the proxy
/// wrote itself ([`UpstreamUnreachable`]) as a gRPC status, an upstream's response as it
/// is, its body ended with DEADLINE_EXCEEDED at `deadline`.
pub(crate) fn pass(
    response: Response<ProxyBody>,
    deadline: Option<Instant>,
) -> Response<ProxyBody> {
    if response.extensions().get::<UpstreamUnreachable>().is_some() {
        let (code, message) = match response.status() {
            StatusCode::GATEWAY_TIMEOUT => (GrpcCode::DeadlineExceeded, "upstream timed out"),
            StatusCode::SERVICE_UNAVAILABLE => (GrpcCode::Unavailable, "no upstream available"),
            _ => (GrpcCode::Unavailable, "upstream unreachable"),
        };
        let mut answer = answer(code, message);
        answer.extensions_mut().insert(UpstreamUnreachable);
        return answer;
    }
    match deadline {
        Some(deadline) if !response.body().is_end_stream() => response.map(|body| {
            DeadlineBody {
                inner: Some(body),
                sleep: Box::pin(tokio::time::sleep_until(deadline.into())),
            }
            .boxed()
        }),
        _ => response,
    }
}

/// A response body cut at the call's deadline: the upstream's stream is dropped (reset) and
/// the client gets trailers with DEADLINE_EXCEEDED instead of the rest.
struct DeadlineBody {
    /// `None` once ended.
    inner: Option<ProxyBody>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_trailers() {
                    self.inner = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                self.inner = None;
                Poll::Ready(other)
            }
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.inner = None;
                    Poll::Ready(Some(Ok(Frame::trailers(grpc_status_fields(
                        GrpcCode::DeadlineExceeded,
                        "deadline exceeded at the proxy",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}
