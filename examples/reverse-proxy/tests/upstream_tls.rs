#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! TLS towards the members (`[pools.tls]`): HTTP/1.1 and HTTP/2 (`protocol = "h2"`, agreed
//! by ALPN) to origins that terminate TLS with rustls and serve with hyper, the members'
//! certificates verified against the pool's CA and name, a client certificate for members
//! that ask for one, and what is refused: another CA, another name, a member that does not
//! agree to `h2`, settings that do not fit together.
//!
//! gRPC over TLS with a real grpcio server is in tests/grpc.rs.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Pki, start_proxy};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// An origin behind TLS: counts the handshakes that succeeded and answers
/// `VERSION URI client-cert=BOOL`.
struct TlsOrigin {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_tls_origin(pki: &Pki, alpn: &[&[u8]], client_auth: bool) -> TlsOrigin {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut config = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&pki.ca).unwrap())
            .unwrap();
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap()
    } else {
        builder
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = handshakes.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let (_, session) = tls.get_ref();
                let h2 = session.alpn_protocol() == Some(b"h2");
                let client_cert = session.peer_certificates().is_some_and(|c| !c.is_empty());
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = format!(
                        "{:?} {} client-cert={client_cert}",
                        req.version(),
                        req.uri()
                    );
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    TlsOrigin {
        addr,
        handshakes,
        task,
    }
}

/// A proxy with one pool towards `member`, with `pool_extra` in the pool's table and
/// `[pools.tls]` holding `tls`.
fn config(member: &str, pool_extra: &str, tls: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
access_log = false
workers = 1

[[pools]]
name = "secure"
upstreams = [{{ address = "{member}" }}]
max_retries = 0
{pool_extra}
[pools.tls]
{tls}

[[routes]]
pool = "secure"
"#
    )
}

