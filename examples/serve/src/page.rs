//! The small responses an example writes itself: a text, HTML or JSON body with its content
//! type, a redirect, a static page that answers GET and HEAD, HTML escaping, and the
//! headers that keep a page out of other sites' frames ([`protect_html`]).
//!
//! Generic over the body type (`Full<Bytes>` and the like, anything `From<Bytes>`), so an
//! app keeps whichever body it builds its pages with:
//!
//! ```
//! use http::{Method, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//!
//! let page: Response<Full<Bytes>> = serve::page::html(
//!     StatusCode::OK,
//!     serve::page::document("demo", &format!("<p>{}</p>", serve::page::escape("<b>"))),
//! );
//! assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
//! let head: Response<Full<Bytes>> = serve::page::get_or_head(&Method::HEAD, "text/plain", "hi");
//! assert_eq!(head.headers()["content-length"], "2");
//! ```

use bytes::Bytes;
use http::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

/// The Content Security Policy of the examples' pages. They are self-contained (no CDN:
/// they work offline) and carry their script and style inline, so: everything from this
/// origin only, inline script and style allowed, no plugins, no `<base>` rewriting, and no
/// framing by any site (`frame-ancestors 'none'`, CSP Level 3, against clickjacking).
/// `connect-src 'self'` covers `ws:`/`wss:` to the same host (CSP Level 3, section 6.7.2.8).
/// `form-action` is left open: the OAuth provider's consent form redirects to a client's
/// registered redirect URI, on another origin.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; \
     script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Adds [`CONTENT_SECURITY_POLICY_VALUE`] and `X-Frame-Options: DENY` (for browsers that
/// predate `frame-ancestors`, RFC 7034) to the headers of an HTML response, unless the
/// response sets a policy of its own; other responses are left alone.
///
/// ```
/// use http::{Response, StatusCode};
/// use http_body_util::Full;
/// use bytes::Bytes;
///
/// let mut page: Response<Full<Bytes>> = serve::page::html(StatusCode::OK, "<p>hi</p>");
/// serve::page::protect_html(page.headers_mut());
/// assert_eq!(page.headers()["x-frame-options"], "DENY");
/// assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
/// ```
pub fn protect_html(headers: &mut HeaderMap) {
    let is_html = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/html"));
    if !is_html {
        return;
    }
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
    }
    if !headers.contains_key(X_FRAME_OPTIONS) {
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
}

/// A response with `status`, `Content-Type: content_type` and `body`.
pub fn respond<B: From<Bytes>>(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<B> {
    let mut response = Response::new(B::from(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain-text message, one line (a newline is added): refusals and short answers.
pub fn text<B: From<Bytes>>(status: StatusCode, message: &str) -> Response<B> {
    respond(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

/// An HTML document (see [`document`]).
pub fn html<B: From<Bytes>>(status: StatusCode, document: impl Into<Bytes>) -> Response<B> {
    respond(status, "text/html; charset=utf-8", document.into())
}

/// A JSON body, already serialized.
pub fn json<B: From<Bytes>>(status: StatusCode, json: impl Into<Bytes>) -> Response<B> {
    respond(status, "application/json", json.into())
}

/// The small HTML document every example page is: `title` (escaped) as the title and the
/// heading, then `body` (HTML, written by the caller with [`escape`] for what it did not
/// write itself).
pub fn document(title: &str, body: &str) -> String {
    let title = escape(title);
    format!("<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>{body}\n")
}

/// A redirect (`303 See Other` after a form, `308 Permanent Redirect` to a canonical path)
/// to `location`; a location that is not a valid header value is a server error, never a
/// redirect elsewhere.
pub fn redirect<B: From<Bytes>>(status: StatusCode, location: &str) -> Response<B> {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = respond(status, "text/plain; charset=utf-8", Bytes::new());
            response.headers_mut().insert(LOCATION, value);
            response
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect location"),
    }
}

/// `404 Not Found`.
pub fn not_found<B: From<Bytes>>() -> Response<B> {
    text(StatusCode::NOT_FOUND, "not found")
}

/// `405 Method Not Allowed` with the `Allow` header (RFC 9110 section 15.5.6).
pub fn method_not_allowed<B: From<Bytes>>(allow: &'static str) -> Response<B> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A page that only GET and HEAD read: GET gets `body`; HEAD gets no body and the
/// `Content-Length` GET would send (RFC 9110 section 9.3.2); any other method gets 405.
pub fn get_or_head<B: From<Bytes>>(
    method: &Method,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<B> {
    let body = body.into();
    if method == Method::GET {
        respond(StatusCode::OK, content_type, body)
    } else if method == Method::HEAD {
        let mut response = respond(StatusCode::OK, content_type, Bytes::new());
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        response
    } else {
        method_not_allowed("GET, HEAD")
    }
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for HTML text and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    type Page = Response<Full<Bytes>>;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn document_escapes_its_title_but_not_its_body() {
        let page = document("a<b", "<p>hi</p>");
        assert!(page.contains("<title>a&lt;b</title><h1>a&lt;b</h1><p>hi</p>"));
    }

    #[test]
    fn get_head_and_other_methods() {
        let get: Page = get_or_head(&Method::GET, "text/plain", "hello");
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(get.headers()[CONTENT_TYPE], "text/plain");
        let head: Page = get_or_head(&Method::HEAD, "text/plain", "hello");
        assert_eq!(head.headers()[CONTENT_LENGTH], "5");
        let post: Page = get_or_head(&Method::POST, "text/plain", "hello");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[ALLOW], "GET, HEAD");
    }

    #[test]
    fn html_gets_frame_and_content_policies_other_types_do_not() {
        let mut page: Page = html(StatusCode::OK, "<p>x</p>");
        protect_html(page.headers_mut());
        assert_eq!(page.headers()[X_FRAME_OPTIONS], "DENY");
        let policy = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.starts_with("default-src 'self'; "), "{policy}");
        let mut upper: Page = respond(StatusCode::OK, "Text/HTML ; charset=utf-8", "x");
        protect_html(upper.headers_mut());
        assert!(upper.headers().contains_key(X_FRAME_OPTIONS));
        let mut data: Page = json(StatusCode::OK, "{}");
        protect_html(data.headers_mut());
        assert!(!data.headers().contains_key(X_FRAME_OPTIONS));
        assert!(!data.headers().contains_key(CONTENT_SECURITY_POLICY));
        // A page with its own policy keeps it.
        let mut own: Page = html(StatusCode::OK, "x");
        own.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'"),
        );
        protect_html(own.headers_mut());
        assert_eq!(own.headers()[CONTENT_SECURITY_POLICY], "default-src 'none'");
    }

    #[test]
    fn a_bad_location_is_a_server_error_not_a_redirect() {
        let ok: Page = redirect(StatusCode::SEE_OTHER, "/next");
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        assert_eq!(ok.headers()[LOCATION], "/next");
        let bad: Page = redirect(StatusCode::SEE_OTHER, "/a\nb");
        assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(bad.headers().get(LOCATION).is_none());
    }
}
