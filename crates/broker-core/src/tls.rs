//! TLS for `amqps://`, `mqtts://` and `rediss://` URLs (feature `tls`): the files named in the URL's
//! query, with RabbitMQ's URI parameter names (`cacertfile`, `certfile`, `keyfile`), read
//! once when the broker is made.
//!
//! The server's certificate is always verified, against the system's roots and the CA
//! certificates of `cacertfile`, for the URL's host; there is no parameter to skip it.
//! `certfile` and `keyfile` (PEM) give a client certificate to servers that ask for one.
//! TLS is rustls with aws-lc-rs, the stack `async-nats` (feature `nats`) already brings,
//! so no second TLS library is linked.

use crate::{Error, Result};

/// The TLS files a URL names, as written (percent-decoded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM CA certificates to trust besides the system's roots.
    pub(crate) ca: Option<String>,
    /// PEM client certificate chain.
    pub(crate) cert: Option<String>,
    /// PEM private key of `cert`.
    pub(crate) key: Option<String>,
}

impl TlsFiles {
    /// Whether the URL named any TLS file.
    pub(crate) fn is_empty(&self) -> bool {
        self.ca.is_none() && self.cert.is_none() && self.key.is_none()
    }

    /// `cacertfile`, `certfile` and `keyfile` from `url`'s query; other parameters are
    /// left to the client.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when only one of `certfile` and `keyfile` is given, or a
    /// value is not valid percent-encoded UTF-8.
    pub(crate) fn from_url(url: &str) -> Result<Self> {
        let mut files = Self::default();
        let query = url
            .split_once('?')
            .map_or("", |(_, query)| query)
            .split('#')
            .next()
            .unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "cacertfile" => &mut files.ca,
                "certfile" => &mut files.cert,
                "keyfile" => &mut files.key,
                _ => continue,
            };
            *slot = Some(percent_decode(value).ok_or(Error::InvalidConfig(
                "a TLS file in the URL is not valid percent-encoded UTF-8",
            ))?);
        }
        if files.cert.is_some() != files.key.is_some() {
            return Err(Error::InvalidConfig(
                "certfile and keyfile go together (a client certificate and its key)",
            ));
        }
        Ok(files)
    }

    /// The TLS files of `url`, for a URL whose scheme asks for TLS (`secure`, e.g.
    /// `amqps`) or not: `None` for a plain URL.
    ///
    /// # Errors
    /// As [`from_url`](Self::from_url); [`Error::InvalidConfig`] for TLS files on a plain
    /// URL (`plain_error`), [`Error::FeatureDisabled`] for a TLS scheme without feature
    /// `tls`.
    pub(crate) fn for_url(
        url: &str,
        secure: Option<&'static str>,
        plain_error: &'static str,
    ) -> Result<Option<Self>> {
        let files = Self::from_url(url)?;
        match secure {
            None if files.is_empty() => Ok(None),
            None => Err(Error::InvalidConfig(plain_error)),
            #[cfg(feature = "tls")]
            Some(_) => Ok(Some(files)),
            #[cfg(not(feature = "tls"))]
            Some(scheme) => Err(Error::FeatureDisabled {
                scheme,
                feature: "tls",
            }),
        }
    }

    #[cfg(feature = "tls")]
    fn read(path: &str, what: &str) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::Tls(format!("{what} {path}: {e}")))
    }

    /// A rustls client configuration: the system's roots and `ca`, the client certificate
    /// when given, ALPN left empty.
    ///
    /// # Errors
    /// [`Error::Tls`] when a file cannot be read or holds no certificate or key, or no
    /// root at all is found.
    #[cfg(all(feature = "tls", feature = "mqtt"))]
    pub(crate) fn rustls_config(&self) -> Result<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(ca) = &self.ca {
            let pem = Self::read(ca, "cacertfile")?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("cacertfile {ca}: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Tls(format!("cacertfile {ca}: no certificate")));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("cacertfile {ca}: {e}")))?;
            }
        }
        if roots.is_empty() {
            return Err(Error::Tls(
                "no system roots found; name the server's CA with cacertfile".to_owned(),
            ));
        }
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let pem = Self::read(cert, "certfile")?;
                let chain = CertificateDer::pem_slice_iter(&pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::Tls(format!("certfile {cert}: {e}")))?;
                let key_pem = Self::read(key, "keyfile")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|e| Error::Tls(format!("keyfile {key}: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| Error::Tls(format!("certfile {cert}: {e}")))
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    /// lapin's TLS settings: `ca` added to the system's roots, the client certificate
    /// when given.
    ///
    /// # Errors
    /// [`Error::Tls`] when a file cannot be read.
    #[cfg(all(feature = "tls", feature = "amqp"))]
    pub(crate) fn lapin_config(&self) -> Result<lapin::tcp::OwnedTLSConfig> {
        let cert_chain = match &self.ca {
            Some(ca) => Some(
                String::from_utf8(Self::read(ca, "cacertfile")?)
                    .map_err(|_| Error::Tls(format!("cacertfile {ca}: not PEM text")))?,
            ),
            None => None,
        };
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(lapin::tcp::OwnedIdentity::PKCS8 {
                pem: Self::read(cert, "certfile")?,
                key: Self::read(key, "keyfile")?,
            }),
            _ => None,
        };
        Ok(lapin::tcp::OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }
}

#[cfg(feature = "redis")]
impl TlsFiles {
    /// A redis client for the `rediss://` `url`: `ca` as the only trusted root when given
    /// (the redis client's rule; the system's roots otherwise), the client certificate when
    /// given.
    ///
    /// The redis client builds its rustls configuration with the process's default crypto
    /// provider, so this installs aws-lc-rs (the provider this crate links) as the default
    /// unless the application has installed one already.
    ///
    /// # Errors
    /// [`Error::Tls`] when a file cannot be read or used.
    #[cfg(feature = "tls")]
    pub(crate) fn redis_client(&self, url: &str) -> Result<redis::Client> {
        // Err means a provider is installed already, which is what is needed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let root_cert = match &self.ca {
            Some(ca) => Some(Self::read(ca, "cacertfile")?),
            None => None,
        };
        let client_tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: Self::read(cert, "certfile")?,
                client_key: Self::read(key, "keyfile")?,
            }),
            _ => None,
        };
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| Error::Tls(e.to_string()))
    }

    /// Without feature `tls`, [`for_url`](Self::for_url) refuses `rediss://` before this.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn redis_client(&self, _url: &str) -> Result<redis::Client> {
        Err(Error::FeatureDisabled {
            scheme: "rediss",
            feature: "tls",
        })
    }
}

/// `%XX` sequences decoded (and `+` kept as it is, as in a path); `None` for a bad escape
/// or a result that is not UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn files_come_from_the_query() {
        let files = TlsFiles::from_url(
            "amqps://u:p@h:5671/%2f?heartbeat=10&cacertfile=/etc/ca%20dir/ca.pem&certfile=c.pem&keyfile=k.pem",
        )
        .unwrap();
        assert_eq!(files.ca.as_deref(), Some("/etc/ca dir/ca.pem"));
        assert_eq!(files.cert.as_deref(), Some("c.pem"));
        assert_eq!(files.key.as_deref(), Some("k.pem"));
        assert!(TlsFiles::from_url("mqtts://h").unwrap().is_empty());
        assert!(TlsFiles::from_url("mqtts://h?certfile=c.pem").is_err());
        assert!(TlsFiles::from_url("mqtts://h?cacertfile=%zz").is_err());
        assert!(TlsFiles::from_url("mqtts://h?cacertfile=%ff").is_err());
        assert!(TlsFiles::from_url("mqtts://h?cacertfile=%4").is_err());
    }
}
