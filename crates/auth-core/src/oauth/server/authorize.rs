//! The authorization endpoint (RFC 6749 section 4.1.1 with PKCE and the RFC 9700 rules):
//! validating the request, then the redirect back to the client after the user's consent
//! or refusal, with `state` and `iss` (RFC 9207).

use std::time::SystemTime;

use http::Response;
use serde::{Deserialize, Serialize};

use super::responses::see_other;
use super::{
    AuthorizationServer, Client, ClientRegistry, CodeRecord, EndUser, Grant, GrantStore, GrantType,
    OpenIdGrant, hash, unix,
};
use crate::oauth::{
    ErrorCode, OAuthError, Params, append_query, challenge_is_valid, claims_for_scope, parse_scope,
    redirect_uri_matches,
};
use crate::random::random_token;
use crate::{RefreshStore, Result};

/// A validated authorization request, waiting for the user's consent. Keep it between the
/// consent page and its answer (it is serializable; store it server-side, e.g. in the
/// session, never in a hidden form field the browser could alter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client id.
    pub client_id: String,
    /// The redirect URI, as presented (it matched a registered one).
    pub redirect_uri: String,
    /// The requested scope, every token allowed for the client.
    pub scope: Vec<String>,
    /// The client's `state`, passed back unchanged.
    pub state: Option<String>,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
    /// OpenID Connect: the client's `nonce`, echoed in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// OpenID Connect: the `prompt` values (`none`, `login`, `consent`, `select_account`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<String>,
    /// OpenID Connect: `max_age`, the longest time since the user last authenticated, in
    /// seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

impl AuthorizationRequest {
    /// True for an OpenID Connect request: the scope has `openid`.
    pub fn is_openid(&self) -> bool {
        self.scope.iter().any(|scope| scope == "openid")
    }

    /// True when `prompt` has `value`.
    pub fn has_prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|prompt| prompt == value)
    }

    /// Must the user log in (again) before this request is answered? True for
    /// `prompt=login`, and when `max_age` is given and the last authentication
    /// (`auth_time`, `None` when unknown or not logged in) is older (OpenID Connect Core 1.0
    /// section 3.1.2.1). With `prompt=none` the answer is then `login_required` instead of
    /// a login page.
    pub fn needs_login(&self, auth_time: Option<SystemTime>, now: SystemTime) -> bool {
        if self.has_prompt("login") {
            return true;
        }
        match (self.max_age, auth_time) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(max_age), Some(auth_time)) => unix(auth_time).saturating_add(max_age) < unix(now),
        }
    }
}

/// Why an authorization request was refused: one of exactly two answers (RFC 6749 section
/// 4.1.2.1), so the enum is exhaustive.
#[derive(Debug)]
pub enum AuthorizationRejection {
    /// The client or redirect URI cannot be trusted: tell the user, do not redirect
    /// (RFC 6749 section 4.1.2.1).
    ShowToUser(OAuthError),
    /// A ready `303 See Other` back to the client with `error`, `state` and `iss`.
    Redirect {
        /// The error sent.
        error: OAuthError,
        /// The response to send.
        response: Response<()>,
    },
}

impl AuthorizationRejection {
    /// The error either way.
    pub fn error(&self) -> &OAuthError {
        match self {
            AuthorizationRejection::ShowToUser(error)
            | AuthorizationRejection::Redirect { error, .. } => error,
        }
    }
}

impl<C: ClientRegistry, G: GrantStore, R: RefreshStore> AuthorizationServer<C, G, R> {
    /// Validates an authorization request (the query string of `GET /authorize`, without the
    /// `?`), RFC 6749 section 4.1.1 with RFC 7636 and RFC 9700 rules.
    pub async fn authorization_request(
        &self,
        query: &str,
    ) -> Result<AuthorizationRequest, AuthorizationRejection> {
        use AuthorizationRejection::ShowToUser;
        let params = Params::parse(query.as_bytes()).map_err(ShowToUser)?;
        let client_id = params.require("client_id").map_err(ShowToUser)?;
        let client = self
            .clients
            .client(client_id)
            .await
            .map_err(|error| ShowToUser(OAuthError::store(&error)))?
            .ok_or_else(|| {
                ShowToUser(OAuthError::new(ErrorCode::InvalidClient, "unknown client"))
            })?;
        let redirect_uri = params.require("redirect_uri").map_err(ShowToUser)?;
        if !client
            .redirect_uris
            .iter()
            .any(|registered| redirect_uri_matches(registered, redirect_uri))
        {
            return Err(ShowToUser(OAuthError::request(
                "redirect_uri is not registered for this client",
            )));
        }
        // From here on the redirect URI is trusted: errors go back to the client.
        let state = params.get("state");
        let redirect = |error: OAuthError| AuthorizationRejection::Redirect {
            response: self.error_redirect(redirect_uri, state, &error),
            error,
        };
        self.check_authorization_params(&client, &params)
            .map_err(redirect)?;
        let scope = parse_scope(params.get("scope").unwrap_or("")).map_err(redirect)?;
        // With OpenID Connect on, `openid` is every code-flow client's to ask for.
        let registered: Vec<String> = scope
            .iter()
            .filter(|scope| !(self.openid.is_some() && *scope == "openid"))
            .cloned()
            .collect();
        client.check_scope(&registered).map_err(redirect)?;
        let (prompt, max_age) = openid_params(&params).map_err(redirect)?;
        let code_challenge = params.get("code_challenge").unwrap_or("");
        Ok(AuthorizationRequest {
            client_id: client.id,
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: state.map(str::to_owned),
            code_challenge: code_challenge.to_owned(),
            nonce: params.get("nonce").map(str::to_owned),
            prompt,
            max_age,
        })
    }

