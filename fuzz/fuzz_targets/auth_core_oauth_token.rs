#![no_main]
//! Any bytes as a token endpoint body (with and without Basic client authentication): an
//! RFC 6749 answer, never a panic.

use std::task::{Context, Poll, Waker};
use std::time::{Duration, UNIX_EPOCH};

use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationServer, Client, ClientAuthMethod, GrantType,
    MemoryClientRegistry, MemoryGrantStore, ServerConfig,
};
use auth_core::{MemoryRefreshStore, RefreshTokens};
use libfuzzer_sys::fuzz_target;

type Server = AuthorizationServer<MemoryClientRegistry, MemoryGrantStore, MemoryRefreshStore>;

/// A fresh server per input, so that issued tokens do not pile up across runs.
fn server() -> Server {
    let clients = MemoryClientRegistry::new();
    let grants = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];
    clients.register(
        Client::public("app", ["https://app.example/cb"])
            .expect("static client")
            .with_grants(grants),
    );
    clients.register(
        Client::confidential(
            "web",
            "web-secret-0123456789",
            ClientAuthMethod::ClientSecretBasic,
            ["https://web.example/cb"],
        )
        .expect("static client")
        .with_scopes(["api"])
        .with_grants(grants),
    );
    AuthorizationServer::new(
        ServerConfig::new("https://id.example").expect("static issuer"),
        clients,
        MemoryGrantStore::new(),
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(60)),
        AccessTokenFormat::Opaque,
    )
}

fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let (authenticated, body) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => (false, data),
    };
    let mut builder = http::Request::post("/token");
    if authenticated {
        // "web:web-secret-0123456789"
        builder = builder.header(
            "authorization",
            "Basic d2ViOndlYi1zZWNyZXQtMDEyMzQ1Njc4OQ==",
        );
    }
    let (parts, ()) = builder.body(()).expect("static request").into_parts();
    let server = server();
    if let Some(response) = now_or_never(server.token(&parts, body, now)) {
        assert!(response.status().is_success() || response.status().is_client_error());
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    let _ = now_or_never(server.introspect(&parts, body, now));
    let _ = now_or_never(server.revoke(&parts, body, now));
});
