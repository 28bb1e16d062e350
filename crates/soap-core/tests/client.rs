//! Our client against our service, both SOAP versions, with faults and WS-Security.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use soap_core::{Client, Error, FaultCode, Security, SoapVersion, UsernameToken, WSSE_NS};
use support::*;

fn order(quantity: u32) -> PlaceOrder {
    PlaceOrder {
        customer: "c-1".into(),
        lines: vec![
            Line {
                sku: "A-1".into(),
                quantity,
            },
            Line {
                sku: "B-2".into(),
                quantity: 1,
            },
        ],
        note: Some("leave at the door".into()),
    }
}

fn roundtrip(
    service: &soap_core::SoapService,
    client: &Client,
    op: &str,
    value: &PlaceOrder,
    now: SystemTime,
) -> Result<PlaceOrderResponse, Error> {
    let action = format!("{NS}/{op}");
    let request = client.request_with_action(op, &action, value, now)?;
    let (parts, body) = request.into_parts();
    let response = service.handle(&parts, &body, now);
    client.response(&response)
}

fn client(version: SoapVersion) -> Client {
    Client::new("http://shop.example/soap".parse().unwrap(), NS, version)
}

#[test]
fn typed_calls_over_both_versions() {
    let s = service();
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let out = roundtrip(
            &s,
            &client(version),
            "placeOrder",
            &order(2),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(out.lines, order(2).lines);
        assert_eq!(out.tracking, None);
        assert_eq!(out.status, Status::Pending);
    }
}

#[test]
fn the_soap12_action_travels_in_the_media_type() {
    let r = client(SoapVersion::V12)
        .request("placeOrder", &order(1))
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/soap+xml; charset=utf-8; action=\"urn:example:orders/placeOrder\""
    );
    assert!(r.headers().get("soapaction").is_none());
}

#[test]
fn faults_come_back_typed() {
    let s = service();
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let err = roundtrip(
            &s,
            &client(version),
            "placeOrder",
            &order(50),
            SystemTime::now(),
        )
        .unwrap_err();
        let Error::Fault(fault) = err else {
            panic!("{err:?}")
        };
        assert_eq!(fault.code, FaultCode::Sender);
        let detail: OutOfStock = fault.detail("outOfStock").unwrap().unwrap();
        assert_eq!(detail.sku, "A-1");
    }
}

#[test]
fn a_non_soap_response_is_an_unexpected_response() {
    let response = http::Response::builder()
        .status(502)
        .body(Bytes::from_static(b"<html>bad gateway</html>"))
        .unwrap();
    let err = client(SoapVersion::V11)
        .response::<PlaceOrderResponse, _>(&response)
        .unwrap_err();
    assert!(matches!(err, Error::UnexpectedResponse { status: 502, .. }));
}

fn security_code(err: Error) -> String {
    let Error::Fault(fault) = err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.code, FaultCode::Sender);
    let (ns, name) = fault.subcodes[0].clone();
    assert_eq!(ns, WSSE_NS);
    name
}

#[test]
fn username_token_text_and_digest_succeed_and_a_wrong_password_fails() {
    let s = service();
    let now = SystemTime::now();
    for version in [SoapVersion::V11, SoapVersion::V12] {
        for token in [
            UsernameToken::new("ada", "s3cret"),
            UsernameToken::new("ada", "s3cret").digest(),
        ] {
            let c = client(version).username_token(token.timestamp(Duration::from_secs(60)));
            roundtrip(&s, &c, "placeSecureOrder", &order(1), now).unwrap();
        }
        for token in [
            UsernameToken::new("ada", "wrong"),
            UsernameToken::new("ada", "wrong").digest(),
            UsernameToken::new("bob", "s3cret"),
        ] {
            let c = client(version).username_token(token);
            let err = roundtrip(&s, &c, "placeSecureOrder", &order(1), now).unwrap_err();
            assert_eq!(security_code(err), "FailedAuthentication");
        }
    }
}

#[test]
fn a_secured_operation_without_a_token_is_invalid_security() {
    let err = roundtrip(
        &service(),
        &client(SoapVersion::V12),
        "placeSecureOrder",
        &order(1),
        SystemTime::now(),
    )
    .unwrap_err();
    assert_eq!(security_code(err), "InvalidSecurity");
}

