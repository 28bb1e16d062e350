//! A tower `Layer` that gives handlers a request's cookie jar and writes its delta.
//!
//! ```
//! use cookie_jar::{CookieLayer, Cookies, SetCookie};
//! use http::{Request, Response, header::SET_COOKIE};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new().layer(CookieLayer::new()).service(service_fn(
//!     |req: Request<()>| async move {
//!         let cookies = req.extensions().get::<Cookies>().cloned().unwrap();
//!         let visits: u32 = cookies.get("visits").and_then(|v| v.parse().ok()).unwrap_or(0);
//!         cookies.add(SetCookie::build("visits", (visits + 1).to_string()).finish().unwrap());
//!         Ok::<_, std::convert::Infallible>(Response::new(()))
//!     },
//! ));
//! let req = Request::builder().header("cookie", "visits=41").body(()).unwrap();
//! let resp = svc.oneshot(req).await.unwrap();
//! assert!(resp.headers()[SET_COOKIE].to_str().unwrap().starts_with("visits=42;"));
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::delta::DeltaJar;
use crate::error::Result;
use crate::keys::KeyRing;
use crate::set_cookie::SetCookie;

/// The request's [`DeltaJar`], shared between the handler (through the request extensions)
/// and the [`CookieService`] that writes its delta to the response.
#[derive(Clone, Debug, Default)]
pub struct Cookies(Arc<Mutex<DeltaJar>>);

impl Cookies {
    /// Locks the jar for several operations at once.
    pub fn lock(&self) -> MutexGuard<'_, DeltaJar> {
        // A handler that panicked while holding the lock left a consistent jar: every
        // DeltaJar method completes its change before returning.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current value of `name` (see [`DeltaJar::get`]).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<String> {
        self.lock().get(name).map(str::to_owned)
    }

    /// Adds or replaces a cookie.
    pub fn add(&self, cookie: SetCookie) {
        self.lock().add(cookie);
    }

    /// Removes a cookie set with the defaults (`Path=/`, no `Domain`).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.lock().remove(name)
    }

    /// The verified value of a signed cookie.
    #[must_use]
    pub fn get_signed(&self, name: &str, ring: &KeyRing) -> Option<String> {
        self.lock().get_signed(name, ring)
    }

    /// The decrypted value of a private cookie.
    #[must_use]
    pub fn get_private(&self, name: &str, ring: &KeyRing) -> Option<String> {
        self.lock().get_private(name, ring)
    }

    /// Adds a signed cookie.
    pub fn add_signed(&self, cookie: SetCookie, ring: &KeyRing) {
        self.lock().add_signed(cookie, ring);
    }

    /// Adds a private (encrypted) cookie.
    pub fn add_private(&self, cookie: SetCookie, ring: &KeyRing) {
        self.lock().add_private(cookie, ring);
    }
}

/// Layer producing [`CookieService`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CookieLayer {
    _private: (),
}

impl CookieLayer {
    /// A new layer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower_layer::Layer<S> for CookieLayer {
    type Service = CookieService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CookieService { inner }
    }
}

/// Puts [`Cookies`] in the request extensions and appends the jar's delta as `Set-Cookie`
/// headers to the response.
#[derive(Clone, Debug)]
pub struct CookieService<S> {
    inner: S,
}

impl<S, ReqB, ResB> tower_service::Service<Request<ReqB>> for CookieService<S>
where
    S: tower_service::Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<ResB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let cookies = Cookies(Arc::new(Mutex::new(DeltaJar::from_headers(req.headers()))));
        req.extensions_mut().insert(cookies.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            cookies.lock().write_to(resp.headers_mut());
            Ok(resp)
        })
    }
}
