//! The provider served in this process, from chosen peer addresses: login throttling
//! behind a reverse proxy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::ThrottlePolicy;
use oauth_provider::{App, Settings};
use proxy_core::TrustedProxies;
use serve::testing::submit;

/// Issue 14, finding 6: login throttling counted the TCP peer, so behind our own reverse
/// proxy every user shared the proxy's count. With the proxy trusted, each forwarded
/// client has its own; without, a client's own `X-Forwarded-For` changes nothing.
#[tokio::test]
async fn throttling_counts_the_client_a_trusted_proxy_forwards() {
    // Five failures per address; every guess names another user, so the per-account
    // count never decides.
    let app = |trusted: &[&str]| {
        let trusted_proxies = TrustedProxies::parse(trusted.iter().copied()).unwrap();
        let throttle = ThrottlePolicy {
            max_address_failures: 5,
            ..ThrottlePolicy::default()
        };
        let settings = Settings {
            deployment: serve::Deployment {
                trusted_proxies,
                ..serve::Deployment::default()
            },
            throttle,
            ..Settings::new("http://127.0.0.1:8090")
        };
        Arc::new(App::new(settings).unwrap())
    };
    let mut user = 0;
    let mut login = async |app: &Arc<App>, peer: &str, client: &str| {
        user += 1;
        let fields = format!("username=user{user}&password=wrong");
        let peer: SocketAddr = peer.parse().unwrap();
        let headers = [("x-forwarded-for", client)];
        submit(app, "/", "/login", &fields, peer, &headers)
            .await
            .status
    };

    let behind_proxy = app(&["192.0.2.10"]);
    for _ in 0..5 {
        assert_eq!(
            login(&behind_proxy, "192.0.2.10:1", "198.51.100.1").await,
            401
        );
    }
    assert_eq!(
        login(&behind_proxy, "192.0.2.10:1", "198.51.100.1").await,
        429
    );
    assert_eq!(
        login(&behind_proxy, "192.0.2.10:1", "198.51.100.2").await,
        401
    );

    let direct = app(&[]);
    for n in 0..5 {
        let forged = format!("203.0.113.{n}");
        assert_eq!(login(&direct, "198.51.100.7:1", &forged).await, 401);
    }
    assert_eq!(login(&direct, "198.51.100.7:1", "203.0.113.200").await, 429);
}
