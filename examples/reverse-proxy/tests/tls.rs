#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! TLS termination with the development certificate made at start.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_tls_with_a_development_certificate() {
    let origin = common::start_origin("o", Duration::ZERO).await;
    let cert_path = std::env::temp_dir().join(format!("rp-dev-cert-{}.pem", std::process::id()));
    let proxy = common::start_proxy(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[server.tls]\ndev_cert_out = \"{}\"\n[[pools]]\nname = \"a\"\nupstreams = [{{ address = \"{}\" }}]\n[[routes]]\npool = \"a\"\n",
        cert_path.display(),
        origin.addr
    ));
    use rustls::pki_types::pem::PemObject as _;
    let cert = rustls::pki_types::CertificateDer::from_pem_file(&cert_path).unwrap();
    let _ = std::fs::remove_file(&cert_path);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /secure HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("origin o /secure"), "{response}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"));
}
