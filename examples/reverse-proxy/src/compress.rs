//! Streaming response compression: proxy-core's [`prepare_compression`] decides and
//! rewrites the head, its [`Encoder`] compresses each chunk of the upstream body as it
//! arrives (never buffered whole); when the upstream pauses, what is buffered is flushed,
//! so streamed responses (events, long polls) keep flowing.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame};
use proxy_core::{Encoder, available_codings, prepare_compression};
use sync_wrapper::SyncWrapper;

use crate::{BoxError, ProxyBody, plain};

pub(crate) fn compress(
    request: &HeaderMap,
    head_request: bool,
    response: Response<ProxyBody>,
    min_len: u64,
) -> Response<ProxyBody> {
    if head_request {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let known = body.size_hint().exact();
    let Some(coding) =
        prepare_compression(request, &mut head, known, min_len, &available_codings())
    else {
        return Response::from_parts(head, body);
    };
    let Ok(encoder) = Encoder::new(coding) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compression failed",
            true,
        );
    };
    let body = Encoded {
        inner: body,
        encoder: Some(SyncWrapper::new(encoder)),
        pending: false,
    };
    Response::from_parts(head, body.boxed())
}

/// The upstream body, compressed.
struct Encoded {
    inner: ProxyBody,
    /// `None` once finished.
    encoder: Option<SyncWrapper<Encoder>>,
    /// Whether input went in since the last output.
    pending: bool,
}

impl Body for Encoded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.pending {
                        this.pending = false;
                        let out = encoder.get_mut().flush()?;
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(frame) => frame,
            };
            match frame {
                Some(Ok(frame)) => {
                    // Trailers are dropped: they described the identity bytes.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = encoder.get_mut().encode(&data)?;
                    if out.is_empty() {
                        this.pending = true;
                    } else {
                        this.pending = false;
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => {
                    let Some(encoder) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    let out = encoder.into_inner().finish()?;
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }
}