fn ca(pki: &Pki) -> String {
    format!("ca = {:?}", pki.ca.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls_verified_against_the_pool_ca() {
    let pki = Pki::new("h1");
    let origin = start_tls_origin(&pki, &[b"http/1.1"], false).await;
    let proxy = start_proxy(&config(&origin.addr.to_string(), "", &ca(&pki)));
    let client = common::client();
    for path in ["/one", "/two", "/three"] {
        let (status, _, body) = common::get(&client, &format!("http://{}{path}", proxy.addr))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, format!("HTTP/1.1 {path} client-cert=false"));
    }
    // Keep-alive: one handshake served the three requests.
    assert_eq!(origin.handshakes.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_over_tls_agreed_by_alpn_and_multiplexed() {
    let pki = Pki::new("h2");
    let origin = start_tls_origin(&pki, &[b"h2", b"http/1.1"], false).await;
    let proxy = start_proxy(&config(
        &origin.addr.to_string(),
        "protocol = \"h2\"",
        &ca(&pki),
    ));
    let client = common::client();
    let url = format!("http://{}/multi?x=1", proxy.addr);
    let calls = (0..20).map(|_| common::get(&client, &url));
    for result in futures_util::future::join_all(calls).await {
        let (status, _, body) = result.unwrap();
        assert_eq!(status, 200, "{body}");
        // HTTP/2 with `:scheme https`; `:authority` is the client's Host.
        assert_eq!(
            body,
            format!(
                "HTTP/2.0 https://{}/multi?x=1 client-cert=false",
                proxy.addr
            )
        );
    }
    assert_eq!(
        origin.handshakes.load(Ordering::SeqCst),
        1,
        "twenty requests share one HTTP/2 connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_cannot_be_verified_are_not_spoken_to() {
    let pki = Pki::new("verify");
    let other = Pki::new("other");
    let origin = start_tls_origin(&pki, &[b"h2", b"http/1.1"], false).await;
    let member = origin.addr.to_string();
    let client = common::client();
    let status = |config: String| {
        let client = client.clone();
        async move {
            let proxy = start_proxy(&config);
            common::get(&client, &format!("http://{}/x", proxy.addr))
                .await
                .unwrap()
                .0
        }
    };
    // A certificate from another CA.
    assert_eq!(status(config(&member, "", &ca(&other))).await, 502);
    // The right CA, but a name the certificate does not hold.
    let wrong_name = format!("{}\nserver_name = \"api.example\"", ca(&pki));
    assert_eq!(status(config(&member, "", &wrong_name)).await, 502);
    // The system's roots do not know the test CA.
    assert_eq!(status(config(&member, "", "")).await, 502);
    assert_eq!(origin.handshakes.load(Ordering::SeqCst), 0);
    // A name the certificate holds, checked instead of the address's IP.
    let right_name = format!("{}\nserver_name = \"localhost\"", ca(&pki));
    assert_eq!(status(config(&member, "", &right_name)).await, 200);
    // By name in the address.
    let by_name = format!("localhost:{}", origin.addr.port());
    assert_eq!(status(config(&by_name, "", &ca(&pki))).await, 200);
    assert_eq!(origin.handshakes.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_is_refused_when_the_member_does_not_agree() {
    let pki = Pki::new("alpn");
    let origin = start_tls_origin(&pki, &[b"http/1.1"], false).await;
    let proxy = start_proxy(&config(
        &origin.addr.to_string(),
        "protocol = \"h2\"",
        &ca(&pki),
    ));
    let (status, _, _) = common::get(&common::client(), &format!("http://{}/x", proxy.addr))
        .await
        .unwrap();
    assert_eq!(status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_for_members_that_ask() {
    let pki = Pki::new("mtls");
    let client = common::client();
    for protocol in ["http1", "h2"] {
        let origin = start_tls_origin(&pki, &[b"h2", b"http/1.1"], true).await;
        let member = origin.addr.to_string();
        let extra = format!("protocol = \"{protocol}\"");
        let without = start_proxy(&config(&member, &extra, &ca(&pki)));
        let (status, _, _) = common::get(&client, &format!("http://{}/x", without.addr))
            .await
            .unwrap();
        assert_eq!(status, 502, "{protocol}: no client certificate");
        let with = format!(
            "{}\ncert = {:?}\nkey = {:?}",
            ca(&pki),
            pki.client_cert.display().to_string(),
            pki.client_key.display().to_string()
        );
        let proxy = start_proxy(&config(&member, &extra, &with));
        let (status, _, body) = common::get(&client, &format!("http://{}/x", proxy.addr))
            .await
            .unwrap();
        assert_eq!(status, 200, "{protocol}: {body}");
        assert!(body.ends_with("client-cert=true"), "{protocol}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_settings_are_checked() {
    let member = "127.0.0.1:9";
    for (extra, tls, expected) in [
        ("protocol = \"h2c\"", "", "h2c\" is cleartext"),
        ("", "cert = \"c.pem\"", "go together"),
        ("", "server_name = \"not a name!\"", "neither a DNS name"),
        ("", "verify = false", "unknown field"),
    ] {
        let error = reverse_proxy::ServerConfig::parse(&config(member, extra, tls)).unwrap_err();
        assert!(error.contains(expected), "{extra} {tls}: {error}");
    }
    let no_tls = config(member, "protocol = \"h2\"", "").replace("[pools.tls]", "");
    let error = reverse_proxy::ServerConfig::parse(&no_tls).unwrap_err();
    assert!(error.contains("needs [pools.tls]"), "{error}");
    // A CA file that is not there, or holds no certificate, stops the start.
    let pki = Pki::new("files");
    for (tls, expected) in [
        ("ca = \"/nonexistent/ca.pem\"".to_owned(), "tls.ca"),
        (
            format!("ca = {:?}", pki.server_key.display().to_string()),
            "no certificate",
        ),
    ] {
        let parsed = reverse_proxy::ServerConfig::parse(&config(member, "", &tls)).unwrap();
        let error = match reverse_proxy::Proxy::new(&parsed).await {
            Ok(_) => panic!("{tls}: started"),
            Err(error) => error,
        };
        assert!(error.contains(expected), "{tls}: {error}");
    }
}
