//! The OpenID Connect part of the provider: who the users are (their claims), when they
//! logged in (`auth_time`), and what `prompt` and `max_age` ask of the authorization page.
//! The endpoints themselves (ID tokens, `/userinfo`, `/.well-known/openid-configuration`)
//! are auth-core's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::oauth::server::{AuthorizationRequest, EndUser};
use auth_core::oauth::{ErrorCode, OAuthError};
use auth_core::{Algorithm, Key, KeySet, Session};
use http::Response;

use super::{App, Body, convert_empty, login_page};

/// Where the session keeps when its user logged in, seconds since the Unix epoch.
const AUTH_TIME_KEY: &str = "auth_time";

/// The ID token keys: RS256, the algorithm every OpenID Connect client supports
/// (Discovery 1.0 section 3), apart from the access-token key.
pub(super) fn id_token_keys() -> Result<KeySet, String> {
    let mut keys = KeySet::new();
    keys.rotate(Key::generate("oauth-provider-id-1", Algorithm::RS256).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    Ok(keys)
}

/// Records the login time for `auth_time` and `max_age`.
pub(super) fn remember_login(session: &mut Session, now: SystemTime) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Without it `max_age` asks for a new login, which is the safe side.
    let _ = session.insert(AUTH_TIME_KEY, &secs);
}

fn auth_time(session: &Session) -> Option<SystemTime> {
    session
        .get::<u64>(AUTH_TIME_KEY)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

/// The user `subject` as the ID token and UserInfo describe them. The demo has one user; a
/// real provider reads its user table.
pub(super) fn end_user(session: &Session, subject: &str) -> EndUser {
    let mut user = EndUser::new(subject);
    if let Some(time) = auth_time(session) {
        user = user.authenticated_at(time);
    }
    if subject == "alice" {
        user = user
            .with_claim("name", "Alice Liddell")
            .with_claim("given_name", "Alice")
            .with_claim("family_name", "Liddell")
            .with_claim("preferred_username", "alice")
            .with_claim("email", "alice@example.org")
            .with_claim("email_verified", true);
    }
    user
}

/// What `prompt` and `max_age` (OpenID Connect Core 1.0 section 3.1.2.1) decide before the
/// usual pages, if anything: `prompt=none` never shows a page (`login_required`, or
/// `consent_required` since this provider asks every time); `prompt=login` or a too old
/// login shows the login form again.
pub(super) fn prompt(
    app: &App,
    session: &Session,
    request: &AuthorizationRequest,
    query: &str,
    csrf: &str,
) -> Option<Response<Body>> {
    let now = SystemTime::now();
    let logged_in = session.user().is_some();
    let needs_login = !logged_in || request.needs_login(auth_time(session), now);
    if request.has_prompt("none") {
        let error = if needs_login {
            OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in")
        } else {
            OAuthError::new(
                ErrorCode::ConsentRequired,
                "this provider asks for consent every time",
            )
        };
        return Some(convert_empty(app.oauth.refuse(request, &error)));
    }
    if logged_in && needs_login {
        return Some(login_page(
            &app.base,
            "Log in again to continue",
            csrf,
            Some(query),
        ));
    }
    None
}
