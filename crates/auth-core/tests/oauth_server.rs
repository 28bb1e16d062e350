//! The authorization server against every bad input of issue 5, each asserting the RFC's
//! error code, plus the happy paths of the three grants, revocation and introspection.

#![cfg(feature = "oauth")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationRejection, AuthorizationRequest, AuthorizationServer, Client,
    ClientAuthMethod, GrantType, MemoryClientRegistry, MemoryGrantStore, ServerConfig,
};
use auth_core::oauth::{ErrorCode, MAX_PARAMETER_BYTES, code_challenge_s256};
use auth_core::{
    Algorithm, JwtIssuer, JwtVerifier, Key, KeySet, MemoryRefreshStore, RefreshTokens,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{Request, StatusCode, request::Parts};
use serde_json::Value;

const ISSUER: &str = "https://id.example";
const SPA_REDIRECT: &str = "https://app.example/cb";
const NATIVE_REDIRECT: &str = "http://127.0.0.1/callback";
const WEB_SECRET: &str = "web-secret-0123456789";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

type Server = AuthorizationServer<MemoryClientRegistry, MemoryGrantStore, MemoryRefreshStore>;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn server_with(access: AccessTokenFormat) -> Server {
    let clients = MemoryClientRegistry::new();
    let all = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];
    clients.register(
        Client::public("spa", [SPA_REDIRECT])
            .unwrap()
            .with_scopes(["profile", "email"])
            .with_grants(all),
    );
    clients.register(
        Client::public("native", [NATIVE_REDIRECT])
            .unwrap()
            .with_scopes(["profile"])
            .with_grants(all),
    );
    clients.register(
        Client::confidential(
            "web",
            WEB_SECRET,
            ClientAuthMethod::ClientSecretBasic,
            ["https://web.example/cb"],
        )
        .unwrap()
        .with_scopes(["profile", "api"])
        .with_grants(all),
    );
    clients.register(
        Client::confidential(
            "poster",
            WEB_SECRET,
            ClientAuthMethod::ClientSecretPost,
            ["https://poster.example/cb"],
        )
        .unwrap()
        .with_scopes(["api"])
        .with_grants([GrantType::ClientCredentials]),
    );
    AuthorizationServer::new(
        ServerConfig::new(ISSUER).unwrap(),
        clients,
        MemoryGrantStore::new(),
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(86_400)),
        access,
    )
}

fn server() -> Server {
    server_with(AccessTokenFormat::Opaque)
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn authorize_query(client: &str, redirect: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={client}&redirect_uri={}&state=s1&code_challenge={}&code_challenge_method=S256{extra}",
        enc(redirect),
        code_challenge_s256(VERIFIER)
    )
}

