//! The small responses an example writes itself: a text, HTML or JSON body with its content
//! type, a redirect, a static page that answers GET and HEAD, HTML escaping, the
//! headers that keep a page out of other sites' frames ([`protect_html`]), and the one look
//! every showcase page shares: [`document`] (header with the way back, [`STYLE`]) and
//! [`error_page`] / [`explain`] for refusals people read.
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
//!     serve::page::document("Demo page", &format!("<p>{}</p>", serve::page::escape("<b>"))),
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

/// The style every showcase page shares: a header bar with the way back, a readable column,
/// forms, code, notices and errors. Inline in each page (no stylesheet request, no CDN: the
/// pages work offline under [`CONTENT_SECURITY_POLICY_VALUE`]).
pub const STYLE: &str = "\
:root{--accent:#176c2e;--soft:#f4f5f7;--line:#d8dbe0}\
*{box-sizing:border-box}\
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d1f23;background:#fff}\
header.site{background:var(--accent);padding:.55rem 1rem}\
header.site a{color:#fff;text-decoration:none;font-weight:600}\
header.site a:hover,header.site a:focus{text-decoration:underline}\
main{max-width:62rem;margin:1.25rem auto 3rem;padding:0 1rem}\
h1{font-size:1.65rem;margin:.25rem 0 1rem}h2{font-size:1.2rem;margin:1.75rem 0 .5rem}\
a{color:#0b5cad}\
code,pre,textarea{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
code{background:var(--soft);padding:.05rem .3rem;border-radius:3px;overflow-wrap:anywhere}\
pre{background:var(--soft);padding:.75rem;border-radius:4px;white-space:pre-wrap;overflow-wrap:anywhere;margin:.5rem 0}\
pre code{background:none;padding:0}\
form{margin:.6rem 0}\
input,select,textarea{font:inherit;padding:.4rem .55rem;border:1px solid #b7bcc4;border-radius:4px;background:#fff}\
textarea{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;width:100%}\
button{font:inherit;padding:.4rem .9rem;border:1px solid var(--accent);border-radius:4px;background:var(--accent);color:#fff;cursor:pointer}\
button.secondary{background:#fff;color:var(--accent)}\
a.button{display:inline-block;padding:.4rem .9rem;border-radius:4px;background:var(--accent);color:#fff;text-decoration:none}\
button:disabled{opacity:.5;cursor:default}\
.card{border:1px solid var(--line);border-radius:6px;padding:.9rem 1rem;margin:1rem 0}\
.card>h2:first-child{margin-top:0}\
form input:not([type]),form input[type=password],form input[type=text]{width:15rem;max-width:100%}\
.muted{color:#5b616b}\
.notice{background:#fff4d6;border-left:4px solid #c90;padding:.6rem .8rem;border-radius:0 4px 4px 0}\
.error{background:#fde8e8;border-left:4px solid #c00;padding:.6rem .8rem;border-radius:0 4px 4px 0;margin:1rem 0}\
.ok{background:#e6f4ea;border-left:4px solid var(--accent);padding:.6rem .8rem;border-radius:0 4px 4px 0}\
.status{font-size:.9rem;color:#5b616b}";

/// The page every example shows: `title` (escaped) as the title and the heading, the
/// shared [`STYLE`], a header with the way back to the showcase's landing page (`/`; the
/// example's own home when it runs on its own), then `body` (HTML, written by the caller
/// with [`escape`] for what it did not write itself).
pub fn document(title: &str, body: &str) -> String {
    document_with_head(title, "", body)
}

/// [`document`] with more for the `<head>` (`head`, HTML: a page's own `<style>`).
pub fn document_with_head(title: &str, head: &str, body: &str) -> String {
    let title = escape(title);
    format!(
        "<!doctype html><html lang=en><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=icon type=\"image/svg+xml\" href=\"/favicon.ico\">\
         <style>{STYLE}</style>{head}\
         <header class=site><a id=back href=\"/\">&larr; backend-kit showcase</a></header>\
         <main><h1>{title}</h1>{body}</main>\n"
    )
}

/// An error as a page a person can read, with the status code kept: `heading` (escaped),
/// `message` (escaped) in an `.error` box (`id=error`), and a link (`id=again`) to `back`
/// labelled `back_label`, besides the header's way back to the landing page.
pub fn error_page<B: From<Bytes>>(
    status: StatusCode,
    heading: &str,
    message: &str,
    back: &str,
    back_label: &str,
) -> Response<B> {
    // Messages written for logs start in lower case; a page's sentence does not.
    let mut chars = message.chars();
    let message: String = chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let body = format!(
        "<p class=error id=error role=alert>{}</p><p><a id=again href=\"{}\">{}</a></p>\
         <p class=status>HTTP {}</p>",
        escape(&message),
        escape(back),
        escape(back_label),
        status
    );
    html(status, document(heading, &body))
}

/// A plain-text refusal (status 400 or more, `text/plain`: what [`text`] and auth-core's
/// `to_response` write) turned into an [`error_page`] with its message, keeping the status
/// and every other header (`Set-Cookie`, `Retry-After`, `WWW-Authenticate`, `Allow`). Any
/// other response is returned as it is. For the pages a browser posts forms to: their
/// refusals are read by people.
pub async fn explain(
    response: Response<http_body_util::Full<Bytes>>,
    heading: &str,
    back: &str,
    back_label: &str,
) -> Response<http_body_util::Full<Bytes>> {
    use http_body_util::BodyExt as _;
    let is_text = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    if response.status().as_u16() < 400 || !is_text {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // `Full` has its bytes at hand: this never waits and never fails.
    let message = match body.collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(never) => match never {},
    };
    let message = if message.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned()
    } else {
        message
    };
    let page: Response<http_body_util::Full<Bytes>> =
        error_page(parts.status, heading, &message, back, back_label);
    let (page_parts, page_body) = page.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        page_parts
            .headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("text/html; charset=utf-8")),
    );
    Response::from_parts(parts, page_body)
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
        assert!(page.contains("<title>a&lt;b</title>"), "{page}");
        assert!(page.contains("<h1>a&lt;b</h1><p>hi</p>"), "{page}");
        // The shared look and the way back to the landing page, no external asset.
        assert!(page.contains(r#"<a id=back href="/">"#), "{page}");
        assert!(page.contains(STYLE));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );
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

    #[tokio::test]
    async fn a_plain_text_refusal_becomes_a_page_with_its_status_and_headers() {
        let mut refusal: Page = text(StatusCode::TOO_MANY_REQUESTS, "wait <1> minute");
        refusal
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("60"));
        let page = explain(refusal, "Login failed", "/auth/", "Back to the login form").await;
        assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(page.headers()["retry-after"], "60");
        assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let body = http_body_util::BodyExt::collect(page.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("<h1>Login failed</h1>"), "{body}");
        assert!(body.contains(">Wait &lt;1&gt; minute</p>"), "{body}");
        assert!(body.contains(r#"<a id=again href="/auth/">Back to the login form</a>"#));
        // Successes and other types pass through.
        let ok: Page = text(StatusCode::OK, "fine");
        assert_eq!(
            explain(ok, "x", "/", "y").await.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let problem: Page = json(StatusCode::UNAUTHORIZED, "{}");
        assert_eq!(
            explain(problem, "x", "/", "y").await.headers()[CONTENT_TYPE],
            "application/json"
        );
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
