//! OpenID Connect end to end in one process: our provider's ID tokens, UserInfo and
//! discovery, checked by our client; then every way an ID token or a UserInfo answer can be
//! wrong, each refused with its own error.

#![cfg(feature = "oauth")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::oauth::client::{
    OAuthClient, PendingAuthorization, ServerMetadata, TokenResponse, parse_token_response,
    parse_userinfo_response,
};
use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationServer, Client, EndUser, GrantType, MemoryClientRegistry,
    MemoryGrantStore, ServerConfig,
};
use auth_core::oauth::{ErrorCode, IdTokenClaims, OAuthError, token_hash};
use auth_core::{
    Algorithm, Audience, Error, JwtIssuer, Key, KeySet, MemoryRefreshStore, RefreshTokens,
};
use http::{Request, StatusCode, request::Parts};

const ISSUER: &str = "https://id.example";
const REDIRECT: &str = "https://app.example/cb";

type Server = AuthorizationServer<MemoryClientRegistry, MemoryGrantStore, MemoryRefreshStore>;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn keys(kid: &str, alg: Algorithm) -> KeySet {
    let mut keys = KeySet::new();
    keys.rotate(Key::generate(kid, alg).unwrap()).unwrap();
    keys
}

fn server_with(id_keys: KeySet, access: AccessTokenFormat) -> Server {
    let clients = MemoryClientRegistry::new();
    clients.register(
        Client::public("spa", [REDIRECT])
            .unwrap()
            .with_scopes(["profile", "email"])
            .with_grants([GrantType::AuthorizationCode, GrantType::RefreshToken]),
    );
    AuthorizationServer::new(
        ServerConfig::new(ISSUER)
            .unwrap()
            .with_scopes_supported(["openid", "profile", "email"]),
        clients,
        MemoryGrantStore::new(),
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(86_400)),
        access,
    )
    .with_openid(id_keys)
}

fn server() -> Server {
    server_with(keys("id-1", Algorithm::ES256), AccessTokenFormat::Opaque)
}

fn client_of(server: &Server, client_id: &str) -> OAuthClient {
    let document = server.openid_configuration().unwrap().to_string();
    let metadata = ServerMetadata::parse(document.as_bytes(), ISSUER).unwrap();
    assert!(metadata.is_openid_provider());
    OAuthClient::new(metadata, client_id, REDIRECT)
}

fn provider_keys(server: &Server) -> KeySet {
    let (keys, skipped) = KeySet::from_jwks(server.jwks().to_string().as_bytes()).unwrap();
    assert_eq!(skipped, 0);
    keys
}