fn post(headers: &[(&str, &str)]) -> Parts {
    let mut builder =
        Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn location_params(response: &http::Response<()>) -> Vec<(String, String)> {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap();
    let query = location.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

async fn code_for(server: &Server, client: &str, redirect: &str) -> String {
    let request = server
        .authorization_request(&authorize_query(client, redirect, "&scope=profile"))
        .await
        .unwrap();
    let response = server.approve(&request, "alice", now()).await.unwrap();
    param(&location_params(&response), "code")
        .unwrap()
        .to_owned()
}

fn code_body(code: &str, client: &str, redirect: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&client_id={client}&redirect_uri={}&code_verifier={verifier}",
        enc(redirect)
    )
}

async fn token(server: &Server, parts: &Parts, body: &str) -> (StatusCode, Value) {
    let response = server.token(parts, body.as_bytes(), now()).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let status = response.status();
    (status, serde_json::from_slice(response.body()).unwrap())
}

async fn token_error(server: &Server, parts: &Parts, body: &str) -> ErrorCode {
    server
        .token_result(parts, body.as_bytes(), now())
        .await
        .unwrap_err()
        .code
}

async fn introspect(server: &Server, token: &str) -> Value {
    let response = server
        .introspect(
            &post(&[("authorization", &basic("web", WEB_SECRET))]),
            format!("token={}", enc(token)).as_bytes(),
            now(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(response.body()).unwrap()
}

fn shown_to_user(rejection: AuthorizationRejection) -> ErrorCode {
    match rejection {
        AuthorizationRejection::ShowToUser(error) => error.code,
        AuthorizationRejection::Redirect { error, .. } => {
            panic!("expected an error page, got a redirect with {error}")
        }
    }
}

fn redirected(rejection: AuthorizationRejection, redirect: &str) -> ErrorCode {
    match rejection {
        AuthorizationRejection::Redirect { error, response } => {
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "303, never 307");
            let location = response.headers()["location"].to_str().unwrap();
            assert!(location.starts_with(redirect), "{location}");
            let pairs = location_params(&response);
            assert_eq!(param(&pairs, "error"), Some(error.code.as_str()));
            assert_eq!(param(&pairs, "state"), Some("s1"));
            assert_eq!(param(&pairs, "iss"), Some(ISSUER));
            error.code
        }
        AuthorizationRejection::ShowToUser(error) => {
            panic!("expected a redirect, got an error page with {error}")
        }
    }
}

#[tokio::test]
async fn authorization_code_flow_with_pkce_refresh_introspect_revoke() {
    let server = server();
    let request = server
        .authorization_request(&authorize_query(
            "spa",
            SPA_REDIRECT,
            "&scope=profile%20email",
        ))
        .await
        .unwrap();
    assert_eq!(request.scope, ["profile", "email"]);
    assert_eq!(request.state.as_deref(), Some("s1"));
    // The request survives a trip through the session.
    let stored = serde_json::to_string(&request).unwrap();
    let request: AuthorizationRequest = serde_json::from_str(&stored).unwrap();
    let response = server.approve(&request, "alice", now()).await.unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let pairs = location_params(&response);
    assert_eq!(param(&pairs, "state"), Some("s1"), "state passes through");
    assert_eq!(param(&pairs, "iss"), Some(ISSUER), "RFC 9207 iss");
    let code = param(&pairs, "code").unwrap();
    assert_eq!(code.len(), 43, "256 random bits");

    let (status, tokens) = token(
        &server,
        &post(&[]),
        &code_body(code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "profile email");
    assert_eq!(tokens["expires_in"], 600);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let info = introspect(&server, access).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["client_id"], "spa");
    assert_eq!(info["scope"], "profile email");
    assert_eq!(introspect(&server, refresh).await["active"], true);
    assert_eq!(
        introspect(&server, "garbage").await,
        serde_json::json!({"active": false})
    );

    // Refresh, narrowing the scope; the new refresh token differs (rotation).
    let (status, refreshed) = token(
        &server,
        &post(&[]),
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa&scope=email"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["scope"], "email");
    let refresh2 = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(refresh2, refresh);
    assert_eq!(introspect(&server, refresh).await["active"], false);

    // Revoking the new refresh token revokes the grant: every token of it dies.
    let response = server
        .revoke(
            &post(&[]),
            format!("token={refresh2}&client_id=spa").as_bytes(),
            now(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    for dead in [
        access,
        refresh2,
        refreshed["access_token"].as_str().unwrap(),
    ] {
        assert_eq!(introspect(&server, dead).await["active"], false);
    }
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc9068() {
    let mut keys = KeySet::new();
    keys.rotate(Key::generate("k1", Algorithm::ES256).unwrap())
        .unwrap();
    let server = server_with(AccessTokenFormat::Jwt {
        issuer: JwtIssuer::new(keys.clone()),
        audience: "https://api.example".into(),
    });
    assert_eq!(
        server.metadata()["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );
    assert_eq!(server.jwks()["keys"].as_array().unwrap().len(), 1);
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let (status, tokens) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let access = tokens["access_token"].as_str().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    let claims: Value = JwtVerifier::new(keys.clone())
        .with_issuer(ISSUER)
        .with_audience("https://api.example")
        .with_type("at+jwt")
        .verify(access, now())
        .unwrap();
    for claim in [
        "iss",
        "exp",
        "aud",
        "sub",
        "client_id",
        "iat",
        "jti",
        "scope",
    ] {
        assert!(claims.get(claim).is_some(), "RFC 9068 claim {claim}");
    }
    assert_eq!(claims["client_id"], "spa");
    // A plain JWT signed by the same keys is not an access token.
    let plain = JwtIssuer::new(keys.clone()).sign(&claims).unwrap();
    assert!(
        JwtVerifier::new(keys)
            .with_type("at+jwt")
            .verify::<Value>(&plain, now())
            .is_err()
    );
    assert_eq!(introspect(&server, &plain).await["active"], false);
    assert_eq!(introspect(&server, access).await["active"], true);
    // Code replay revokes: introspection sees the JWT as inactive.
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", SPA_REDIRECT, VERIFIER)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    assert_eq!(introspect(&server, access).await["active"], false);
}

#[tokio::test]
async fn redirect_uri_variants_are_shown_to_the_user_never_redirected() {
    let server = server();
    for variant in [
        "https://app.example/cb/",
        "https://app.example/cb/extra",
        "https://app.example/c",
        "https://app.example/cbx",
        "https://evil.app.example/cb",
        "https://app.example.evil.example/cb",
        "https://user@app.example/cb",
        "https://app.example@evil.example/cb",
        "https://app.example/cb#fragment",
        "https://app.example/cb/%2e%2e/evil",
        "https://app.example/cb/..%2Fevil",
        "https://app.example/cb?extra=1",
        "http://app.example/cb",
        "https://APP.EXAMPLE/cb",
        "https://app.example:443/cb",
        "https://evil.example/cb",
    ] {
        let rejection = server
            .authorization_request(&authorize_query("spa", variant, ""))
            .await
            .unwrap_err();
        assert_eq!(
            shown_to_user(rejection),
            ErrorCode::InvalidRequest,
            "{variant}"
        );
    }
    // Unknown, missing and repeated client ids: never redirected either.
    for query in [
        authorize_query("nobody", SPA_REDIRECT, ""),
        authorize_query("spa", SPA_REDIRECT, "&client_id=spa"),
        authorize_query("spa", SPA_REDIRECT, "").replace("client_id=spa", ""),
        authorize_query("spa", SPA_REDIRECT, "")
            .replace(&format!("redirect_uri={}", enc(SPA_REDIRECT)), ""),
    ] {
        let rejection = server.authorization_request(&query).await.unwrap_err();
        let code = shown_to_user(rejection);
        assert!(
            matches!(code, ErrorCode::InvalidRequest | ErrorCode::InvalidClient),
            "{query}"
        );
    }
    assert_eq!(
        shown_to_user(
            server
                .authorization_request(&authorize_query("nobody", SPA_REDIRECT, ""))
                .await
                .unwrap_err()
        ),
        ErrorCode::InvalidClient
    );
}

#[tokio::test]
async fn loopback_redirects_take_any_port_and_nothing_else() {
    let server = server();
    for good in [
        "http://127.0.0.1/callback",
        "http://127.0.0.1:49152/callback",
        "http://127.0.0.1:1/callback",
    ] {
        server
            .authorization_request(&authorize_query("native", good, ""))
            .await
            .unwrap_or_else(|rejection| panic!("{good}: {}", rejection.error()));
    }
    for bad in [
        "http://localhost:49152/callback",
        "http://127.0.0.1:49152/callback/x",
        "http://127.0.0.1:70000/callback",
        "http://[::1]:49152/callback",
        "http://127.0.0.1.evil.example/callback",
        "https://127.0.0.1:49152/callback",
    ] {
        let rejection = server
            .authorization_request(&authorize_query("native", bad, ""))
            .await
            .unwrap_err();
        assert_eq!(shown_to_user(rejection), ErrorCode::InvalidRequest, "{bad}");
    }
}

#[test]
fn http_redirect_uris_on_other_hosts_cannot_be_registered() {
    for bad in [
        "http://app.example/cb",
        "http://localhost/cb",
        "http://10.0.0.1/cb",
        "https://app.example/cb#x",
        "https://u:p@app.example/cb",
        "https://app.example/a/%2e%2e/cb",
        "cb",
    ] {
        assert!(Client::public("c", [bad]).is_err(), "{bad}");
    }
    assert!(
        Client::confidential(
            "c",
            "short",
            ClientAuthMethod::ClientSecretBasic,
            [SPA_REDIRECT]
        )
        .is_err()
    );
}

#[tokio::test]
async fn bad_authorization_parameters_go_back_to_the_client() {
    let server = server();
    let challenge = code_challenge_s256(VERIFIER);
    let base = format!("client_id=spa&redirect_uri={}&state=s1", enc(SPA_REDIRECT));
    let s256 = format!("&code_challenge={challenge}&code_challenge_method=S256");
    let cases = [
        // PKCE is required, S256 only: no challenge, plain, default method, junk method.
        (
            format!("{base}&response_type=code"),
            ErrorCode::InvalidRequest,
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=plain"
            ),
            ErrorCode::InvalidRequest,
        ),
        (
            format!("{base}&response_type=code&code_challenge={challenge}"),
            ErrorCode::InvalidRequest,
        ),
        (
            format!(
                "{base}&response_type=code&code_challenge={challenge}&code_challenge_method=S512"
            ),
            ErrorCode::InvalidRequest,
        ),
        (
            format!("{base}&response_type=code&code_challenge=short&code_challenge_method=S256"),
            ErrorCode::InvalidRequest,
        ),
        // Implicit and hybrid flows do not exist here.
        (
            format!("{base}&response_type=token{s256}"),
            ErrorCode::UnsupportedResponseType,
        ),
        (
            format!("{base}&response_type=code%20id_token{s256}"),
            ErrorCode::UnsupportedResponseType,
        ),
        (format!("{base}{s256}"), ErrorCode::InvalidRequest),
        (
            format!("{base}&response_type=code{s256}&response_mode=fragment"),
            ErrorCode::InvalidRequest,
        ),
        // Scope outside the client's, malformed scope.
        (
            format!("{base}&response_type=code{s256}&scope=admin"),
            ErrorCode::InvalidScope,
        ),
        (
            format!("{base}&response_type=code{s256}&scope=%22quoted%22"),
            ErrorCode::InvalidScope,
        ),
        // Repeated and oversized parameters after the redirect URI is known.
        (
            format!("{base}&response_type=code{s256}&scope=profile&scope=email"),
            ErrorCode::InvalidRequest,
        ),
        (
            format!(
                "{base}&response_type=code{s256}&nonce={}",
                "n".repeat(MAX_PARAMETER_BYTES + 1)
            ),
            ErrorCode::InvalidRequest,
        ),
        (
            format!("{base}&response_type=code{s256}&request=eyJ"),
            ErrorCode::RequestNotSupported,
        ),
        (
            format!("{base}&response_type=code{s256}&request_uri=urn:x"),
            ErrorCode::RequestUriNotSupported,
        ),
    ];
    for (query, expected) in cases {
        let rejection = server.authorization_request(&query).await.unwrap_err();
        match rejection {
            // Oversized and repeated parameters are found while parsing, before the redirect
            // URI is trusted: shown to the user.
            AuthorizationRejection::ShowToUser(error) => {
                assert_eq!(error.code, expected, "{query}");
                assert!(
                    query.contains("scope=profile&scope") || query.contains("nonce="),
                    "{query}"
                );
            }
            rejection => assert_eq!(redirected(rejection, SPA_REDIRECT), expected, "{query}"),
        }
    }
    // A client without the code grant is unauthorized_client.
    let clients = server.clients();
    clients.register(
        Client::public("cc-only", [SPA_REDIRECT])
            .unwrap()
            .with_grants([GrantType::RefreshToken]),
    );
    let rejection = server
        .authorization_request(&authorize_query("cc-only", SPA_REDIRECT, ""))
        .await
        .unwrap_err();
    assert_eq!(
        redirected(rejection, SPA_REDIRECT),
        ErrorCode::UnauthorizedClient
    );
    // An oversized state is refused, never echoed.
    let long_state = authorize_query("spa", SPA_REDIRECT, "")
        .replace("state=s1", &format!("state={}", "s".repeat(5000)));
    assert!(matches!(
        server.authorization_request(&long_state).await.unwrap_err(),
        AuthorizationRejection::ShowToUser(_)
    ));
    // Denied consent: access_denied with state and iss.
    let request = server
        .authorization_request(&authorize_query("spa", SPA_REDIRECT, ""))
        .await
        .unwrap();
    let pairs = location_params(&server.deny(&request));
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert_eq!(param(&pairs, "state"), Some("s1"));
    assert_eq!(param(&pairs, "iss"), Some(ISSUER));
}

#[tokio::test]
async fn pkce_downgrade_and_wrong_verifiers_are_invalid_grant() {
    let server = server();
    // A wrong verifier.
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let wrong = "x".repeat(43);
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", SPA_REDIRECT, &wrong)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // The code is spent even so: the right verifier afterwards is a replay.
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", SPA_REDIRECT, VERIFIER)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // The challenge itself as the verifier (a downgrade to plain).
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", SPA_REDIRECT, &code_challenge_s256(VERIFIER))
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // No verifier at all (a client that "forgot" PKCE), or a malformed one.
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let no_verifier = format!(
        "grant_type=authorization_code&code={code}&client_id=spa&redirect_uri={}",
        enc(SPA_REDIRECT)
    );
    assert_eq!(
        token_error(&server, &post(&[]), &no_verifier).await,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", SPA_REDIRECT, "short")
        )
        .await,
        ErrorCode::InvalidRequest
    );
    // That code was not spent by the malformed requests; a good exchange still works.
    let (status, _) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn code_replay_revokes_every_token_it_issued() {
    let server = server();
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let body = code_body(&code, "spa", SPA_REDIRECT, VERIFIER);
    let (status, tokens) = token(&server, &post(&[]), &body).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = token(&server, &post(&[]), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "invalid_grant");
    for token in ["access_token", "refresh_token"] {
        assert_eq!(
            introspect(&server, tokens[token].as_str().unwrap()).await["active"],
            false,
            "{token}"
        );
    }
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa")
        )
        .await,
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn codes_are_bound_to_client_redirect_and_lifetime() {
    let server = server();
    // Used by another client (public, and confidential with a valid secret).
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "native", SPA_REDIRECT, VERIFIER)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let as_web = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        enc(SPA_REDIRECT)
    );
    assert_eq!(
        token_error(
            &server,
            &post(&[("authorization", &basic("web", WEB_SECRET))]),
            &as_web
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // Another redirect URI than the authorization request's.
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(&code, "spa", "https://app.example/other", VERIFIER)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // Expired: 60 s by default.
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let late = server
        .token_result(
            &post(&[]),
            code_body(&code, "spa", SPA_REDIRECT, VERIFIER).as_bytes(),
            now() + Duration::from_secs(61),
        )
        .await
        .unwrap_err();
    assert_eq!(late.code, ErrorCode::InvalidGrant);
    // Garbage and oversized codes.
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body("garbage", "spa", SPA_REDIRECT, VERIFIER)
        )
        .await,
        ErrorCode::InvalidGrant
    );
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &code_body(
                &"c".repeat(MAX_PARAMETER_BYTES + 1),
                "spa",
                SPA_REDIRECT,
                VERIFIER
            )
        )
        .await,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn a_refresh_token_used_twice_revokes_the_grant() {
    let server = server();
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let (_, tokens) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let body = format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa");
    let (status, rotated) = token(&server, &post(&[]), &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        token_error(&server, &post(&[]), &body).await,
        ErrorCode::InvalidGrant
    );
    // The rotated token and every access token died with the family.
    for dead in [
        rotated["refresh_token"].as_str().unwrap(),
        rotated["access_token"].as_str().unwrap(),
        tokens["access_token"].as_str().unwrap(),
    ] {
        assert_eq!(introspect(&server, dead).await["active"], false);
    }
    // A refresh token presented by another client does not work and is not spent.
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let (_, tokens) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(
        token_error(
            &server,
            &post(&[]),
            &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=native")
        )
        .await,
        ErrorCode::InvalidGrant
    );
    // Widening the scope on refresh.
    assert_eq!(
        token_error(&server, &post(&[]), &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa&scope=profile%20email")).await,
        ErrorCode::InvalidScope
    );
    let (status, _) = token(
        &server,
        &post(&[]),
        &format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn client_authentication_and_client_credentials() {
    let server = server();
    let cc = "grant_type=client_credentials&scope=api";
    // client_secret_basic.
    let (status, tokens) = token(
        &server,
        &post(&[("authorization", &basic("web", WEB_SECRET))]),
        cc,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    // client_secret_post.
    let (status, _) = token(
        &server,
        &post(&[]),
        &format!("{cc}&client_id=poster&client_secret={WEB_SECRET}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Wrong secret, unknown client, the other method than registered: 401 invalid_client
    // with a challenge.
    for (headers, body) in [
        (
            vec![("authorization", basic("web", "wrong-secret-0123456"))],
            cc.to_owned(),
        ),
        (
            vec![("authorization", basic("ghost", WEB_SECRET))],
            cc.to_owned(),
        ),
        (
            vec![],
            format!("{cc}&client_id=web&client_secret={WEB_SECRET}"),
        ),
        (
            vec![("authorization", basic("poster", WEB_SECRET))],
            cc.to_owned(),
        ),
        (
            vec![("authorization", "Bearer abc".to_owned())],
            cc.to_owned(),
        ),
        (
            vec![("authorization", "Basic !!!".to_owned())],
            cc.to_owned(),
        ),
        (vec![], cc.to_owned()),
        // A confidential client pretending to be public (no secret).
        (vec![], format!("{cc}&client_id=web")),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = server.token(&post(&headers), body.as_bytes(), now()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{body} {headers:?}"
        );
        assert!(response.headers().contains_key("www-authenticate"));
        let error: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(error["error"], "invalid_client");
    }
    // Two methods at once.
    assert_eq!(
        token_error(
            &server,
            &post(&[("authorization", &basic("web", WEB_SECRET))]),
            &format!("{cc}&client_secret={WEB_SECRET}")
        )
        .await,
        ErrorCode::InvalidRequest
    );
    // Public clients cannot use client credentials; scope outside the client's.
    assert_eq!(
        token_error(&server, &post(&[]), &format!("{cc}&client_id=spa")).await,
        ErrorCode::UnauthorizedClient
    );
    assert_eq!(
        token_error(
            &server,
            &post(&[("authorization", &basic("web", WEB_SECRET))]),
            "grant_type=client_credentials&scope=admin"
        )
        .await,
        ErrorCode::InvalidScope
    );
    // The poster client may not use the code grant.
    assert_eq!(
        token_error(&server, &post(&[]), &format!("grant_type=authorization_code&code=x&redirect_uri=x&code_verifier={VERIFIER}&client_id=poster&client_secret={WEB_SECRET}")).await,
        ErrorCode::UnauthorizedClient
    );
    // Form-urlencoded Basic credentials (RFC 6749 section 2.3.1).
    server.clients().register(
        Client::confidential(
            "a:b c",
            "s%e:cret 0123456789",
            ClientAuthMethod::ClientSecretBasic,
            ["https://x.example/cb"],
        )
        .unwrap()
        .with_grants([GrantType::ClientCredentials]),
    );
    server.clients().register(
        Client::confidential(
            "amp",
            "a&b=c-0123456789abcdef",
            ClientAuthMethod::ClientSecretBasic,
            ["https://x.example/cb"],
        )
        .unwrap()
        .with_grants([GrantType::ClientCredentials]),
    );
    let raw = basic("amp", "a&b=c-0123456789abcdef");
    let (status, body) = token(
        &server,
        &post(&[("authorization", &raw)]),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an unencoded & in the secret: {body}"
    );
    let encoded = basic("a%3Ab+c", "s%25e%3Acret+0123456789");
    let (status, body) = token(
        &server,
        &post(&[("authorization", &encoded)]),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn malformed_token_requests() {
    let server = server();
    let auth = basic("web", WEB_SECRET);
    let with_auth = post(&[("authorization", &auth)]);
    let cases: Vec<(Parts, String, ErrorCode)> = vec![
        (
            with_auth.clone(),
            "grant_type=password&username=a&password=b".into(),
            ErrorCode::UnsupportedGrantType,
        ),
        (
            with_auth.clone(),
            "grant_type=implicit".into(),
            ErrorCode::UnsupportedGrantType,
        ),
        (
            with_auth.clone(),
            "scope=api".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            with_auth.clone(),
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            with_auth.clone(),
            format!(
                "grant_type=client_credentials&scope={}",
                "a".repeat(MAX_PARAMETER_BYTES + 1)
            ),
            ErrorCode::InvalidRequest,
        ),
        (
            with_auth.clone(),
            format!("grant_type=client_credentials&x={}", "a=b&".repeat(5000)),
            ErrorCode::InvalidRequest,
        ),
        (
            with_auth.clone(),
            "grant_type=refresh_token".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            with_auth.clone(),
            "grant_type=refresh_token&refresh_token=nope".into(),
            ErrorCode::InvalidGrant,
        ),
        (
            with_auth.clone(),
            format!(
                "grant_type=refresh_token&refresh_token={}",
                "r".repeat(1000)
            ),
            ErrorCode::InvalidGrant,
        ),
        (
            with_auth.clone(),
            "grant_type=authorization_code&redirect_uri=x&code_verifier=y".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            Request::post("/token")
                .header("content-type", "application/json")
                .header("authorization", &auth)
                .body(())
                .unwrap()
                .into_parts()
                .0,
            "grant_type=client_credentials".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            Request::get("/token")
                .header("authorization", &auth)
                .body(())
                .unwrap()
                .into_parts()
                .0,
            "grant_type=client_credentials".into(),
            ErrorCode::InvalidRequest,
        ),
        (
            Request::post(format!("/token?client_secret={WEB_SECRET}"))
                .header("authorization", &auth)
                .body(())
                .unwrap()
                .into_parts()
                .0,
            "grant_type=client_credentials".into(),
            ErrorCode::InvalidRequest,
        ),
    ];
    for (parts, body, expected) in cases {
        let response = server.token(&parts, body.as_bytes(), now()).await;
        let error: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            error["error"],
            expected.as_str(),
            "{}",
            &body[..body.len().min(80)]
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    // Non-UTF-8 and binary bodies do not panic.
    let response = server
        .token(&with_auth, &[0xff, 0xfe, b'=', 0x00, b'&'], now())
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn revocation_and_introspection_are_client_bound() {
    let server = server();
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let (_, tokens) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    // Another client's revocation is a no-op answered 200 (RFC 7009 section 2.2).
    let response = server
        .revoke(
            &post(&[]),
            format!("token={access}&client_id=native").as_bytes(),
            now(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&server, access).await["active"], true);
    // Unknown tokens: 200.
    let response = server
        .revoke(&post(&[]), b"token=unknown&client_id=spa", now())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Unauthenticated revocation: invalid_client.
    let response = server
        .revoke(&post(&[]), format!("token={access}").as_bytes(), now())
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Public clients cannot introspect.
    let error = server
        .introspect_result(
            &post(&[]),
            format!("token={access}&client_id=spa").as_bytes(),
            now(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidClient);
    // Expired opaque access tokens are inactive.
    let late = server
        .introspect_result(
            &post(&[("authorization", &basic("web", WEB_SECRET))]),
            format!("token={access}").as_bytes(),
            now() + Duration::from_secs(601),
        )
        .await
        .unwrap();
    assert_eq!(late["active"], false);
    // The owner revokes: gone.
    let response = server
        .revoke(
            &post(&[]),
            format!("token={access}&client_id=spa&token_type_hint=access_token").as_bytes(),
            now(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(introspect(&server, access).await["active"], false);
}

#[tokio::test]
async fn metadata_lists_only_what_is_implemented() {
    let server = server();
    let metadata = server.metadata();
    assert_eq!(metadata["issuer"], ISSUER);
    assert_eq!(
        metadata["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(!grants.iter().any(|g| g == "password" || g == "implicit"));
    assert!(
        metadata.get("jwks_uri").is_none(),
        "opaque tokens: no keys to publish"
    );
    assert!(ServerConfig::new("http://id.example").is_err());
    assert!(ServerConfig::new("https://id.example?x=1").is_err());
    assert!(ServerConfig::new("http://127.0.0.1:8080").is_ok());
}

#[tokio::test]
async fn everything_stored_expires_and_is_swept() {
    let server = server();
    let auth = basic("web", WEB_SECRET);
    for _ in 0..50 {
        let (status, _) = token(
            &server,
            &post(&[("authorization", &auth)]),
            "grant_type=client_credentials",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let code = code_for(&server, "spa", SPA_REDIRECT).await;
    let (_, tokens) = token(
        &server,
        &post(&[]),
        &code_body(&code, "spa", SPA_REDIRECT, VERIFIER),
    )
    .await;
    let _unused = code_for(&server, "spa", SPA_REDIRECT).await;
    assert!(
        server.grants().len() >= 100,
        "50 grants and 50 tokens at least"
    );
    // After the access tokens expire, only the grant with a live refresh token remains.
    server.grants().sweep(now() + Duration::from_secs(601));
    assert_eq!(server.grants().len(), 1);
    assert_eq!(
        introspect(&server, tokens["refresh_token"].as_str().unwrap()).await["active"],
        true
    );
    // After the refresh token's lifetime, nothing.
    server.grants().sweep(now() + Duration::from_secs(86_401));
    assert!(server.grants().is_empty());
}
