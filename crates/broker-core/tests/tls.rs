#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! `mqtts://` and `amqps://` (feature `tls`), with a test CA made here:
//! - a Mosquitto of the test's own with a TLS listener: the conformance suite over TLS, a
//!   server certificate from another CA refused, and a listener that requires client
//!   certificates reached only with `certfile`/`keyfile`;
//! - the machine's RabbitMQ behind a TLS front written here (TLS ends in the test, AMQP
//!   goes on to `AMQP_URL` as it is): the conformance suite over TLS, another CA refused.
//!
//! Needs the `mosquitto` binary and `AMQP_URL`; each test skips with a message when one is
//! missing and fails when `CI=true`.
#![cfg(all(
    feature = "tls",
    feature = "mqtt",
    feature = "amqp",
    feature = "conformance"
))]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use broker_core::{Broker as _, Envelope, Error, MessageId, QueueConfig};

mod support;

/// A CA and the certificates it signed, as PEM files in a directory of their own.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = std::env::temp_dir().join(format!("bk-tls-{}", MessageId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "broker-core test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let leaf = |name: &str, sans: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &*ca).unwrap();
            (
                write(&format!("{name}.pem"), cert.pem()),
                write(&format!("{name}-key.pem"), key.serialize_pem()),
            )
        };
        let (server_cert, server_key) = leaf("server", vec!["localhost".into()]);
        let (client_cert, client_key) = leaf("client", vec!["client.test".into()]);
        Self {
            ca: write("ca.pem", ca.pem()),
            server_cert,
            server_key,
            client_cert,
            client_key,
            dir,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn query(path: &std::path::Path) -> String {
    path.display()
        .to_string()
        .replace('%', "%25")
        .replace(' ', "%20")
}

fn unique(kind: &str) -> String {
    format!(
        "bk-tls-{kind}-{}",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    )
}

/// A Mosquitto of the test's own with a TLS listener for `pki`'s server certificate, and
/// its `mqtts://` URL trusting `pki`'s CA.
fn tls_mosquitto(pki: &Pki, require_client_cert: bool) -> Option<(support::OwnServer, String)> {
    tls_server(
        "mqtts",
        pki,
        require_client_cert,
        support::OwnServer::mosquitto_tls,
    )
}

/// A server of the test's own that `start` makes with `pki`'s CA and server certificate,
/// and its `scheme` URL trusting `pki`'s CA.
fn tls_server(
    scheme: &str,
    pki: &Pki,
    require_client_cert: bool,
    start: fn(
        &std::path::Path,
        &std::path::Path,
        &std::path::Path,
        bool,
    ) -> Option<support::OwnServer>,
) -> Option<(support::OwnServer, String)> {
    let server = start(
        &pki.ca,
        &pki.server_cert,
        &pki.server_key,
        require_client_cert,
    )?;
    let url = format!(
        "{scheme}://localhost:{}?cacertfile={}",
        server.port,
        query(&pki.ca)
    );
    Some((server, url))
}

#[tokio::test]
async fn mqtts_passes_the_suite_over_tls() {
    let pki = Pki::new();
    let Some((_server, url)) = tls_mosquitto(&pki, false) else {
        return;
    };
    let broker = broker_core::MqttBroker::connect(&url, &unique("mqtt"))
        .await
        .unwrap();
    let report = broker_core::conformance::run(&broker).await.unwrap();
    assert_eq!(report.passed.len(), 15, "{report:?}");
    assert_eq!(broker.reconnects(), 0);
    // The same URL through AnyBroker.
    let any = broker_core::AnyBroker::connect(&url, &unique("any"))
        .await
        .unwrap();
    any.declare("q", &QueueConfig::default()).await.unwrap();
    any.publish("q", Envelope::new("over tls")).await.unwrap();
    let got = any
        .fetch("q", "c", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.payload().as_ref(), b"over tls");
}

/// What publishing through `url` ends with (the MQTT adapter connects on first use).
async fn mqtt_publish(url: &str) -> Result<(), Error> {
    let options = broker_core::MqttOptions::default().publish_timeout(Duration::from_secs(3));
    let broker = broker_core::MqttBroker::connect_with(url, &unique("p"), options).await?;
    broker.declare("q", &QueueConfig::default()).await?;
    broker.publish("q", Envelope::new("x")).await
}

#[tokio::test]
async fn mqtts_refuses_a_server_it_cannot_verify() {
    let pki = Pki::new();
    let other = Pki::new();
    let Some((server, good)) = tls_mosquitto(&pki, false) else {
        return;
    };
    refuses_what_it_cannot_verify(("mqtts", "mqtt"), server.port, &pki, &other, mqtt_publish).await;
    // Files that are not there are a TLS error at once.
    let error = broker_core::MqttBroker::connect("mqtts://localhost?cacertfile=/nonexistent", "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error}");
    // And the right CA works.
    mqtt_publish(&good).await.unwrap();
}

/// What every TLS scheme refuses (`schemes`: the TLS one and the plain one) from the
/// server on `port`, which holds a certificate `pki` signed for `localhost`: a CA that did
/// not sign it (`other`), a name the certificate lacks, and the plain protocol.
async fn refuses_what_it_cannot_verify(
    (secure, plain): (&str, &str),
    port: u16,
    pki: &Pki,
    other: &Pki,
    round_trip: impl AsyncFn(&str) -> Result<(), Error>,
) {
    // Another CA: the system's roots and `other` do not know the server's.
    let url = format!(
        "{secure}://localhost:{port}?cacertfile={}",
        query(&other.ca)
    );
    let error = round_trip(&url).await.unwrap_err();
    assert!(
        matches!(&error, Error::Backend { .. } | Error::Timeout(_)),
        "{error}"
    );
    // A name the certificate does not hold (it is for `localhost`).
    let url = format!("{secure}://127.0.0.1:{port}?cacertfile={}", query(&pki.ca));
    assert!(round_trip(&url).await.is_err(), "{url}");
    // The plain protocol to the TLS port gets no session either.
    let url = format!("{plain}://localhost:{port}");
    assert!(round_trip(&url).await.is_err(), "{url}");
}

#[tokio::test]
async fn mqtts_client_certificates_for_servers_that_require_them() {
    let pki = Pki::new();
    let Some((_server, base)) = tls_mosquitto(&pki, true) else {
        return;
    };
    assert!(mqtt_publish(&base).await.is_err(), "no client certificate");
    let with = format!(
        "{base}&certfile={}&keyfile={}",
        query(&pki.client_cert),
        query(&pki.client_key)
    );
    let broker = broker_core::MqttBroker::connect(&with, &unique("mtls"))
        .await
        .unwrap();
    broker.declare("q", &QueueConfig::default()).await.unwrap();
    broker.publish("q", Envelope::new("signed")).await.unwrap();
    let got = broker
        .fetch("q", "c", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got[0].envelope.payload().as_ref(), b"signed");
}

/// A TLS front for the machine's RabbitMQ: TLS ends here, the bytes go on to `upstream`.
async fn tls_front(pki: &Pki, upstream: String) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    port
}

