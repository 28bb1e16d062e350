//! CORS (Fetch standard, "CORS protocol"): a policy that answers preflights and decorates
//! responses, with `Vary` set so that caches keep per-origin answers apart.
//!
//! ```
//! use http::{HeaderMap, Method};
//! use rest_core::CorsPolicy;
//!
//! let cors = CorsPolicy::builder()
//!     .allow_origin("https://app.example")
//!     .allow_methods([Method::GET, Method::POST])
//!     .allow_headers(["content-type", "if-match"])
//!     .build()?;
//! let mut request = HeaderMap::new();
//! request.insert("origin", "https://app.example".parse().unwrap());
//! let mut response = HeaderMap::new();
//! cors.decorate(&request, &mut response);
//! assert_eq!(response["access-control-allow-origin"], "https://app.example");
//! assert_eq!(response["vary"], "Origin");
//! # Ok::<(), rest_core::Error>(())
//! ```

use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::{Error, Result};

#[derive(Debug, Clone)]
enum Origins {
    Any,
    List(Vec<HeaderValue>),
}

/// A CORS policy; build one with [`CorsPolicy::builder`].
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    origins: Origins,
    credentials: bool,
    methods: Vec<Method>,
    methods_value: HeaderValue,
    headers: Vec<HeaderName>,
    headers_value: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    expose: Option<HeaderValue>,
}

/// Builds a [`CorsPolicy`]; [`CorsBuilder::build`] checks it.
#[derive(Debug, Clone, Default)]
pub struct CorsBuilder {
    any_origin: bool,
    origins: Vec<String>,
    credentials: bool,
    methods: Vec<Method>,
    headers: Vec<String>,
    max_age: Option<Duration>,
    expose: Vec<String>,
}

impl CorsBuilder {
    /// Allows one origin (`scheme://host[:port]`, compared byte for byte).
    #[must_use]
    pub fn allow_origin(mut self, origin: &str) -> Self {
        self.origins.push(origin.to_owned());
        self
    }

    /// Allows every origin (`Access-Control-Allow-Origin: *`).
    #[must_use]
    pub fn allow_any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// Allows credentialed requests (cookies, `Authorization`).
    #[must_use]
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// The methods a preflight may ask for (default: GET, HEAD, POST).
    #[must_use]
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.extend(methods);
        self
    }

    /// The request headers a preflight may ask for.
    #[must_use]
    pub fn allow_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.headers.extend(names.into_iter().map(str::to_owned));
        self
    }

    /// How long a browser may cache a preflight answer.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Response headers scripts may read beyond the safelisted ones.
    #[must_use]
    pub fn expose_headers<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.expose.extend(names.into_iter().map(str::to_owned));
        self
    }

    /// Checks and builds the policy.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for any origin with credentials (browsers refuse `*` with
    /// credentials, and echoing every origin would hand credentials to any site), no origin
    /// at all, or an origin, method or header name that is not valid.
    pub fn build(self) -> Result<CorsPolicy> {
        if self.any_origin && self.credentials {
            return Err(Error::Config(
                "CORS: any origin (*) cannot be combined with credentials".to_owned(),
            ));
        }
        let origins = if self.any_origin {
            Origins::Any
        } else {
            if self.origins.is_empty() {
                return Err(Error::Config("CORS: no origin allowed".to_owned()));
            }
            let mut list = Vec::with_capacity(self.origins.len());
            for origin in &self.origins {
                if origin == "*" || origin == "null" || !origin.contains("://") {
                    return Err(Error::Config(format!(
                        "CORS: {origin:?} is not an origin (scheme://host[:port])"
                    )));
                }
                list.push(
                    HeaderValue::from_str(origin.trim_end_matches('/'))
                        .map_err(|e| Error::Config(format!("CORS origin {origin:?}: {e}")))?,
                );
            }
            Origins::List(list)
        };
        let methods = if self.methods.is_empty() {
            vec![Method::GET, Method::HEAD, Method::POST]
        } else {
            self.methods
        };
        let methods_value = header_list(methods.iter().map(Method::as_str))?;
        let mut headers = Vec::with_capacity(self.headers.len());
        for name in &self.headers {
            headers.push(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| Error::Config(format!("CORS header {name:?}: {e}")))?,
            );
        }
        let headers_value = if headers.is_empty() {
            None
        } else {
            Some(header_list(headers.iter().map(HeaderName::as_str))?)
        };
        let expose = if self.expose.is_empty() {
            None
        } else {
            Some(header_list(self.expose.iter().map(String::as_str))?)
        };
        Ok(CorsPolicy {
            origins,
            credentials: self.credentials,
            methods,
            methods_value,
            headers,
            headers_value,
            max_age: self.max_age.map(|age| HeaderValue::from(age.as_secs())),
            expose,
        })
    }
}

