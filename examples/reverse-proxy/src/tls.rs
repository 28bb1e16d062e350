//! TLS termination: a rustls server configuration (aws-lc-rs) from the configured PEM files,
//! or from a development certificate made at start with rcgen.

use std::sync::Arc;

use crate::config;

/// The acceptor for `[server.tls]`; ALPN offers `h2` before `http/1.1` when `h2` is set.
pub(crate) fn acceptor(
    tls: &config::TlsConfig,
    h2: bool,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let (certs, key) = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("server.tls.cert {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("server.tls.key {key}: {e}"))?;
            (certs, key)
        }
        (None, None) => {
            let made = rcgen::generate_simple_self_signed(tls.dev_names.clone())
                .map_err(|e| format!("cannot make a development certificate: {e}"))?;
            tracing::warn!(names = ?tls.dev_names, "TLS with a development certificate made at start; configure cert and key for production");
            if let Some(out) = &tls.dev_cert_out {
                std::fs::write(out, made.cert.pem())
                    .map_err(|e| format!("server.tls.dev_cert_out {out}: {e}"))?;
            }
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            (vec![made.cert.der().clone()], key)
        }
        _ => {
            return Err(
                "server.tls: set both cert and key, or neither for a development certificate"
                    .to_owned(),
            );
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("server.tls: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("server.tls: {e}"))?;
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// TLS towards a pool's members: the connector (roots, client certificate, ALPN) and the
/// name to check when the pool sets one.
pub(crate) struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    server_name: Option<rustls::pki_types::ServerName<'static>>,
    h2: bool,
}

impl UpstreamTls {
    /// The connector for `[pools.tls]`. ALPN offers only what the pool speaks: `h2` for
    /// `protocol = "h2"`, `http/1.1` otherwise. Errors name the field and the file.
    pub(crate) fn new(
        pool: &str,
        tls: &config::UpstreamTlsConfig,
        h2: bool,
    ) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let at = format!("pool {pool:?}: tls");
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca {
            Some(ca) => {
                let certs = CertificateDer::pem_file_iter(ca)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{at}.ca {ca}: {e}"))?;
                for cert in certs {
                    roots.add(cert).map_err(|e| format!("{at}.ca {ca}: {e}"))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(format!(
                        "{at}: no CA given (tls.ca) and no system roots found{}",
                        found
                            .errors
                            .first()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        if roots.is_empty() {
            return Err(format!("{at}.ca: no certificate in the file"));
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{at}: {e}"))?
        .with_root_certificates(roots);
        let mut config = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                let certs = CertificateDer::pem_file_iter(cert)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{at}.cert {cert}: {e}"))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("{at}.key {key}: {e}"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("{at}.cert: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if h2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let server_name = tls
            .server_name
            .as_deref()
            .map(|name| {
                ServerName::try_from(name)
                    .map(|n| n.to_owned())
                    .map_err(|e| format!("{at}.server_name {name:?}: {e}"))
            })
            .transpose()?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
            h2,
        })
    }

    /// The TLS handshake with the member at `address` (`HOST:PORT`) over `stream`: the
    /// certificate checked against the pool's name or the address's host, and, for HTTP/2,
    /// `h2` agreed by ALPN (a member that does not agree is refused rather than spoken to
    /// in a protocol it did not choose).
    pub(crate) async fn connect(
        &self,
        address: &str,
        stream: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                let host = address
                    .rsplit_once(':')
                    .map_or(address, |(host, _port)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| {
                        format!("{host:?} is not a name to check a certificate against: {e}")
                    })?
                    .to_owned()
            }
        };
        let stream = self
            .connector
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())?;
        if self.h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("the member did not agree to h2 in ALPN".to_owned());
        }
        Ok(stream)
    }
}
