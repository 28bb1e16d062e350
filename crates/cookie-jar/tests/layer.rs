//! The tower layer: the handler sees the request's cookies and its changes reach the response.
#![cfg(feature = "tower")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::sync::Arc;

use cookie_jar::{CookieLayer, Cookies, Key, KeyRing, SetCookie};
use http::header::{COOKIE, SET_COOKIE};
use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::test(flavor = "current_thread")]
async fn handler_changes_become_set_cookie_headers() {
    let ring = Arc::new(KeyRing::new(Key::generate()));
    let signed = ring.sign(SetCookie::build("uid", "7").finish().unwrap());
    let handler_ring = ring.clone();
    let svc = ServiceBuilder::new()
        .layer(CookieLayer::new())
        .service(service_fn(move |req: Request<()>| {
            let ring = handler_ring.clone();
            async move {
                let cookies = req.extensions().get::<Cookies>().cloned().unwrap();
                let uid = cookies.get_signed("uid", &ring).unwrap_or_default();
                cookies.remove("old").unwrap();
                cookies.add_private(
                    SetCookie::build("seen", uid.clone()).finish().unwrap(),
                    &ring,
                );
                Ok::<_, Infallible>(Response::new(uid))
            }
        }));
    let req = Request::builder()
        .header(COOKIE, format!("old=1; uid={}", signed.value()))
        .body(())
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.body(), "7");
    let set: Vec<_> = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 2, "{set:?}");
    assert!(
        set[0].starts_with("old=;") && set[0].contains("Max-Age=0"),
        "{set:?}"
    );
    let sealed = set[1]
        .strip_prefix("seen=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(ring.open("seen", sealed).as_deref(), Some("7"));
}

#[tokio::test(flavor = "current_thread")]
async fn untouched_jar_sets_nothing() {
    let svc = ServiceBuilder::new()
        .layer(CookieLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    let req = Request::builder().header(COOKIE, "a=1").body(()).unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert!(resp.headers().get(SET_COOKIE).is_none());
}
