//! A `tower::Service` as a message [`Handler`]: [`ServiceHandler`] (feature `tower`).

use std::future::{Future, poll_fn};

use tower_service::Service;

use crate::{Delivery, Envelope, Handler, HandlerError, HandlerResult, Settlement};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a `tower::Service<Envelope, Response = Settlement>` as a [`Handler`], so tower's
/// own middleware (`tower::timeout`, `tower::limit`, `tower::load_shed`, …) can wrap a
/// consumer. Each delivery clones the service (as `tower::ServiceBuilder` stacks expect)
/// and the envelope (the consumer loop keeps the delivery to settle it).
///
/// Errors become [`HandlerError`]s: one that is a [`HandlerError`] (boxed or not) keeps its
/// class, any other is retryable (a nack).
#[derive(Clone, Debug)]
pub struct ServiceHandler<S> {
    service: S,
}

impl<S> ServiceHandler<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

fn classify<E: Into<BoxError>>(error: E) -> HandlerError {
    let error: BoxError = error.into();
    match error.downcast::<HandlerError>() {
        Ok(handler_error) => *handler_error,
        Err(other) => HandlerError::retryable(other),
    }
}

impl<S> Handler for ServiceHandler<S>
where
    S: Service<Envelope, Response = Settlement> + Clone + Send + Sync,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = HandlerResult> + Send {
        let mut service = self.service.clone();
        let envelope = delivery.envelope.clone();
        async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(classify)?;
            service.call(envelope).await.map_err(classify)
        }
    }
}