/// `AMQP_URL` split into what comes before the host (`user:pass@`), the host and port,
/// and the rest (`/vhost?...`).
fn amqp_parts(url: &str) -> (String, String, String) {
    let rest = url.strip_prefix("amqp://").expect("AMQP_URL is amqp://");
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (login, address) = match authority.rsplit_once('@') {
        Some((login, address)) => (format!("{login}@"), address.to_owned()),
        None => (String::new(), authority.to_owned()),
    };
    (login, address, path.to_owned())
}

#[tokio::test]
async fn amqps_passes_the_suite_through_a_tls_front() {
    let Some(url) = support::env("AMQP_URL") else {
        return;
    };
    let pki = Pki::new();
    let (login, address, path) = amqp_parts(&url);
    let port = tls_front(&pki, address).await;
    let path = if path.is_empty() { "/%2f" } else { &path };
    let separator = if path.contains('?') { '&' } else { '?' };
    let secure = format!(
        "amqps://{login}localhost:{port}{path}{separator}cacertfile={}",
        query(&pki.ca)
    );
    // Short enough for AMQP names (at most 32 bytes).
    let prefix = format!(
        "bk-tls-{}.",
        &MessageId::new().as_uuid().simple().to_string()[..16]
    );
    let broker = broker_core::AmqpBroker::connect(&secure, &prefix)
        .await
        .unwrap();
    let outcome = broker_core::conformance::run(&broker).await;
    broker.delete_topology().await.unwrap();
    let report = outcome.unwrap();
    assert_eq!(report.passed.len(), 15, "{report:?}");
    assert_eq!(broker.reconnects(), 0);

    // A CA that did not sign the front's certificate: refused at connect.
    let other = Pki::new();
    let refused = format!(
        "amqps://{login}localhost:{port}{path}{separator}cacertfile={}",
        query(&other.ca)
    );
    let error = broker_core::AmqpBroker::connect(&refused, &prefix)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error}");
    // TLS files on a plain URL are a mistake, said at once.
    let plain = format!("{url}{separator}cacertfile=/x.pem");
    assert!(matches!(
        broker_core::AmqpBroker::connect(&plain, &prefix).await,
        Err(Error::InvalidConfig(_))
    ));
}

