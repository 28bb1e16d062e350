//! The cookie-jar demo under `/cookies/`: a visit counter in a signed cookie (readable,
//! tamper-evident), a note in a private cookie (encrypted and authenticated), and key
//! rotation that logs nobody out: a cookie read with the previous key is re-issued with the
//! current one, and one whose key has left the ring is explained, not silently dropped.
//!
//! Its two forms change state (the note; the server-wide keys), so they are protected as
//! the auth forms are (auth-core): a signed double-submit token in a `SameSite=Strict`
//! cookie and a hidden field ([`LoginCsrf`], as there is no session here), and the
//! browser's `Sec-Fetch-Site`/`Origin` ([`OriginCheck`]).
//!
//! cookie-jar has no example server of its own to mount (its examples are a raw-socket
//! server and a client), so this small page lives in the showcase.

use std::sync::RwLock;

use auth_core::{LoginCsrf, OriginCheck};
use cookie_jar::{DeltaJar, Key, KeyRing, SetCookie};
use http::header::{CACHE_CONTROL, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};

use serve::page::{self, escape, text};

use crate::app::Body;
use crate::shared::Shared;

/// The signed cookie: its value stays readable, a changed value reads as absent.
const VISITS: &str = "showcase-visits";
/// The private cookie: its value is sealed (AES-256-GCM) with the name bound in.
const NOTE: &str = "showcase-note";
/// Notes are short; a larger form is 413.
const MAX_FORM_BYTES: usize = 4 * 1024;
/// Notes longer than this are cut (a cookie holds about 4 KB).
const MAX_NOTE_CHARS: usize = 200;
/// The cookie that carries the forms' CSRF token.
const CSRF_COOKIE: &str = "__Host-cookies-csrf";
/// How many retired keys are remembered, only to say why a cookie no longer reads.
const MAX_RETIRED: usize = 16;

/// The demo's key ring (the current key plus the previous one after a rotation) and what
/// guards its forms.
#[derive(Debug)]
pub(crate) struct CookieDemo {
    ring: RwLock<Rotation>,
    csrf: LoginCsrf,
    origins: OriginCheck,
    /// With `REDIS_URL`: the key ring is the one every instance loaded from Redis, so this
    /// page does not rotate it (one instance's rotation would leave the others on old
    /// keys); `None`: keys of this process, rotated by the form.
    shared: Option<String>,
}

#[derive(Debug)]
struct Rotation {
    current: Key,
    previous: Option<Key>,
    ring: KeyRing,
    rotations: u32,
    /// Keys that have left the ring, newest last, with the rotation that retired each.
    /// They never read a cookie; they only tell "retired" apart from "forged".
    retired: Vec<(u32, Key)>,
}

/// What the page knows about the keys at one moment.
struct Keys {
    ring: KeyRing,
    rotations: u32,
    retired: Vec<(u32, Key)>,
}

impl Keys {
    /// The rotation that retired the key `read` accepts `value` under, if one did.
    fn retired_by(&self, read: impl Fn(&KeyRing) -> bool) -> Option<u32> {
        self.retired
            .iter()
            .rev()
            .find(|(_, key)| read(&KeyRing::new(key.clone())))
            .map(|(rotation, _)| *rotation)
    }
}

