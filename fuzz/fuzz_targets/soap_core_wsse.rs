//! A `wsse:Security` header block of any content checked by `Security::verify`.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use soap_core::{CredentialStore, Security, XmlLimits, xml};

struct Users;
impl CredentialStore for Users {
    fn password(&self, user: &str) -> Option<String> {
        (user == "ada").then(|| "s3cret".to_owned())
    }
}

static SECURITY: LazyLock<Security> = LazyLock::new(|| Security::new(Users).max_nonces(64));

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = xml::parse(data, &XmlLimits::default()) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let _ = SECURITY.verify(&block, now);
    }
});
