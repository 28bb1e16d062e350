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
