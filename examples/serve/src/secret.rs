//! Secrets from the environment: keys that several instances behind one load balancer must
//! share (a form-token key, a cursor key), written as hex or base64.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::Error;

/// The bytes of the secret in the environment variable `name`, or `None` when it is unset
/// or empty. The value is hex when it is an even number of hex digits only, base64 (standard
/// or URL-safe alphabet, padding optional) otherwise; anything else is a usage error that
/// names the variable. Make one with `openssl rand -hex 32`.
pub fn secret(name: &str) -> Result<Option<Vec<u8>>, Error> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => decode_secret(value.trim())
            .map(Some)
            .ok_or_else(|| Error::usage(format!("{name} is neither hex nor base64"))),
        _ => Ok(None),
    }
}

/// Hex, else base64 (see [`secret`]).
fn decode_secret(value: &str) -> Option<Vec<u8>> {
    if value.len().is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return value
            .as_bytes()
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
            .collect();
    }
    let unpadded = value.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(unpadded)
        .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_both_base64_alphabets_decode() {
        assert_eq!(decode_secret("00ff10Ab"), Some(vec![0, 255, 16, 171]));
        assert_eq!(decode_secret("AP8Qqw=="), Some(vec![0, 255, 16, 171]));
        assert_eq!(decode_secret("AP8Qqw"), Some(vec![0, 255, 16, 171]));
        assert_eq!(decode_secret("+/+/"), Some(vec![251, 255, 191]));
        assert_eq!(decode_secret("-_-_"), Some(vec![251, 255, 191]));
        // Odd hex is read as base64; neither is refused.
        assert_eq!(decode_secret("abc"), STANDARD_NO_PAD.decode("abc").ok());
        assert_eq!(decode_secret("not a secret!"), None);
        assert_eq!(decode_secret("é"), None);
    }
}
