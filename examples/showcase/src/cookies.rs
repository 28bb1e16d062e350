//! The cookie-jar demo under `/cookies/`: a visit counter in a signed cookie (readable,
//! tamper-evident), a note in a private cookie (encrypted and authenticated), and key
//! rotation that logs nobody out.
//!
//! cookie-jar has no example server of its own to mount (its examples are a raw-socket
//! server and a client), so this small page lives in the showcase.

use std::sync::RwLock;

use cookie_jar::{DeltaJar, Key, KeyRing, SetCookie};
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use serve::page::{self, escape, text};

use crate::app::Body;

/// The signed cookie: its value stays readable, a changed value reads as absent.
const VISITS: &str = "showcase-visits";
/// The private cookie: its value is sealed (AES-256-GCM) with the name bound in.
const NOTE: &str = "showcase-note";
/// Notes are short; a larger form is 413.
const MAX_FORM_BYTES: usize = 4 * 1024;
/// Notes longer than this are cut (a cookie holds about 4 KB).
const MAX_NOTE_CHARS: usize = 200;

/// The demo's key ring: the current key plus the previous one after a rotation.
#[derive(Debug)]
pub(crate) struct CookieDemo {
    ring: RwLock<Rotation>,
}

#[derive(Debug)]
struct Rotation {
    current: Key,
    ring: KeyRing,
    rotations: u32,
}

impl CookieDemo {
    pub(crate) fn new() -> Self {
        let current = Key::generate();
        Self {
            ring: RwLock::new(Rotation {
                ring: KeyRing::new(current.clone()),
                current,
                rotations: 0,
            }),
        }
    }

    fn ring(&self) -> (KeyRing, u32) {
        let rotation = self
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (rotation.ring.clone(), rotation.rotations)
    }

    /// A new current key; the previous one still verifies and opens existing cookies.
    fn rotate(&self) {
        let mut rotation = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = std::mem::replace(&mut rotation.current, Key::generate());
        rotation.ring = KeyRing::new(rotation.current.clone()).with_old_key(previous);
        rotation.rotations = rotation.rotations.saturating_add(1);
    }

    /// Answers a request whose path is below `/cookies` (`path` is the part after it).
    pub(crate) async fn handle(&self, path: &str, request: Request<serve::Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        match (&parts.method, path) {
            (&Method::GET | &Method::HEAD, "/") => self.page(&parts.headers),
            (&Method::POST, "/note") => {
                let form = match Limited::new(body, MAX_FORM_BYTES).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
                };
                let note: String = form_urlencoded::parse(&form)
                    .find(|(name, _)| name == "note")
                    .map(|(_, value)| value.chars().take(MAX_NOTE_CHARS).collect())
                    .unwrap_or_default();
                // A cookie value has no spaces, quotes, commas or semicolons: percent-encode
                // the note before sealing it.
                let encoded: String = form_urlencoded::byte_serialize(note.as_bytes()).collect();
                let mut jar = DeltaJar::from_headers(&parts.headers);
                match SetCookie::build(NOTE, encoded).finish() {
                    Ok(cookie) => jar.add_private(cookie, &self.ring().0),
                    Err(error) => return text(StatusCode::BAD_REQUEST, &error.to_string()),
                }
                let mut response = page::redirect(StatusCode::SEE_OTHER, "/cookies/");
                jar.write_to(response.headers_mut());
                response
            }
            (&Method::POST, "/rotate") => {
                self.rotate();
                page::redirect(StatusCode::SEE_OTHER, "/cookies/")
            }
            (_, "/") => page::method_not_allowed("GET, HEAD"),
            (_, "/note" | "/rotate") => page::method_not_allowed("POST"),
            _ => page::not_found(),
        }
    }

    fn page(&self, headers: &http::HeaderMap) -> Response<Body> {
        let (ring, rotations) = self.ring();
        let mut jar = DeltaJar::from_headers(headers);
        let raw_visits = jar.get(VISITS).map(str::to_owned);
        let verified = jar.get_signed(VISITS, &ring);
        let tampered = raw_visits.is_some() && verified.is_none();
        let visits = verified
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let reissued = raw_visits
            .as_deref()
            .is_some_and(|value| !tampered && ring.needs_reissue(VISITS, value));
        let note = jar.get_private(NOTE, &ring).map(|encoded| {
            form_urlencoded::parse(format!("n={encoded}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .next()
                .unwrap_or_default()
        });
        let raw_note = jar.get(NOTE).map(str::to_owned);
        match SetCookie::build(VISITS, visits.to_string()).finish() {
            Ok(cookie) => jar.add_signed(cookie, &ring),
            Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        }
        let mut remarks = Vec::new();
        if tampered {
            remarks.push("The visits cookie you sent did not verify (changed or signed with an unknown key): it was ignored and the count restarted.");
        }
        if reissued {
            remarks.push("Your visits cookie was signed with the previous key: it was accepted and re-signed with the current one.");
        }
        let remarks: String = remarks
            .iter()
            .map(|remark| format!("<p class=remark>{remark}</p>"))
            .collect();
        let body = format!(
            r#"<!doctype html><meta charset=utf-8><title>cookie-jar</title>
<h1>cookie-jar: signed and private cookies</h1>
<p><a href="/">back to the showcase</a></p>
<p>Visit <b id=visits>{visits}</b>, counted in the <b>signed</b> cookie <code>{VISITS}</code>: its value is readable, and a changed value is ignored.</p>
{remarks}<p>The cookie you sent: <code>{raw_visits}</code></p>
<p>Your note, kept in the <b>private</b> cookie <code>{NOTE}</code>: <b id=note>{note}</b><br>
What the browser stores: <code>{raw_note}</code> (sealed with AES-256-GCM, the cookie name bound in).</p>
<form method=post action="/cookies/note"><input name=note maxlength=200 placeholder="a note"> <button>Keep the note</button></form>
<form method=post action="/cookies/rotate"><button>Rotate the keys</button> (rotated {rotations} times; the previous key still reads old cookies)</form>
"#,
            raw_visits = escape(raw_visits.as_deref().unwrap_or("(none)")),
            note = escape(note.as_deref().unwrap_or("(none)")),
            raw_note = escape(raw_note.as_deref().unwrap_or("(none)")),
        );
        let mut response = page::html(StatusCode::OK, body);
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        jar.write_to(response.headers_mut());
        response
    }
}
