//! What an application takes from where it is deployed, the same on every instance behind
//! one reverse proxy: whose forwarded client address to believe, and the secret its login
//! forms are signed with.
//!
//! `TRUSTED_PROXIES` lists the proxies whose forwarding header is believed, as addresses
//! or networks separated by commas (`10.0.0.0/8, 192.0.2.7`); unset or empty trusts nobody,
//! so every client is its TCP peer. `CLIENT_ADDRESS_HEADER` names the one header those
//! proxies write the client's address to: `x-forwarded-for` (the default) or `forwarded`.
//! The application asks proxy-core's `client_address` for each request. `LOGIN_CSRF_SECRET`
//! (hex or base64, see [`secret`](crate::secret)) signs login forms; unset, each process
//! makes a random one, and a form shown by one instance is refused by another.
use proxy_core::{ClientAddressHeader, TrustedProxies};

use crate::Error;

/// Where an app is deployed (see the module docs). The default trusts no proxy and has no
/// configured secret.
#[derive(Clone, Default)]
pub struct Deployment {
    /// The proxies whose forwarded client address is believed (`client_address`).
    pub trusted_proxies: TrustedProxies,
    /// The secret login forms' CSRF tokens are signed with (32 bytes or more), shared by
    /// every instance; `None`: a random one per process.
    pub login_csrf_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.debug_struct("Deployment")
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "login_csrf_secret",
                &self.login_csrf_secret.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

impl Deployment {
    /// From `TRUSTED_PROXIES`, `CLIENT_ADDRESS_HEADER` and `LOGIN_CSRF_SECRET`; a malformed
    /// value is a usage error that names its variable.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self {
            trusted_proxies: trusted_proxies()?,
            login_csrf_secret: crate::secret("LOGIN_CSRF_SECRET")?,
        })
    }
}

/// The trusted proxies from `TRUSTED_PROXIES` and `CLIENT_ADDRESS_HEADER`.
fn trusted_proxies() -> Result<TrustedProxies, Error> {
    let list = std::env::var("TRUSTED_PROXIES").unwrap_or_default();
    let header = std::env::var("CLIENT_ADDRESS_HEADER").ok();
    trusted_proxies_from(&list, header.as_deref())
}

/// The trusted proxies from the variables' values.
fn trusted_proxies_from(list: &str, header: Option<&str>) -> Result<TrustedProxies, Error> {
    let blocks = list
        .split(',')
        .map(str::trim)
        .filter(|block| !block.is_empty());
    let trusted = TrustedProxies::parse(blocks)
        .map_err(|error| Error::usage(format!("TRUSTED_PROXIES={list:?}: {error}")))?;
    match header {
        None => Ok(trusted),
        Some(name) => ClientAddressHeader::from_name(name.trim())
            .map(|header| trusted.with_client_header(header))
            .map_err(|error| Error::usage(format!("CLIENT_ADDRESS_HEADER: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_not_debug_printed() {
        let deployment = Deployment {
            login_csrf_secret: Some(b"0123456789abcdef0123456789abcdef".to_vec()),
            ..Deployment::default()
        };
        let printed = format!("{deployment:?}");
        assert!(!printed.contains("48, 49"), "{printed}");
        assert!(printed.contains("Some(\"..\")"), "{printed}");
    }

    #[test]
    fn the_setting_is_parsed_and_bad_values_name_their_variable() {
        let nobody = trusted_proxies_from("", None).unwrap();
        assert_eq!(nobody, TrustedProxies::none());
        let some = trusted_proxies_from(" 10.0.0.0/8, 192.0.2.7 ,", Some("Forwarded")).unwrap();
        assert!(some.contains("10.1.2.3".parse().unwrap()));
        assert!(some.contains("192.0.2.7".parse().unwrap()));
        assert!(!some.contains("192.0.2.8".parse().unwrap()));
        assert_eq!(some.client_header(), ClientAddressHeader::Forwarded);
        let bad = trusted_proxies_from("10.0.0.0/99", None).unwrap_err();
        assert!(bad.to_string().starts_with("TRUSTED_PROXIES="), "{bad}");
        let bad = trusted_proxies_from("", Some("x-real-ip")).unwrap_err();
        assert!(
            bad.to_string().starts_with("CLIENT_ADDRESS_HEADER"),
            "{bad}"
        );
    }
}
