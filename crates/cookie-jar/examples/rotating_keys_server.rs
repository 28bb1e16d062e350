//! A server whose signed cookie survives key rotation.
//!
//! Run with: `cargo run -p cookie-jar --example rotating_keys_server` (`PORT`, `BIND`,
//! `ROTATE_SECS` change the address and the rotation period, default 30 s).
//! Try: `curl -si -c jar -b jar http://127.0.0.1:8080/` several times, across a rotation:
//! the visit count keeps going, and the cookie is re-issued under the new key.
//!
//! Plain HTTP/1.1 over tokio, one request per connection, to keep the example free of any web
//! framework; a real server would use hyper or axum with `CookieLayer`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use cookie_jar::{DeltaJar, Key, KeyRing, SetCookie};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let rotate = std::env::var("ROTATE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let listener = TcpListener::bind(format!("{bind}:{port}"))
        .await
        .map_err(|e| format!("cannot listen on {bind}:{port}: {e} (set PORT to another port)"))?;
    println!("listening on http://{}", listener.local_addr()?);

    // The ring: current key + the previous one, rotated on a timer.
    let ring = Arc::new(RwLock::new(KeyRing::new(Key::generate())));
    let rotating = ring.clone();
    tokio::spawn(async move {
        let mut current = Key::generate();
        *rotating.write().unwrap_or_else(|e| e.into_inner()) = KeyRing::new(current.clone());
        loop {
            tokio::time::sleep(Duration::from_secs(rotate)).await;
            let previous = std::mem::replace(&mut current, Key::generate());
            let next = KeyRing::new(current.clone()).with_old_key(previous);
            *rotating.write().unwrap_or_else(|e| e.into_inner()) = next;
            eprintln!("rotated keys");
        }
    });

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (sock, _) = accepted?;
                let ring = ring.read().unwrap_or_else(|e| e.into_inner()).clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(sock, &ring).await {
                        eprintln!("connection error: {e}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("shutting down");
                return Ok(());
            }
        }
    }
}

async fn serve(mut sock: TcpStream, ring: &KeyRing) -> Result<(), Box<dyn std::error::Error>> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = sock.read(&mut buf).await?;
    let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
    let mut headers = HeaderMap::new();
    for line in head.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.trim().as_bytes()),
                HeaderValue::from_str(v.trim()),
            )
        {
            headers.append(k, v);
        }
    }
    let mut jar = DeltaJar::from_headers(&headers);
    let raw = jar.get("visits").map(str::to_owned);
    let visits: u64 = jar
        .get_signed("visits", ring)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        + 1;
    let reissued = raw
        .as_deref()
        .is_some_and(|v| ring.needs_reissue("visits", v));
    // Local development runs on http://127.0.0.1, which browsers treat as secure.
    jar.add_signed(
        SetCookie::build("visits", visits.to_string()).finish()?,
        ring,
    );
    let body = format!(
        "visit {visits}{}\n",
        if reissued {
            " (cookie re-signed with the new key)"
        } else {
            ""
        }
    );
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    let mut resp = HeaderMap::new();
    jar.write_to(&mut resp);
    for v in resp.get_all("set-cookie") {
        out.push_str(&format!("set-cookie: {}\r\n", v.to_str()?));
    }
    out.push_str("\r\n");
    out.push_str(&body);
    sock.write_all(out.as_bytes()).await?;
    Ok(())
}
