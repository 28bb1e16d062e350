#![no_main]
//! Any bytes as the query of an OAuth authorization request: validation answers a request or
//! a rejection, never panics; a rejection by redirect only ever goes to the registered URI.

use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use auth_core::oauth::server::{
    AccessTokenFormat, AuthorizationRejection, AuthorizationServer, Client, GrantType,
    MemoryClientRegistry, MemoryGrantStore, ServerConfig,
};
use auth_core::{MemoryRefreshStore, RefreshTokens};
use libfuzzer_sys::fuzz_target;

type Server = AuthorizationServer<MemoryClientRegistry, MemoryGrantStore, MemoryRefreshStore>;

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let clients = MemoryClientRegistry::new();
    clients.register(
        Client::public("app", ["https://app.example/cb", "http://127.0.0.1/cb"])
            .expect("static client")
            .with_scopes(["a", "b"])
            .with_grants([GrantType::AuthorizationCode, GrantType::RefreshToken]),
    );
    AuthorizationServer::new(
        ServerConfig::new("https://id.example").expect("static issuer"),
        clients,
        MemoryGrantStore::new(),
        RefreshTokens::new(MemoryRefreshStore::new(), Duration::from_secs(60)),
        AccessTokenFormat::Opaque,
    )
});

/// The in-memory stores never wait, so one poll finishes the future.
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
    let query = String::from_utf8_lossy(data);
    if let Some(Err(AuthorizationRejection::Redirect { response, .. })) =
        now_or_never(SERVER.authorization_request(&query))
    {
        let location = response.headers()["location"].to_str().unwrap_or("");
        assert!(
            location.starts_with("https://app.example/cb?")
                || location.starts_with("http://127.0.0.1"),
            "redirect to an unregistered URI: {location}"
        );
    }
});
