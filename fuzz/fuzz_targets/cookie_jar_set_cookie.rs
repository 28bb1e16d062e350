//! `Set-Cookie` parsing and storage in both modes, then building the `Cookie` header back.
#![no_main]

use cookie_jar::{CookieStore, Mode, RequestContext};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(url) = url::Url::parse("https://www.example.co.uk/a/b") else {
        return;
    };
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(15_000);
    for mode in [Mode::Rfc6265, Mode::Rfc6265bis] {
        let mut store = CookieStore::with_mode(mode);
        store.store(
            &url,
            data.split(|b| *b == b'\n'),
            &RequestContext::same_site(),
            now,
        );
        let _ = store.cookie_header(&url, &RequestContext::cross_site(), now);
    }
});