    fn check_authorization_params(
        &self,
        client: &Client,
        params: &Params,
    ) -> Result<(), OAuthError> {
        if params.get("request").is_some() {
            return Err(OAuthError::new(
                ErrorCode::RequestNotSupported,
                "request objects are not supported",
            ));
        }
        if params.get("request_uri").is_some() {
            return Err(OAuthError::new(
                ErrorCode::RequestUriNotSupported,
                "request_uri is not supported",
            ));
        }
        match params.get("response_type") {
            None => return Err(OAuthError::request("parameter response_type is missing")),
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
        }
        if let Some(mode) = params.get("response_mode")
            && mode != "query"
        {
            return Err(OAuthError::request("only response_mode=query is supported"));
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client may not use the authorization code grant",
            ));
        }
        let Some(challenge) = params.get("code_challenge") else {
            return Err(OAuthError::request(
                "code_challenge is required (PKCE, RFC 9700 section 2.1.1)",
            ));
        };
        match params.get("code_challenge_method") {
            Some("S256") => {}
            // RFC 7636 section 4.3 defaults to plain, which this server refuses.
            Some("plain") | None => {
                return Err(OAuthError::request(
                    "code_challenge_method must be S256; plain is refused",
                ));
            }
            Some(_) => {
                return Err(OAuthError::request("code_challenge_method must be S256"));
            }
        }
        if !challenge_is_valid(challenge) {
            return Err(OAuthError::request(
                "code_challenge is not an S256 challenge (43 base64url characters)",
            ));
        }
        Ok(())
    }

    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &OAuthError,
    ) -> Response<()> {
        let description = crate::oauth::description_text(&error.description);
        let mut pairs = vec![
            ("error", error.code.as_str()),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        see_other(&append_query(redirect_uri, &pairs))
    }

    /// The resource owner `subject` approved `request`: a new single-use code, and the
    /// `303` that carries it, `state` and `iss` back to the client (RFC 6749 section 4.1.2,
    /// RFC 9207). For OpenID Connect requests use [`AuthorizationServer::approve_user`],
    /// which also knows when the user authenticated and their claims.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        subject: &str,
        now: SystemTime,
    ) -> Result<Response<()>> {
        self.approve_user(request, &EndUser::new(subject), now)
            .await
    }

    /// The user approved `request`, as [`AuthorizationServer::approve`]. For an OpenID
    /// Connect request the code also carries the `nonce`, the user's `auth_time` and the
    /// claims the granted scope releases, for the ID token and the UserInfo endpoint.
    pub async fn approve_user(
        &self,
        request: &AuthorizationRequest,
        user: &EndUser,
        now: SystemTime,
    ) -> Result<Response<()>> {
        let subject = user.subject.as_str();
        let openid = (self.openid.is_some() && request.is_openid()).then(|| OpenIdGrant {
            nonce: request.nonce.clone(),
            auth_time: user.auth_time,
            claims: claims_for_scope(&user.claims, &request.scope),
        });
        let code = random_token()?;
        let grant_id = random_token()?;
        let expires_at = unix(now + self.config.code_ttl);
        // The grant exists from the start, so that a replay racing the first exchange
        // revokes it for good (the exchange only extends a grant that still exists).
        self.grants
            .insert_grant(Grant {
                id: grant_id.clone(),
                client_id: request.client_id.clone(),
                subject: Some(subject.to_owned()),
                scope: request.scope.clone(),
                expires_at,
                openid: openid.clone().map(|openid| OpenIdGrant {
                    nonce: None,
                    ..openid
                }),
            })
            .await?;
        self.grants
            .insert_code(
                hash(&code),
                CodeRecord {
                    client_id: request.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    code_challenge: request.code_challenge.clone(),
                    scope: request.scope.clone(),
                    subject: subject.to_owned(),
                    grant_id,
                    expires_at,
                    used: false,
                    openid,
                },
            )
            .await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        Ok(see_other(&append_query(&request.redirect_uri, &pairs)))
    }

    /// `request` cannot be answered as asked: `error` back to the client with `state` and
    /// `iss`. For `prompt=none` without a logged-in user, [`ErrorCode::LoginRequired`];
    /// without remembered consent, [`ErrorCode::ConsentRequired`].
    pub fn refuse(&self, request: &AuthorizationRequest, error: &OAuthError) -> Response<()> {
        self.error_redirect(&request.redirect_uri, request.state.as_deref(), error)
    }

    /// The resource owner refused: `access_denied` back to the client.
    pub fn deny(&self, request: &AuthorizationRequest) -> Response<()> {
        self.error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            &OAuthError::new(
                ErrorCode::AccessDenied,
                "the resource owner denied the request",
            ),
        )
    }
}

/// `prompt` and `max_age` (OpenID Connect Core 1.0 section 3.1.2.1): `none` goes alone;
/// unknown prompt values are ignored; `max_age` is a non-negative integer.
fn openid_params(params: &Params) -> Result<(Vec<String>, Option<u64>), OAuthError> {
    let mut prompt: Vec<String> = Vec::new();
    for value in params.get("prompt").unwrap_or("").split(' ') {
        if matches!(value, "none" | "login" | "consent" | "select_account")
            && !prompt.iter().any(|seen| seen == value)
        {
            prompt.push(value.to_owned());
        }
    }
    if prompt.len() > 1 && prompt.iter().any(|value| value == "none") {
        return Err(OAuthError::request(
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| OAuthError::request("max_age must be a number of seconds"))?,
        ),
    };
    Ok((prompt, max_age))
}