fn header_list<'a>(items: impl Iterator<Item = &'a str>) -> Result<HeaderValue> {
    HeaderValue::from_str(&items.collect::<Vec<_>>().join(", "))
        .map_err(|e| Error::Config(format!("CORS list: {e}")))
}

impl CorsPolicy {
    /// A builder with nothing allowed yet.
    #[must_use]
    pub fn builder() -> CorsBuilder {
        CorsBuilder::default()
    }

    /// Whether the request is a CORS preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    #[must_use]
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        *method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The `Access-Control-Allow-Origin` value for this request's `Origin`, if allowed.
    fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        match &self.origins {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => list.iter().find(|allowed| *allowed == origin).cloned(),
        }
    }

    fn add_vary(&self, response: &mut HeaderMap, names: &'static str) {
        // With a list the answer depends on Origin; `*` is the same for everyone.
        if matches!(self.origins, Origins::List(_)) || names != "Origin" {
            response.append(header::VARY, HeaderValue::from_static(names));
        }
    }

    /// Answers a preflight with 204 and the `Access-Control-Allow-*` headers.
    ///
    /// # Errors
    ///
    /// [`Error::CorsRejected`] (403) when the origin, the requested method or a requested
    /// header is not allowed.
    pub fn preflight<B: Default>(&self, headers: &HeaderMap) -> Result<Response<B>> {
        let origin = self
            .allowed_origin(headers)
            .ok_or_else(|| Error::CorsRejected("origin not allowed".to_owned()))?;
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or_else(|| Error::CorsRejected("no valid requested method".to_owned()))?;
        if !self.methods.contains(&method) {
            return Err(Error::CorsRejected(format!("method {method} not allowed")));
        }
        for value in headers.get_all(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            let list = value
                .to_str()
                .map_err(|_| Error::CorsRejected("unreadable requested headers".to_owned()))?;
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !self
                    .headers
                    .iter()
                    .any(|h| h.as_str().eq_ignore_ascii_case(name))
                {
                    return Err(Error::CorsRejected(format!("header {name} not allowed")));
                }
            }
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods_value.clone(),
        );
        if let Some(value) = &self.headers_value {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value.clone());
        }
        if self.credentials {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(age) = &self.max_age {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        self.add_vary(out, "Origin");
        self.add_vary(
            out,
            "Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        Ok(response)
    }

    /// Adds the CORS headers of an actual (non-preflight) response for this request's
    /// `Origin`; an origin that is not allowed gets none (the browser then blocks the read).
    /// `Vary: Origin` is added whenever the answer depends on the origin.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        self.add_vary(response, "Origin");
        let Some(origin) = self.allowed_origin(request) else {
            return;
        };
        response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy::builder()
            .allow_origin("https://a.example")
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::PUT])
            .allow_headers(["content-type", "if-match"])
            .max_age(Duration::from_secs(600))
            .expose_headers(["etag", "link"])
            .build()
            .unwrap()
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(*n, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn any_origin_with_credentials_is_refused_at_build_time() {
        let built = CorsPolicy::builder()
            .allow_any_origin()
            .allow_credentials(true)
            .build();
        assert!(matches!(built, Err(Error::Config(_))));
        assert!(CorsPolicy::builder().build().is_err());
        assert!(CorsPolicy::builder().allow_origin("*").build().is_err());
    }

    #[test]
    fn preflight_checks_origin_method_and_headers() {
        let cors = policy();
        let ok = request(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "Content-Type, If-Match"),
        ]);
        assert!(CorsPolicy::is_preflight(&Method::OPTIONS, &ok));
        let response: Response<()> = cors.preflight(&ok).unwrap();
        assert_eq!(response.status(), 204);
        let h = response.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h.get_all("vary").iter().count(), 2);
        let bad_origin = request(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ]);
        assert_eq!(cors.preflight::<()>(&bad_origin).unwrap_err().status(), 403);
        let bad_method = request(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "DELETE"),
        ]);
        assert!(cors.preflight::<()>(&bad_method).is_err());
        let bad_header = request(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-secret"),
        ]);
        assert!(cors.preflight::<()>(&bad_header).is_err());
    }

    #[test]
    fn decorate_varies_on_origin_and_skips_strangers() {
        let cors = policy();
        let mut response = HeaderMap::new();
        cors.decorate(
            &request(&[("origin", "https://evil.example")]),
            &mut response,
        );
        assert!(response.get("access-control-allow-origin").is_none());
        assert_eq!(response["vary"], "Origin");
        let any = CorsPolicy::builder().allow_any_origin().build().unwrap();
        let mut response = HeaderMap::new();
        any.decorate(&request(&[("origin", "https://x.example")]), &mut response);
        assert_eq!(response["access-control-allow-origin"], "*");
        assert!(response.get("vary").is_none());
    }
}
