//! A tower `Service` over a [`SoapService`] (feature `tower`), for hyper, axum and tonic.
//! The request body must already be collected (`Request<Bytes>`); put a body-size limit in
//! front of it.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response};

use crate::service::SoapService;

/// Serves a shared [`SoapService`].
#[derive(Debug, Clone)]
pub struct SoapTowerService {
    service: Arc<SoapService>,
}

impl SoapTowerService {
    /// Wraps a service.
    pub fn new(service: Arc<SoapService>) -> Self {
        SoapTowerService { service }
    }
}

impl tower_service::Service<Request<Bytes>> for SoapTowerService {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Bytes>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (parts, body) = request.into_parts();
        ready(Ok(self.service.handle(&parts, &body, SystemTime::now())))
    }
}
