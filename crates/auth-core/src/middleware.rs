//! `tower` middleware (feature `tower`): [`BearerAuthLayer`] verifies a bearer JWT and hands
//! its claims to the service in the request's extensions; [`SessionLayer`] loads the
//! request's session, hands it to the service as a [`SessionHandle`], then saves it and sets
//! the cookie.
//!
//! ```
//! # async fn run() -> auth_core::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use auth_core::{Algorithm, BearerAuthLayer, Claims, JwtIssuer, JwtVerifier, Key, KeySet};
//! use http::{Request, Response, StatusCode, header::AUTHORIZATION};
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! let mut keys = KeySet::new();
//! keys.rotate(Key::generate("k1", Algorithm::EdDSA)?)?;
//! let api = BearerAuthLayer::new(JwtVerifier::new(keys.clone()), "api").layer(service_fn(
//!     |request: Request<()>| async move {
//!         let claims = request.extensions().get::<Claims>().cloned().unwrap_or_default();
//!         Ok::<_, std::convert::Infallible>(Response::new(claims.sub.unwrap_or_default()))
//!     },
//! ));
//!
//! let token = JwtIssuer::new(keys).issue(&Claims::new("ada", SystemTime::now(), Duration::from_secs(60)))?;
//! let request = Request::builder().header(AUTHORIZATION, format!("Bearer {token}")).body(()).unwrap();
//! let response = api.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.into_body(), "ada");
//!
//! let anonymous = api.oneshot(Request::new(())).await.unwrap();
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use ::tower::{Layer, Service};
use http::{Request, Response};

use crate::authorization::{BearerChallenge, BearerError, bearer_token};
use crate::{Claims, JwtVerifier, Session, SessionCookie, SessionStore, Sessions};

/// A [`Layer`] that requires a valid bearer JWT on every request.
///
/// Requests without a token get 401 with `WWW-Authenticate: Bearer realm="..."`; malformed
/// `Authorization` headers get 400 (`invalid_request`); invalid, expired or foreign tokens
/// get 401 (`invalid_token`); valid tokens without a required scope get 403
/// (`insufficient_scope`, with the scope in the challenge) (RFC 6750 section 3.1). Verified
/// [`Claims`] are inserted into the request's extensions. The response body of a rejection
/// is `ResBody::default()`.
#[derive(Debug, Clone)]
pub struct BearerAuthLayer {
    verifier: Arc<JwtVerifier>,
    realm: Arc<str>,
    scopes: Arc<[String]>,
}

impl BearerAuthLayer {
    /// Verifies with `verifier`; challenges name `realm`.
    pub fn new(verifier: JwtVerifier, realm: &str) -> Self {
        Self {
            verifier: Arc::new(verifier),
            realm: Arc::from(realm),
            scopes: Arc::from([]),
        }
    }

