//! The headers request/reply sets on every backend: a request carries `reply-to` (an
//! address of the backend) and a `correlation-id`; the reply carries the same
//! `correlation-id` back.

use crate::{Delivery, Envelope, Error, Result};

/// Sets `reply-to` and, unless the caller set one, `correlation-id` (the message id).
pub(crate) fn prepare_request(mut envelope: Envelope, reply_to: &str) -> Result<Envelope> {
    let id = envelope.id().to_string();
    let headers = envelope.headers_mut();
    headers.insert("reply-to", reply_to)?;
    if headers.correlation_id().is_none() {
        headers.insert("correlation-id", id)?;
    }
    Ok(envelope)
}

/// Where the reply to `request` goes, and the response with the request's
/// `correlation-id`.
pub(crate) fn prepare_reply(
    request: &Delivery,
    mut response: Envelope,
) -> Result<(String, Envelope)> {
    let headers = request.envelope.headers();
    let Some(reply_to) = headers.reply_to() else {
        return Err(Error::InvalidHeader {
            name: "reply-to".into(),
            reason: "the request has no reply-to header",
        });
    };
    if let Some(correlation) = headers.correlation_id() {
        response
            .headers_mut()
            .insert("correlation-id", correlation)?;
    }
    Ok((reply_to.to_owned(), response))
}