#[test]
fn a_replayed_nonce_is_refused_with_status_and_code() {
    let s = service();
    let now = SystemTime::now();
    let header = UsernameToken::new("ada", "s3cret")
        .digest()
        .to_header_with_nonce(now, b"0123456789abcdef")
        .unwrap();
    let body = envelope(
        SoapVersion::V12,
        &header.to_xml(),
        &ORDER.replace("placeOrder", "placeSecureOrder"),
    );
    assert_eq!(post_at(&s, V12, None, body.as_bytes(), now).status, 200);
    let reply = post_at(
        &s,
        V12,
        None,
        body.as_bytes(),
        now + Duration::from_secs(10),
    );
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("FailedAuthentication"),
        "{}",
        reply.body
    );
    // In SOAP 1.1 the WS-Security code is the faultcode itself.
    let body11 = envelope(
        SoapVersion::V11,
        &header.to_xml(),
        &ORDER.replace("placeOrder", "placeSecureOrder"),
    );
    let reply = post_at(
        &s,
        V11,
        None,
        body11.as_bytes(),
        now + Duration::from_secs(20),
    );
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains(":FailedAuthentication</faultcode>"),
        "{}",
        reply.body
    );
}

#[test]
fn an_expired_timestamp_or_stale_created_is_message_expired() {
    let s = service();
    let then = SystemTime::now() - Duration::from_secs(3600);
    let c = client(SoapVersion::V12)
        .username_token(UsernameToken::new("ada", "s3cret").timestamp(Duration::from_secs(60)));
    let request = c
        .request_with_action(
            "placeSecureOrder",
            &format!("{NS}/placeSecureOrder"),
            &order(1),
            then,
        )
        .unwrap();
    let (parts, body) = request.into_parts();
    let response = s.handle(&parts, &body, SystemTime::now());
    assert_eq!(response.status(), 400);
    assert_eq!(
        security_code(c.response::<PlaceOrderResponse, _>(&response).unwrap_err()),
        "MessageExpired"
    );
    // A token from the future beyond the skew.
    let future = SystemTime::now() + Duration::from_secs(3600);
    let c = client(SoapVersion::V12).username_token(UsernameToken::new("ada", "s3cret").digest());
    let request = c
        .request_with_action(
            "placeSecureOrder",
            &format!("{NS}/placeSecureOrder"),
            &order(1),
            future,
        )
        .unwrap();
    let (parts, body) = request.into_parts();
    let response = s.handle(&parts, &body, SystemTime::now());
    assert_eq!(
        security_code(c.response::<PlaceOrderResponse, _>(&response).unwrap_err()),
        "MessageExpired"
    );
}

#[test]
fn password_types_can_be_turned_off_and_the_nonce_cache_is_bounded() {
    let security = Security::new(Users).allow_text(false).max_nonces(2);
    let now = SystemTime::now();
    let text = UsernameToken::new("ada", "s3cret").to_header(now).unwrap();
    assert_eq!(
        security.verify(&text, now).unwrap_err().code(),
        "UnsupportedSecurityToken"
    );
    for _ in 0..2 {
        let h = UsernameToken::new("ada", "s3cret")
            .digest()
            .to_header(now)
            .unwrap();
        security.verify(&h, now).unwrap();
    }
    // Full of live nonces: refused (fails closed, memory bounded).
    let h = UsernameToken::new("ada", "s3cret")
        .digest()
        .to_header(now)
        .unwrap();
    assert_eq!(
        security.verify(&h, now).unwrap_err().code(),
        "FailedAuthentication"
    );
    // Once they expire, room again.
    let later = now + Duration::from_secs(3600);
    let h = UsernameToken::new("ada", "s3cret")
        .digest()
        .to_header(later)
        .unwrap();
    security.verify(&h, later).unwrap();
}

#[test]
fn a_digest_matches_the_profile_formula() {
    // Base64(SHA-1(nonce + created + password)), computed independently here.
    use base64::Engine as _;
    use sha1::Digest as _;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let h = UsernameToken::new("ada", "s3cret")
        .digest()
        .to_header_with_nonce(now, b"nonce-bytes")
        .unwrap();
    let token = h.child(WSSE_NS, "UsernameToken").unwrap();
    let created = token.child(soap_core::WSU_NS, "Created").unwrap().text();
    assert_eq!(created, "2023-11-14T22:13:20Z");
    let mut sha = sha1::Sha1::new();
    sha.update(b"nonce-bytes");
    sha.update(created.as_bytes());
    sha.update(b"s3cret");
    let expected = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    assert_eq!(token.child(WSSE_NS, "Password").unwrap().text(), expected);
}