    /// Also requires every scope in `scopes` in the token's `scope` claim (a space-separated
    /// string, RFC 9068 section 2.2.3).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// True when the space-separated `scope` claim holds every scope in `required`.
fn has_scopes(claims: &Claims, required: &[String]) -> bool {
    let granted = claims
        .extra
        .get("scope")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    required
        .iter()
        .all(|scope| granted.split(' ').any(|granted| granted == scope))
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth {
            inner,
            verifier: self.verifier.clone(),
            realm: self.realm.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service made by [`BearerAuthLayer`].
#[derive(Debug, Clone)]
pub struct BearerAuth<S> {
    inner: S,
    verifier: Arc<JwtVerifier>,
    realm: Arc<str>,
    scopes: Arc<[String]>,
}

impl<S> BearerAuth<S> {
    fn reject<B: Default>(&self, error: Option<(BearerError, String)>) -> Response<B> {
        let mut challenge = BearerChallenge::new().realm(&*self.realm);
        if !self.scopes.is_empty() {
            challenge = challenge.scope(self.scopes.join(" "));
        }
        if let Some((error, description)) = error {
            challenge = challenge.error(error, description);
        }
        let (parts, ()) = challenge.response().into_parts();
        Response::from_parts(parts, B::default())
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let token = match bearer_token(request.headers()) {
            Ok(Some(token)) => token,
            Ok(None) => return ResponseFuture::rejected(self.reject(None)),
            Err(error) => {
                return ResponseFuture::rejected(
                    self.reject(Some((BearerError::InvalidRequest, error.to_string()))),
                );
            }
        };
        match self.verifier.verify::<Claims>(&token, SystemTime::now()) {
            Ok(claims) if !has_scopes(&claims, &self.scopes) => {
                ResponseFuture::rejected(self.reject(Some((
                    BearerError::InsufficientScope,
                    "the token lacks a required scope".to_owned(),
                ))))
            }
            Ok(claims) => {
                request.extensions_mut().insert(claims);
                ResponseFuture {
                    state: State::Inner {
                        future: self.inner.call(request),
                    },
                }
            }
            Err(error) => {
                let code = BearerError::for_error(&error).unwrap_or(BearerError::InvalidToken);
                ResponseFuture::rejected(self.reject(Some((code, error.to_string()))))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`BearerAuth`]: the inner service's, or an immediate rejection.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
        },
        Rejected {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn rejected(response: Response<B>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
        }
    }
}

/// The request's session, put in the request's extensions by [`SessionLayer`].
///
/// Lock it briefly to read or change the session; do not hold the guard across an `.await`.
#[derive(Debug, Clone)]
pub struct SessionHandle(Arc<std::sync::Mutex<Session>>);

impl SessionHandle {
    /// Locks the session.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        // A handler that panicked while holding the lock left a session that is still
        // well-formed (every method keeps it consistent), so take it over.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A [`Layer`] that loads the session before the service runs and saves it after.
///
/// The session is read from the [`SessionCookie`], given to the service as a
/// [`SessionHandle`] extension, saved when the service returns, and the `Set-Cookie` the
/// response needs is appended. If the store fails, on load or save, the response is 503
/// with an empty body: never a fresh anonymous session for a user who is logged in.
#[derive(Debug)]
pub struct SessionLayer<S> {
    sessions: Arc<Sessions<S>>,
    cookie: Arc<SessionCookie>,
}

impl<S> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        Self {
            sessions: self.sessions.clone(),
            cookie: self.cookie.clone(),
        }
    }
}

impl<S> SessionLayer<S> {
    /// Sessions in `sessions`, carried by `cookie`.
    pub fn new(sessions: Sessions<S>, cookie: SessionCookie) -> Self {
        Self {
            sessions: Arc::new(sessions),
            cookie: Arc::new(cookie),
        }
    }
}

impl<S, I> Layer<I> for SessionLayer<S> {
    type Service = SessionService<S, I>;

    fn layer(&self, inner: I) -> Self::Service {
        SessionService {
            inner,
            sessions: self.sessions.clone(),
            cookie: self.cookie.clone(),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Debug)]
pub struct SessionService<S, I> {
    inner: I,
    sessions: Arc<Sessions<S>>,
    cookie: Arc<SessionCookie>,
}

impl<S, I: Clone> Clone for SessionService<S, I> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: self.sessions.clone(),
            cookie: self.cookie.clone(),
        }
    }
}

fn status_only<B: Default>(status: http::StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

impl<S, I, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, I>
where
    S: SessionStore + 'static,
    I: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    I::Future: Send,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = I::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, I::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let sessions = self.sessions.clone();
        let cookie = self.cookie.clone();
        Box::pin(async move {
            let now = SystemTime::now();
            let session = match cookie.load(&sessions, request.headers(), now).await {
                Ok(session) => session,
                Err(error) => return Ok(status_only(error.status())),
            };
            let handle = SessionHandle(Arc::new(std::sync::Mutex::new(session)));
            request.extensions_mut().insert(handle.clone());
            let mut response = inner.call(request).await?;
            let mut session = handle.lock().clone();
            match cookie
                .finish(&sessions, &mut session, response.headers_mut(), now)
                .await
            {
                Ok(()) => Ok(response),
                Err(error) => Ok(status_only(error.status())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, JwtIssuer, Key, KeySet};
    use ::tower::{ServiceExt, service_fn};
    use http::StatusCode;
    use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
    use std::time::Duration;

    fn service(
        keys: KeySet,
    ) -> BearerAuth<
        impl Service<
            Request<()>,
            Response = Response<String>,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone,
    > {
        BearerAuthLayer::new(JwtVerifier::new(keys), "api").layer(service_fn(
            |request: Request<()>| async move {
                let sub = request
                    .extensions()
                    .get::<Claims>()
                    .and_then(|c| c.sub.clone());
                Ok(Response::new(sub.unwrap_or_default()))
            },
        ))
    }

    fn request(authorization: &str) -> Request<()> {
        Request::builder()
            .header(AUTHORIZATION, authorization)
            .body(())
            .unwrap()
    }

    #[tokio::test]
    async fn session_layer_round_trip_and_outage() {
        use crate::{MemoryStore, SessionConfig};
        use http::header::{COOKIE, SET_COOKIE};

        let layer = SessionLayer::new(
            Sessions::new(MemoryStore::new(), SessionConfig::default()),
            SessionCookie::default(),
        );
        let app = layer.layer(service_fn(|request: Request<()>| async move {
            let handle = request
                .extensions()
                .get::<SessionHandle>()
                .cloned()
                .unwrap();
            let mut session = handle.lock();
            let body = match request.uri().path() {
                "/login" => {
                    session.login("ada").unwrap();
                    "logged in".to_owned()
                }
                "/logout" => {
                    session.logout();
                    "bye".to_owned()
                }
                _ => session.user().unwrap_or("anonymous").to_owned(),
            };
            Ok::<_, std::convert::Infallible>(Response::new(body))
        }));
        let get = |path: &str, cookie: Option<&str>| {
            let mut builder = Request::builder().uri(path);
            if let Some(cookie) = cookie {
                builder = builder.header(COOKIE, cookie);
            }
            builder.body(()).unwrap()
        };

        let anonymous = app.clone().oneshot(get("/", None)).await.unwrap();
        assert_eq!(anonymous.into_body(), "anonymous");
        let login = app.clone().oneshot(get("/login", None)).await.unwrap();
        let set_cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(set_cookie.starts_with("__Host-session="));
        let pair = set_cookie.split(';').next().unwrap().to_owned();
        let me = app.clone().oneshot(get("/", Some(&pair))).await.unwrap();
        assert!(me.headers().get(SET_COOKIE).is_none());
        assert_eq!(me.into_body(), "ada");
        let logout = app
            .clone()
            .oneshot(get("/logout", Some(&pair)))
            .await
            .unwrap();
        assert!(
            logout.headers()[SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let after = app.oneshot(get("/", Some(&pair))).await.unwrap();
        assert_eq!(after.into_body(), "anonymous");
    }

    #[tokio::test]
    async fn rejections_carry_rfc6750_codes() {
        let mut keys = KeySet::new();
        keys.rotate(Key::generate("k1", Algorithm::HS256).unwrap())
            .unwrap();
        let api = service(keys.clone());

        let malformed = api.clone().oneshot(request("Bearer a b")).await.unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        assert!(
            malformed.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_request""#)
        );

        let expired = JwtIssuer::new(keys.clone())
            .issue(&Claims::new(
                "x",
                SystemTime::now() - Duration::from_secs(3600),
                Duration::from_secs(60),
            ))
            .unwrap();
        let response = api
            .clone()
            .oneshot(request(&format!("Bearer {expired}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
        assert_eq!(response.into_body(), "");

        // A valid token without the required scope: 403 insufficient_scope.
        let scoped = BearerAuthLayer::new(JwtVerifier::new(keys.clone()), "api")
            .require_scopes(["write"])
            .layer(service_fn(|_: Request<()>| async {
                Ok::<_, std::convert::Infallible>(Response::new(String::from("written")))
            }));
        let mut claims = Claims::new("x", SystemTime::now(), Duration::from_secs(60));
        claims.extra.insert("scope".into(), "read".into());
        let read_only = JwtIssuer::new(keys.clone()).issue(&claims).unwrap();
        let response = scoped
            .clone()
            .oneshot(request(&format!("Bearer {read_only}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api", scope="write", error="insufficient_scope", error_description="the token lacks a required scope""#
        );
        claims.extra.insert("scope".into(), "read write".into());
        let writer = JwtIssuer::new(keys.clone()).issue(&claims).unwrap();
        let response = scoped
            .oneshot(request(&format!("Bearer {writer}")))
            .await
            .unwrap();
        assert_eq!(response.into_body(), "written");

        // Basic credentials are not a bearer token: challenged like an anonymous request.
        let basic = api.clone().oneshot(request("Basic dTpw")).await.unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);

        let good = JwtIssuer::new(keys)
            .issue(&Claims::new(
                "grace",
                SystemTime::now(),
                Duration::from_secs(60),
            ))
            .unwrap();
        let response = api
            .oneshot(request(&format!("bearer {good}")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.into_body(), "grace");
    }
}
