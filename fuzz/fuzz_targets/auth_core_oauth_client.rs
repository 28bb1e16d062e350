#![no_main]
//! Any bytes as what an authorization server sends a client: a token response, a metadata
//! document, a callback query. Ok or Err, never a panic.

use std::sync::LazyLock;

use auth_core::oauth::client::{
    OAuthClient, PendingAuthorization, ServerMetadata, parse_token_response,
};
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

static CLIENT: LazyLock<(OAuthClient, PendingAuthorization)> = LazyLock::new(|| {
    let metadata = ServerMetadata::parse(
        br#"{"issuer":"https://id.example","authorization_endpoint":"https://id.example/a",
            "token_endpoint":"https://id.example/t","authorization_response_iss_parameter_supported":true}"#,
        "https://id.example",
    )
    .expect("static metadata");
    let client = OAuthClient::new(metadata, "app", "https://app.example/cb");
    let (_, pending) = client.authorization_url(&["a"]).expect("static URL");
    (client, pending)
});

fuzz_target!(|data: &[u8]| {
    let _ = parse_token_response(StatusCode::OK, data);
    let _ = parse_token_response(StatusCode::BAD_REQUEST, data);
    let _ = ServerMetadata::parse(data, "https://id.example");
    let (client, pending) = &*CLIENT;
    let _ = client.callback(pending, &String::from_utf8_lossy(data));
});
