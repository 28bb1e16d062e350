//! A client-side store that persists between runs.
//!
//! Run with: `cargo run -p cookie-jar --example persistent_client [FILE]`
//! Try: run it twice; the second run loads the persistent cookie from FILE (default
//! `cookies.json` in the temp directory) while the session cookie is gone, like a browser
//! restart.
//!
//! No network: the responses are simulated, as a crawler's HTTP client would hand them over.

use cookie_jar::{CookieStore, RequestContext};
use http::{HeaderMap, HeaderValue, header::SET_COOKIE};
use time::OffsetDateTime;
use url::Url;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("cookies.json"));
    let now = OffsetDateTime::now_utc();
    let ctx = RequestContext::same_site();
    let mut store = match std::fs::read_to_string(&file) {
        Ok(json) => {
            let store = CookieStore::from_json(&json, now)?;
            println!("loaded {} cookie(s) from {}", store.len(), file.display());
            store
        }
        Err(_) => CookieStore::new(),
    };

    let login = Url::parse("https://accounts.example.com/login")?;
    let mut response = HeaderMap::new();
    response.append(
        SET_COOKIE,
        HeaderValue::from_static("session=s1; Secure; HttpOnly; Path=/"),
    );
    response.append(
        SET_COOKIE,
        HeaderValue::from_static(
            "remember=r1; Domain=example.com; Path=/; Max-Age=2592000; Secure",
        ),
    );
    response.append(SET_COOKIE, HeaderValue::from_static("bad=1; Domain=com")); // public suffix: ignored
    let stored = store.store_response(&login, &response, &ctx, now);
    println!("stored {stored} of 3 Set-Cookie headers");

    for url in [
        "https://accounts.example.com/",
        "https://www.example.com/",
        "https://example.org/",
    ] {
        let header = store.cookie_header(&Url::parse(url)?, &ctx, now);
        println!(
            "{url} -> Cookie: {}",
            header
                .as_ref()
                .map_or("(none)", |h| h.to_str().unwrap_or("?"))
        );
    }

    // Like a browser on exit: keep persistent cookies only.
    std::fs::write(&file, store.to_json(false, now)?)?;
    println!("saved persistent cookies to {}", file.display());
    Ok(())
}
