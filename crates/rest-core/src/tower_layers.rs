//! `tower` layers (feature `tower`): CORS in front of a service, and problem mapping of a
//! service's errors, so that axum, hyper and tonic users plug rest-core in directly.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use rest_core::{Error, ProblemLayer};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let inner = service_fn(|_request: Request<()>| async {
//!     Err::<Response<Bytes>, Error>(Error::PreconditionRequired)
//! });
//! let response = ProblemLayer.layer(inner).oneshot(Request::new(())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::PRECONDITION_REQUIRED);
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! # });
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::{CorsPolicy, Error};

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// Applies a [`CorsPolicy`]: answers preflights itself, decorates every other response.
#[derive(Debug, Clone)]
pub struct CorsLayer {
    policy: Arc<CorsPolicy>,
}

impl CorsLayer {
    /// A layer applying `policy`.
    #[must_use]
    pub fn new(policy: CorsPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsService {
            inner,
            policy: Arc::clone(&self.policy),
        }
    }
}

/// The service of [`CorsLayer`].
#[derive(Debug, Clone)]
pub struct CorsService<S> {
    inner: S,
    policy: Arc<CorsPolicy>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CorsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: From<Bytes> + Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<Response<ResB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        if CorsPolicy::is_preflight(request.method(), request.headers()) {
            let response = self
                .policy
                .preflight::<ResB>(request.headers())
                .unwrap_or_else(|error| error.to_response());
            return Box::pin(async move { Ok(response) });
        }
        let request_headers = request.headers().clone();
        let policy = Arc::clone(&self.policy);
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            policy.decorate(&request_headers, response.headers_mut());
            Ok(response)
        })
    }
}

/// Turns the inner service's [`Error`]s into `application/problem+json` responses (and its
/// error type into `Infallible`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemLayer;

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProblemService { inner }
    }
}

/// The service of [`ProblemLayer`].
#[derive(Debug, Clone)]
pub struct ProblemService<S> {
    inner: S,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ProblemService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<Error>,
    S::Future: Send + 'static,
    ResB: From<Bytes> + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = Infallible;
    type Future = BoxFuture<Response<ResB>, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An inner service that cannot become ready is reported on the next call instead.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            Ok(match future.await {
                Ok(response) => response,
                Err(error) => error.into().to_response(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method, StatusCode};
    use tower::{ServiceExt, service_fn};

    fn policy() -> CorsPolicy {
        CorsPolicy::builder()
            .allow_origin("https://a.example")
            .allow_methods([Method::GET, Method::PUT])
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn cors_layer_answers_preflights_and_decorates() {
        let inner = service_fn(|_r: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Bytes::from_static(b"hi")))
        });
        let service = CorsLayer::new(policy()).layer(inner);
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .header("origin", "https://a.example")
            .header("access-control-request-method", "PUT")
            .body(())
            .unwrap();
        let response = service.clone().oneshot(preflight).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.body().is_empty());
        let refused = Request::builder()
            .method(Method::OPTIONS)
            .header("origin", "https://a.example")
            .header("access-control-request-method", "DELETE")
            .body(())
            .unwrap();
        let response = service.clone().oneshot(refused).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let get = Request::builder()
            .header("origin", "https://a.example")
            .body(())
            .unwrap();
        let response = service.oneshot(get).await.unwrap();
        assert_eq!(response.body(), "hi");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            HeaderValue::from_static("https://a.example")
        );
    }

    #[tokio::test]
    async fn problem_layer_maps_errors() {
        let inner = service_fn(|r: Request<()>| async move {
            if r.uri().path() == "/ok" {
                Ok(Response::new(Bytes::new()))
            } else {
                Err(Error::NotFound)
            }
        });
        let service = ProblemLayer.layer(inner);
        let ok = Request::builder().uri("/ok").body(()).unwrap();
        assert_eq!(service.clone().oneshot(ok).await.unwrap().status(), 200);
        let missing = Request::builder().uri("/x").body(()).unwrap();
        let response = service.oneshot(missing).await.unwrap();
        assert_eq!(response.status(), 404);
        let problem: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(problem["status"], 404);
    }
}