/// A `redis-server` of the test's own with only a TLS port for `pki`'s server certificate,
/// and its `rediss://` URL trusting `pki`'s CA.
#[cfg(feature = "redis")]
fn tls_redis(pki: &Pki, require_client_cert: bool) -> Option<(support::OwnServer, String)> {
    tls_server(
        "rediss",
        pki,
        require_client_cert,
        support::OwnServer::redis_tls,
    )
}

/// What a round trip through a Redis broker at `url` ends with.
#[cfg(feature = "redis")]
async fn redis_round_trip(url: &str) -> Result<(), Error> {
    let broker = broker_core::RedisBroker::connect(url, &format!("{}:", unique("p"))).await?;
    broker.declare("q", &QueueConfig::default()).await?;
    broker.publish("q", Envelope::new("x")).await?;
    let got = broker.fetch("q", "c", 1, Duration::from_secs(5)).await?;
    assert_eq!(got.len(), 1);
    Ok(())
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn rediss_passes_the_suite_over_tls() {
    let pki = Pki::new();
    let Some((_server, url)) = tls_redis(&pki, false) else {
        return;
    };
    let broker = broker_core::RedisBroker::connect(&url, &format!("{}:", unique("redis")))
        .await
        .unwrap();
    let report = broker_core::conformance::run(&broker).await.unwrap();
    assert_eq!(report.passed.len(), 15, "{report:?}");
    // The same URL through AnyBroker, and the Redis inbox.
    let any = broker_core::AnyBroker::connect(&url, &unique("any"))
        .await
        .unwrap();
    any.declare("q", &QueueConfig::default()).await.unwrap();
    any.publish("q", Envelope::new("over tls")).await.unwrap();
    let got = any
        .fetch("q", "c", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.payload().as_ref(), b"over tls");
    let inbox = broker_core::RedisInbox::connect(&url, &unique("inbox"))
        .await
        .unwrap();
    let id = MessageId::new();
    let first = broker_core::Inbox::claim(&inbox, id, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        matches!(first, broker_core::Claim::Acquired(_)),
        "{first:?}"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn rediss_refuses_a_server_it_cannot_verify() {
    let pki = Pki::new();
    let other = Pki::new();
    let Some((server, good)) = tls_redis(&pki, false) else {
        return;
    };
    refuses_what_it_cannot_verify(
        ("rediss", "redis"),
        server.port,
        &pki,
        &other,
        redis_round_trip,
    )
    .await;
    // The redis client's switch to skip verification is off.
    let url = format!("rediss://localhost:{}/#insecure", server.port);
    assert!(redis_round_trip(&url).await.is_err());
    // A CA file that is not there is a TLS error at once; TLS files on a plain URL are a
    // configuration mistake.
    let error = broker_core::RedisBroker::connect("rediss://localhost?cacertfile=/nonexistent", "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Tls(_)), "{error}");
    let error = broker_core::RedisBroker::connect("redis://localhost?cacertfile=/x.pem", "")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidConfig(_)), "{error}");
    // And the right CA works.
    redis_round_trip(&good).await.unwrap();
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn rediss_client_certificates_for_servers_that_require_them() {
    let pki = Pki::new();
    let Some((_server, base)) = tls_redis(&pki, true) else {
        return;
    };
    assert!(
        redis_round_trip(&base).await.is_err(),
        "no client certificate"
    );
    let with = format!(
        "{base}&certfile={}&keyfile={}",
        query(&pki.client_cert),
        query(&pki.client_key)
    );
    redis_round_trip(&with).await.unwrap();
}