fn post() -> Parts {
    Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn alice() -> EndUser {
    EndUser::new("alice")
        .authenticated_at(now() - Duration::from_secs(30))
        .with_claim("name", "Alice Liddell")
        .with_claim("email", "alice@example.org")
        .with_claim("email_verified", true)
        .with_claim("role", "never released")
}

/// The whole flow through our client's requests; returns the pending authorization and the
/// token response.
async fn log_in(
    server: &Server,
    client: &OAuthClient,
    scope: &[&str],
) -> (PendingAuthorization, TokenResponse) {
    let (url, pending) = client.authorization_url(scope).unwrap();
    let query = url.split_once('?').unwrap().1;
    let request = server.authorization_request(query).await.unwrap();
    assert_eq!(request.nonce.as_deref(), pending.nonce());
    let redirect = server
        .approve_user(&request, &alice(), now())
        .await
        .unwrap();
    let location = redirect.headers()["location"].to_str().unwrap();
    let code = client
        .callback(&pending, location.split_once('?').unwrap().1)
        .unwrap();
    let token_request = client.token_request(&code, &pending).unwrap();
    let response = server.token(&post(), token_request.body(), now()).await;
    let tokens = parse_token_response(response.status(), response.body()).unwrap();
    (pending, tokens)
}

#[tokio::test]
async fn id_token_userinfo_and_refresh() {
    let server = server();
    let client = client_of(&server, "spa");
    let keys = provider_keys(&server);
    let (pending, tokens) = log_in(&server, &client, &["openid", "profile"]).await;
    let nonce = pending.nonce().unwrap().to_owned();
    assert_eq!(nonce.len(), 43);

    let claims = client.id_token(&tokens, &pending, &keys, now()).unwrap();
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.aud, Audience::One("spa".into()));
    assert_eq!(claims.nonce.as_deref(), Some(nonce.as_str()));
    assert_eq!(claims.iat, 1_800_000_000);
    assert_eq!(claims.exp, 1_800_000_600);
    assert_eq!(claims.auth_time, Some(1_799_999_970));
    assert_eq!(
        claims.at_hash.as_deref(),
        Some(token_hash(&tokens.access_token, Algorithm::ES256).as_str())
    );
    // Only what `profile` releases: no email, no custom claim.
    assert_eq!(claims.claim("name"), Some("Alice Liddell"));
    assert_eq!(claims.claim("email"), None);
    assert!(!claims.extra.contains_key("role"));

    // UserInfo: the same subject and the same scope-limited claims.
    let request = client.userinfo_request(&tokens.access_token).unwrap();
    assert_eq!(request.uri(), "https://id.example/userinfo");
    let (parts, ()) = Request::get("/userinfo")
        .header("authorization", request.headers()["authorization"].clone())
        .body(())
        .unwrap()
        .into_parts();
    let response = server.userinfo(&parts, b"", now()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let info = parse_userinfo_response(
        response.status(),
        response.headers(),
        response.body(),
        &claims.sub,
    )
    .unwrap();
    assert_eq!(info.sub, "alice");
    assert_eq!(info.claim("name"), Some("Alice Liddell"));
    assert_eq!(info.claims.len(), 2);
    // Another user's answer is refused.
    assert!(matches!(
        parse_userinfo_response(StatusCode::OK, response.headers(), response.body(), "bob"),
        Err(Error::OpenIdSubjectMismatch)
    ));
    // POST with the token in the form (RFC 6750 section 2.2).
    let body = format!("access_token={}", tokens.access_token);
    let response = server.userinfo(&post(), body.as_bytes(), now()).await;
    assert_eq!(response.status(), StatusCode::OK);

    // Refresh: a new ID token, same subject and auth_time, no nonce.
    let later = now() + Duration::from_secs(120);
    let refresh = client
        .refresh_request(tokens.refresh_token.as_deref().unwrap(), None)
        .unwrap();
    let response = server.token(&post(), refresh.body(), later).await;
    let refreshed = parse_token_response(response.status(), response.body()).unwrap();
    let renewed = client
        .refreshed_id_token(&refreshed, &claims, &keys, later)
        .unwrap()
        .expect("an ID token on refresh");
    assert_eq!(renewed.sub, "alice");
    assert_eq!(renewed.nonce, None);
    assert_eq!(renewed.auth_time, claims.auth_time);
    assert_eq!(renewed.iat, 1_800_000_120);
    // Another subject on refresh is refused.
    let mut someone_else = claims.clone();
    someone_else.sub = "bob".into();
    assert!(matches!(
        client.refreshed_id_token(&refreshed, &someone_else, &keys, later),
        Err(Error::OpenIdSubjectMismatch)
    ));

    // After revocation, UserInfo says invalid_token, and the client reads it so.
    let revoke = client
        .revocation_request(refreshed.refresh_token.as_deref().unwrap(), None)
        .unwrap();
    assert_eq!(
        server.revoke(&post(), revoke.body(), later).await.status(),
        StatusCode::OK
    );
    let (parts, ()) = Request::get("/userinfo")
        .header(
            "authorization",
            format!("Bearer {}", refreshed.access_token),
        )
        .body(())
        .unwrap()
        .into_parts();
    let response = server.userinfo(&parts, b"", later).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    match parse_userinfo_response(response.status(), response.headers(), b"", "alice") {
        Err(Error::UserInfoRefused { status, error }) => {
            assert_eq!(status, 401);
            assert_eq!(error.as_deref(), Some("invalid_token"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn userinfo_refuses_expired_missing_and_non_openid_tokens() {
    let server = server_with(
        keys("id-1", Algorithm::EdDSA),
        AccessTokenFormat::Jwt {
            issuer: JwtIssuer::new(keys("at-1", Algorithm::ES256)),
            audience: "https://api.example".into(),
        },
    );
    let client = client_of(&server, "spa");
    let (_, tokens) = log_in(&server, &client, &["openid", "email"]).await;
    let ask = |token: Option<String>, at: SystemTime| {
        let server = &server;
        async move {
            let mut builder = Request::get("/userinfo");
            if let Some(token) = token {
                builder = builder.header("authorization", format!("Bearer {token}"));
            }
            let (parts, ()) = builder.body(()).unwrap().into_parts();
            server.userinfo(&parts, b"", at).await
        }
    };
    let fine = ask(Some(tokens.access_token.clone()), now()).await;
    assert_eq!(fine.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(fine.body()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"sub": "alice", "email": "alice@example.org", "email_verified": true})
    );
    // Expired (the access token lives 600 s).
    let expired = ask(
        Some(tokens.access_token.clone()),
        now() + Duration::from_secs(601),
    )
    .await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert!(
        expired.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    // No token: a bare challenge.
    let none = ask(None, now()).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=")
    );
    // The refresh token is not an access token.
    let refresh = ask(tokens.refresh_token.clone(), now()).await;
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    // A token without scope openid: 403 insufficient_scope.
    let (_, plain) = log_in(&server, &client, &["email"]).await;
    assert!(!plain.extra.contains_key("id_token"));
    let refused = ask(Some(plain.access_token), now()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#) && challenge.contains("openid"),
        "{challenge}"
    );
    // The JWKS has both key sets; the ID token (EdDSA) verifies with it.
    assert_eq!(server.jwks()["keys"].as_array().unwrap().len(), 2);
}

/// Signs `claims` with `keys` as the provider would (typ JWT).
fn sign(keys: &KeySet, claims: &IdTokenClaims) -> String {
    JwtIssuer::new(keys.clone()).sign(claims).unwrap()
}

#[tokio::test]
async fn bad_id_tokens_each_get_their_error() {
    let server = server();
    let client = client_of(&server, "spa");
    let id_keys = keys("id-1", Algorithm::ES256);
    let (_, tokens) = log_in(&server, &client, &["openid"]).await;
    let good = IdTokenClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: Audience::One("spa".into()),
        exp: 1_800_000_600,
        iat: 1_800_000_000,
        auth_time: None,
        nonce: Some("n-0S6_WzA2Mj".into()),
        azp: None,
        at_hash: Some(token_hash(&tokens.access_token, Algorithm::ES256)),
        extra: serde_json::Map::new(),
    };
    let verify = |claims: &IdTokenClaims, nonce: &str, at: SystemTime| {
        client.verify_id_token(
            &sign(&id_keys, claims),
            Some(&tokens.access_token),
            Some(nonce),
            &id_keys,
            at,
        )
    };
    assert_eq!(verify(&good, "n-0S6_WzA2Mj", now()).unwrap(), good);

    assert!(matches!(
        verify(&good, "another nonce", now()),
        Err(Error::IdTokenNonceMismatch)
    ));
    let no_nonce = IdTokenClaims {
        nonce: None,
        ..good.clone()
    };
    assert!(matches!(
        verify(&no_nonce, "n-0S6_WzA2Mj", now()),
        Err(Error::IdTokenNonceMismatch)
    ));
    let other_aud = IdTokenClaims {
        aud: Audience::One("other-app".into()),
        ..good.clone()
    };
    assert!(matches!(
        verify(&other_aud, "n-0S6_WzA2Mj", now()),
        Err(Error::InvalidAudience)
    ));
    let other_iss = IdTokenClaims {
        iss: "https://evil.example".into(),
        ..good.clone()
    };
    assert!(matches!(
        verify(&other_iss, "n-0S6_WzA2Mj", now()),
        Err(Error::InvalidIssuer)
    ));
    // Expired beyond the 60 s leeway, and issued in the future beyond it.
    assert!(verify(&good, "n-0S6_WzA2Mj", now() + Duration::from_secs(650)).is_ok());
    assert!(matches!(
        verify(&good, "n-0S6_WzA2Mj", now() + Duration::from_secs(661)),
        Err(Error::Expired)
    ));
    assert!(matches!(
        verify(&good, "n-0S6_WzA2Mj", now() - Duration::from_secs(61)),
        Err(Error::IdTokenIssuedInFuture)
    ));
    // Several audiences: azp must be this client.
    let several = IdTokenClaims {
        aud: Audience::Many(vec!["spa".into(), "api".into()]),
        ..good.clone()
    };
    assert!(matches!(
        verify(&several, "n-0S6_WzA2Mj", now()),
        Err(Error::IdTokenAuthorizedPartyMismatch)
    ));
    let with_azp = IdTokenClaims {
        azp: Some("spa".into()),
        ..several.clone()
    };
    assert!(verify(&with_azp, "n-0S6_WzA2Mj", now()).is_ok());
    let wrong_azp = IdTokenClaims {
        azp: Some("api".into()),
        ..several
    };
    assert!(matches!(
        verify(&wrong_azp, "n-0S6_WzA2Mj", now()),
        Err(Error::IdTokenAuthorizedPartyMismatch)
    ));
    // One audience in a list needs no azp.
    let listed = IdTokenClaims {
        aud: Audience::Many(vec!["spa".into()]),
        ..good.clone()
    };
    assert!(verify(&listed, "n-0S6_WzA2Mj", now()).is_ok());
    // at_hash of another access token: the token was swapped.
    let swapped = IdTokenClaims {
        at_hash: Some(token_hash("another access token", Algorithm::ES256)),
        ..good.clone()
    };
    assert!(matches!(
        verify(&swapped, "n-0S6_WzA2Mj", now()),
        Err(Error::IdTokenAccessTokenHashMismatch)
    ));
    // A bad signature: the claims changed after signing.
    let token = sign(&id_keys, &good);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut tampered = good.clone();
    tampered.sub = "mallory".into();
    parts[1] = base64_url(&serde_json::to_vec(&tampered).unwrap());
    assert!(matches!(
        client.verify_id_token(&parts.join("."), None, None, &id_keys, now()),
        Err(Error::InvalidSignature)
    ));
    // Signed by a key the provider does not list.
    let stranger = keys("id-1", Algorithm::ES256);
    assert!(matches!(
        client.verify_id_token(&sign(&stranger, &good), None, None, &id_keys, now()),
        Err(Error::InvalidSignature)
    ));
    // An access token (typ at+jwt) signed with the same keys is not an ID token.
    let access = JwtIssuer::new(id_keys.clone())
        .sign_typed(&good, "at+jwt")
        .unwrap();
    assert!(matches!(
        client.verify_id_token(&access, None, None, &id_keys, now()),
        Err(Error::WrongTokenType)
    ));
    // Garbage never panics.
    for junk in ["", ".", "a.b.c", "e30.e30.e30", &"x".repeat(10_000)] {
        assert!(
            client
                .verify_id_token(junk, None, None, &id_keys, now())
                .is_err()
        );
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn the_code_exchange_needs_an_id_token_with_the_nonce() {
    let server = server();
    let client = client_of(&server, "spa");
    let keys = provider_keys(&server);
    let (pending, mut tokens) = log_in(&server, &client, &["openid"]).await;
    // The nonce of another login (a token injected from elsewhere).
    let (_, other) = client.authorization_url(&["openid"]).unwrap();
    assert!(matches!(
        client.id_token(&tokens, &other, &keys, now()),
        Err(Error::IdTokenNonceMismatch)
    ));
    // Another access token beside the ID token.
    let original = tokens.access_token.clone();
    tokens.access_token = "swapped".into();
    assert!(matches!(
        client.id_token(&tokens, &pending, &keys, now()),
        Err(Error::IdTokenAccessTokenHashMismatch)
    ));
    tokens.access_token = original;
    tokens.extra.remove("id_token");
    assert!(matches!(
        client.id_token(&tokens, &pending, &keys, now()),
        Err(Error::OAuthMalformed(_))
    ));
    // A plain OAuth login has no nonce and no ID token to check.
    let (_, plain) = client.authorization_url(&["profile"]).unwrap();
    assert_eq!(plain.nonce(), None);
    assert!(matches!(
        client.id_token(&tokens, &plain, &keys, now()),
        Err(Error::OAuthConfig(_))
    ));
}

#[tokio::test]
async fn prompt_and_max_age() {
    let server = server();
    let query = |extra: &str| {
        format!(
            "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=openid&state=s&code_challenge={}&code_challenge_method=S256{extra}",
            auth_core::oauth::code_challenge_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        )
    };
    let request = server
        .authorization_request(&query("&prompt=none&nonce=abc"))
        .await
        .unwrap();
    assert!(request.has_prompt("none"));
    assert_eq!(request.nonce.as_deref(), Some("abc"));
    let refused = server.refuse(
        &request,
        &OAuthError::new(ErrorCode::LoginRequired, "log in first"),
    );
    let location = refused.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://app.example/cb?error=login_required&")
            && location.contains("state=s")
            && location.contains("iss=https%3A%2F%2Fid.example"),
        "{location}"
    );
    // none with another value is invalid_request, by redirect.
    match server
        .authorization_request(&query("&prompt=none%20login"))
        .await
    {
        Err(auth_core::oauth::server::AuthorizationRejection::Redirect { error, .. }) => {
            assert_eq!(error.code, ErrorCode::InvalidRequest);
        }
        other => panic!("{other:?}"),
    }
    let login = server
        .authorization_request(&query("&prompt=login"))
        .await
        .unwrap();
    assert!(login.needs_login(Some(now()), now()));
    let aged = server
        .authorization_request(&query("&max_age=300"))
        .await
        .unwrap();
    assert_eq!(aged.max_age, Some(300));
    assert!(!aged.needs_login(Some(now() - Duration::from_secs(300)), now()));
    assert!(aged.needs_login(Some(now() - Duration::from_secs(301)), now()));
    assert!(aged.needs_login(None, now()));
    assert!(
        server
            .authorization_request(&query("&max_age=soon"))
            .await
            .is_err()
    );
    let plain = server.authorization_request(&query("")).await.unwrap();
    assert!(!plain.needs_login(None, now()));
    assert!(plain.is_openid());
}

#[test]
fn discovery_document() {
    let server = server();
    let document = server.openid_configuration().unwrap();
    assert_eq!(document["issuer"], ISSUER);
    assert_eq!(
        document["authorization_endpoint"],
        "https://id.example/authorize"
    );
    assert_eq!(document["token_endpoint"], "https://id.example/token");
    assert_eq!(document["userinfo_endpoint"], "https://id.example/userinfo");
    assert_eq!(
        document["jwks_uri"],
        "https://id.example/.well-known/jwks.json"
    );
    assert_eq!(
        document["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        document["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(
        document["scopes_supported"],
        serde_json::json!(["openid", "profile", "email"])
    );
    assert_eq!(
        document["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(document["request_uri_parameter_supported"], false);
    let claims = document["claims_supported"].as_array().unwrap();
    for claim in ["sub", "iss", "nonce", "name", "email", "email_verified"] {
        assert!(claims.iter().any(|c| c == claim), "{claim}");
    }
    assert!(
        document["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "authorization_code")
    );
    // Without OpenID Connect, no discovery document.
    let plain = AuthorizationServer::new(
        ServerConfig::new(ISSUER).unwrap(),
        MemoryClientRegistry::new(),
        MemoryGrantStore::new(),
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(60)),
        AccessTokenFormat::Opaque,
    );
    assert!(plain.openid_configuration().is_none());
    assert_eq!(
        plain.openid_configuration_response().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ServerMetadata::openid_configuration_uri("https://id.example/tenant/").unwrap(),
        "https://id.example/tenant/.well-known/openid-configuration"
    );
}