impl CookieDemo {
    /// The demo with fresh keys, or with `shared`'s key ring and form secret (the same on
    /// every instance); its forms accept posts from `origins` (this server's addresses)
    /// and from clients that send neither `Sec-Fetch-Site` nor `Origin` (curl) only with
    /// the token.
    pub(crate) fn new(origins: &[String], shared: Option<&Shared>) -> Result<Self, String> {
        // Without Redis, the first key; with it, a key the form never uses (it does not
        // rotate shared keys).
        let current = Key::generate();
        let (ring, secret) = match shared {
            Some(shared) => (
                KeyRing::from_config(&shared.cookie_keys)
                    .map_err(|error| format!("the cookie key ring in Redis: {error}"))?,
                shared.cookie_csrf.clone(),
            ),
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|error| format!("no random source for the cookies page: {error}"))?;
                (KeyRing::new(current.clone()), secret.to_vec())
            }
        };
        Ok(Self {
            shared: shared.map(|shared| format!("{}cookies:keys", shared.prefix)),
            ring: RwLock::new(Rotation {
                ring,
                current,
                previous: None,
                rotations: 0,
                retired: Vec::new(),
            }),
            csrf: LoginCsrf::new(secret).cookie_name(CSRF_COOKIE),
            origins: OriginCheck::new(origins.iter().cloned()).allow_missing(true),
        })
    }

    fn keys(&self) -> Keys {
        let rotation = self
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Keys {
            ring: rotation.ring.clone(),
            rotations: rotation.rotations,
            retired: rotation.retired.clone(),
        }
    }

    /// A new current key; the previous one still verifies and opens existing cookies, and
    /// the one before it is retired.
    fn rotate(&self) {
        let mut rotation = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rotations = rotation.rotations.saturating_add(1);
        let previous = std::mem::replace(&mut rotation.current, Key::generate());
        if let Some(retired) = rotation.previous.replace(previous.clone()) {
            rotation.retired.push((rotations, retired));
            if rotation.retired.len() > MAX_RETIRED {
                rotation.retired.remove(0);
            }
        }
        rotation.ring = KeyRing::new(rotation.current.clone()).with_old_key(previous);
        rotation.rotations = rotations;
    }

    /// Whether a form post came from this page: same origin by the browser's word, and the
    /// token of the page in its `csrf` field.
    fn is_from_this_page(&self, parts: &http::request::Parts, form: &[u8]) -> bool {
        let token = form_urlencoded::parse(form)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        self.origins.check(&parts.method, &parts.headers).is_ok()
            && self.csrf.verify(&parts.headers, token.as_deref()).is_ok()
    }

    /// Answers a request whose path is below `/cookies` (`path` is the part after it).
    pub(crate) async fn handle(&self, path: &str, request: Request<serve::Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        if parts.method == Method::POST && matches!(path, "/note" | "/rotate") {
            let form = match Limited::new(body, MAX_FORM_BYTES).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "form too large"),
            };
            if !self.is_from_this_page(&parts, &form) {
                tracing::warn!(path, "cookies page: form refused, not sent from this page");
                return refused();
            }
            return self.post(path, &parts.headers, &form);
        }
        match (&parts.method, path) {
            (&Method::GET | &Method::HEAD, "/") => self.page(&parts.headers),
            (_, "/") => page::method_not_allowed("GET, HEAD"),
            (_, "/note" | "/rotate") => page::method_not_allowed("POST"),
            _ => page::not_found(),
        }
    }

    /// A form post that passed the CSRF checks.
    fn post(&self, path: &str, headers: &HeaderMap, form: &[u8]) -> Response<Body> {
        match path {
            "/note" => {
                let note: String = form_urlencoded::parse(form)
                    .find(|(name, _)| name == "note")
                    .map(|(_, value)| value.chars().take(MAX_NOTE_CHARS).collect())
                    .unwrap_or_default();
                // A cookie value has no spaces, quotes, commas or semicolons: percent-encode
                // the note before sealing it.
                let encoded: String = form_urlencoded::byte_serialize(note.as_bytes()).collect();
                let mut jar = DeltaJar::from_headers(headers);
                match SetCookie::build(NOTE, encoded).finish() {
                    Ok(cookie) => jar.add_private(cookie, &self.keys().ring),
                    Err(error) => return text(StatusCode::BAD_REQUEST, &error.to_string()),
                }
                let mut response = page::redirect(StatusCode::SEE_OTHER, "/cookies/");
                jar.write_to(response.headers_mut());
                response
            }
            _ => match &self.shared {
                Some(key) => page::error_page(
                    StatusCode::CONFLICT,
                    "The keys are shared: not rotated here",
                    &format!(
                        "Every instance reads and writes cookies with the key ring in Redis \
                         (key {key}). Rotating it on one instance would leave the others on \
                         the old keys: put a new key in front of the ring there, then restart \
                         the instances."
                    ),
                    "/cookies/",
                    "Back to the cookies page",
                ),
                None => {
                    self.rotate();
                    page::redirect(StatusCode::SEE_OTHER, "/cookies/")
                }
            },
        }
    }

    fn page(&self, headers: &HeaderMap) -> Response<Body> {
        let keys = self.keys();
        let (ring, rotations) = (&keys.ring, keys.rotations);
        let (csrf, csrf_cookie) = match self.csrf.token(headers) {
            Ok(token) => token,
            Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        };
        let mut jar = DeltaJar::from_headers(headers);
        let raw_visits = jar.get(VISITS).map(str::to_owned);
        let verified = jar.get_signed(VISITS, ring);
        let tampered = raw_visits.is_some() && verified.is_none();
        let visits_retired_by = raw_visits
            .as_deref()
            .filter(|_| tampered)
            .and_then(|value| keys.retired_by(|ring| ring.verify(VISITS, value).is_some()));
        let visits = verified
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let reissued = raw_visits
            .as_deref()
            .is_some_and(|value| !tampered && ring.needs_reissue(VISITS, value));
        let raw_note = jar.get(NOTE).map(str::to_owned);
        let opened_note = jar.get_private(NOTE, ring);
        let note = opened_note.as_deref().map(|encoded| {
            form_urlencoded::parse(format!("n={encoded}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .next()
                .unwrap_or_default()
        });
        let note_reissued = raw_note
            .as_deref()
            .is_some_and(|value| note.is_some() && ring.needs_reissue(NOTE, value));
        if note_reissued && let Some(opened) = opened_note {
            match SetCookie::build(NOTE, opened).finish() {
                Ok(cookie) => jar.add_private(cookie, ring),
                Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
            }
        }
        let note_retired_by = raw_note
            .as_deref()
            .filter(|_| note.is_none())
            .map(|value| keys.retired_by(|ring| ring.open(NOTE, value).is_some()));
        match SetCookie::build(VISITS, visits.to_string()).finish() {
            Ok(cookie) => jar.add_signed(cookie, ring),
            Err(error) => return text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
        }
        let mut remarks = Vec::new();
        match (tampered, visits_retired_by) {
            (true, Some(rotation)) => remarks.push(format!("Your visits cookie was signed with a key that rotation {rotation} retired (the ring keeps the current key and the one before it): it no longer verifies, so the count restarted.")),
            (true, None) => remarks.push("The visits cookie you sent did not verify (changed, or signed with a key this server never had): it was ignored and the count restarted.".to_owned()),
            (false, _) => {}
        }
        if reissued {
            remarks.push("Your visits cookie was signed with the previous key: it was accepted and re-signed with the current one.".to_owned());
        }
        if note_reissued {
            remarks.push("Your note was sealed with the previous key: it was opened and sealed again with the current one.".to_owned());
        }
        match note_retired_by {
            Some(Some(rotation)) => remarks.push(format!("Your note can no longer be read: the key that sealed it was retired by rotation {rotation} (the ring keeps the current key and the one before it, and a private cookie is re-sealed only when you visit this page). Keep a new note.")),
            Some(None) => remarks.push("Your note cookie could not be opened: it was changed, or sealed with a key this server never had (keys are made anew when the server starts). Keep a new note.".to_owned()),
            None => {}
        }
        let remarks: String = remarks
            .iter()
            .map(|remark| format!("<p class=remark>{}</p>", escape(remark)))
            .collect();
        let csrf = escape(&csrf);
        let body = format!(
            r#"<p>Visit <b id=visits>{visits}</b>, counted in the <b>signed</b> cookie <code>{VISITS}</code>: its value is readable, and a changed value is ignored.</p>
{remarks}<p>The cookie you sent: <code>{raw_visits}</code></p>
<p>Your note, kept in the <b>private</b> cookie <code>{NOTE}</code>: <b id=note>{note}</b><br>
What the browser stores: <code>{raw_note}</code> (sealed with AES-256-GCM, the cookie name bound in).</p>
<form method=post action="/cookies/note"><input type=hidden name="csrf" value="{csrf}"><input name=note maxlength=200 placeholder="a note"> <button>Keep the note</button></form>
<form method=post action="/cookies/rotate"><input type=hidden name="csrf" value="{csrf}"><button>Rotate the keys</button> (rotated {rotations} time{plural}; the previous key still reads old cookies, older keys are retired)</form>
"#,
            plural = if rotations == 1 { "" } else { "s" },
            raw_visits = escape(raw_visits.as_deref().unwrap_or("(none)")),
            note = escape(match (&note, &raw_note) {
                (Some(note), _) => note.as_str(),
                (None, Some(_)) => "(unreadable, see above)",
                (None, None) => "(none)",
            }),
            raw_note = escape(raw_note.as_deref().unwrap_or("(none)")),
        );
        let body = page::document_with_head(
            "Signed and private cookies",
            "<style>.remark{background:#fff4d6;border-left:4px solid #c90;padding:.5rem .75rem}</style>",
            &body,
        );
        let mut response = page::html(StatusCode::OK, body);
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(cookie) = csrf_cookie {
            response.headers_mut().append(SET_COOKIE, cookie);
        }
        jar.write_to(response.headers_mut());
        response
    }
}

/// The answer to a form post that did not come from this page: 403, in words, with the
/// way back to a fresh form.
fn refused() -> Response<Body> {
    page::error_page(
        StatusCode::FORBIDDEN,
        "Refused: this form did not come from the cookies page",
        "Nothing was changed. The form's security token was missing or did not match, or \
         another site sent the form. This protects the server-wide keys from cross-site \
         requests (CSRF).",
        "/cookies/",
        "Open the cookies page again",
    )
}
