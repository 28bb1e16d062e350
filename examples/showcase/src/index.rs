//! The index pages of the mounts that have none of their own (issue 22, item 14): `/api/`,
//! a reading of the REST API's OpenAPI document, and `/proxy/`, what the proxy mount does;
//! and the favicon every showcase page links to.

use std::fmt::Write as _;

use serde_json::Value;
use serve::page::escape;

/// The showcase's icon: a small SVG (served at `/favicon.ico` as `image/svg+xml`, and
/// linked from the pages with that type).
pub(crate) const FAVICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#176c2e"/><text x="16" y="22" font-family="sans-serif" font-size="16" font-weight="bold" fill="#fff" text-anchor="middle">bk</text></svg>"##;

/// What the index pages add to the shared look ([`serve::page::STYLE`]): tables of
/// operations.
const HEAD: &str = "<style>table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:.4rem;border-bottom:1px solid #ddd;vertical-align:top}\
.method{font-weight:bold;font-family:monospace}</style>";

/// An index page: `title` (escaped) in the shell every showcase page shares (the way back
/// to the landing page, the icon), then `body` (HTML).
fn page(title: &str, body: &str) -> String {
    serve::page::document_with_head(title, HEAD, body)
}

/// `/proxy/`: what the proxy mount does, with links to its demo routes and metrics.
pub(crate) fn proxy_page() -> String {
    page(
        "Reverse proxy at /proxy/",
        "<p>Everything below <code>/proxy/</code> goes through proxy-core's \
             reverse proxy (the reverse-proxy example), whose pool is this same server: two \
             members (its address and, on loopback, <code>localhost</code>), round-robin, \
             health-checked at <code>/healthz</code>. Responses pass through its RFC 9111 \
             cache, are compressed (br, zstd, gzip) above 256 bytes, and carry \
             <code>Via</code>; the upstream sees <code>Forwarded</code>.</p>\
             <table><thead><tr><th>route</th><th>what it shows</th></tr></thead><tbody>\
             <tr><td><a href=\"/proxy/origin/cached\"><code>/proxy/origin/cached</code></a></td>\
             <td>A page the origin lets caches keep for 60 s: the second fetch answers \
             <code>X-Cache: HIT</code> with an <code>Age</code> and the same number (a browser \
             reload revalidates; the landing page's button fetches it twice without \
             that).</td></tr>\
             <tr><td><a href=\"/proxy/origin/headers\"><code>/proxy/origin/headers</code></a></td>\
             <td>The request as the upstream received it: <code>Forwarded</code>, \
             <code>Via</code>.</td></tr>\
             <tr><td><a href=\"/proxy/api/users\"><code>/proxy/api/users</code></a></td>\
             <td>The REST API through the proxy and its cache.</td></tr>\
             <tr><td><code>/proxy/origin/limited</code></td><td>5 requests a minute per \
             client, then 429 with <code>RateLimit-*</code> and <code>Retry-After</code> (not \
             linked, so that following the links does not spend them).</td></tr>\
             <tr><td><a href=\"/proxy/metrics\"><code>/proxy/metrics</code></a></td>\
             <td>Prometheus metrics: requests by status class, latency histogram, upstream \
             health, cache bytes.</td></tr>\
             </tbody></table>",
    )
}

/// `/api/`: the operations of the OpenAPI document `openapi` (JSON), one row each with its
/// method, path (a link when it is a GET without parameters), summary and status codes.
/// A document that cannot be read gives a page that says so.
pub(crate) fn api_page(openapi: &[u8]) -> String {
    let mut body = String::new();
    let document: Value = match serde_json::from_slice(openapi) {
        Ok(document) => document,
        Err(error) => {
            let _ = write!(
                body,
                "<p>The OpenAPI document could not be read: {}</p>",
                escape(&error.to_string())
            );
            return page("REST API", &body);
        }
    };
    let title = text(&document, "/info/title").unwrap_or("REST API");
    let server = text(&document, "/servers/0/url").unwrap_or("");
    let _ = write!(
        body,
        "<p>{}</p><p>Version {}; the machine-readable document: \
         <a href=\"{server_attr}/openapi.json\"><code>{server_text}/openapi.json</code></a> \
         (OpenAPI {}). Hover a status code for its meaning.</p>",
        escape(text(&document, "/info/description").unwrap_or("")),
        escape(text(&document, "/info/version").unwrap_or("?")),
        escape(text(&document, "/openapi").unwrap_or("?")),
        server_attr = escape(server),
        server_text = escape(server),
    );
    body.push_str(
        "<table><thead><tr><th>method</th><th>path</th><th>summary</th><th>status codes</th>\
         </tr></thead><tbody>",
    );
    let empty = serde_json::Map::new();
    let paths = document
        .get("paths")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (path, operations) in paths {
        let full = format!("{server}{path}");
        for (method, operation) in operations.as_object().unwrap_or(&empty) {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                continue;
            };
            let codes: Vec<String> = responses
                .iter()
                .map(|(code, response)| {
                    let description = text(response, "/description").unwrap_or("");
                    format!(
                        "<span title=\"{}\">{}</span>",
                        escape(description),
                        escape(code)
                    )
                })
                .collect();
            let path_cell = if method == "get" && !path.contains('{') {
                format!("<a href=\"{0}\"><code>{0}</code></a>", escape(&full))
            } else {
                format!("<code>{}</code>", escape(&full))
            };
            let _ = write!(
                body,
                "<tr class=operation><td class=method>{}</td><td>{path_cell}</td><td>{}</td>\
                 <td>{}</td></tr>",
                escape(&method.to_ascii_uppercase()),
                escape(text(operation, "/summary").unwrap_or("")),
                codes.join(" "),
            );
        }
    }
    body.push_str("</tbody></table>");
    page(title, &body)
}

/// The string at `pointer` (RFC 6901) in `value`, if there is one.
fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}
