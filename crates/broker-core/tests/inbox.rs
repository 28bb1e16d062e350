#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The idempotent inbox through its trait: in memory always, in Redis when `REDIS_URL` is
//! set (it must be under `CI=true`). Both run the same checks, on the system clock with
//! short leases.

use std::time::Duration;

use broker_core::{Claim, Inbox, MemoryInbox, MessageId};

const LEASE: Duration = Duration::from_millis(300);

async fn acquire(inbox: &impl Inbox, id: MessageId) -> broker_core::LeaseToken {
    match inbox.claim(id, LEASE).await.unwrap() {
        Claim::Acquired(token) => token,
        other => panic!("expected to acquire {id}, found {other:?}"),
    }
}

/// The behaviour every inbox shares.
async fn check(inbox: &impl Inbox) {
    // Processed once: a redelivery finds it done.
    let a = MessageId::new();
    let token = acquire(inbox, a).await;
    assert_eq!(inbox.claim(a, LEASE).await.unwrap(), Claim::Busy);
    inbox
        .complete(a, &token, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(inbox.claim(a, LEASE).await.unwrap(), Claim::Done);
    // Releasing after completion does not forget the effect.
    inbox.release(a, &token).await.unwrap();
    assert_eq!(inbox.claim(a, LEASE).await.unwrap(), Claim::Done);

    // A failed effect releases the lease: the retry claims it.
    let b = MessageId::new();
    let token = acquire(inbox, b).await;
    inbox.release(b, &token).await.unwrap();
    let second = acquire(inbox, b).await;
    // A stale token releases nothing.
    inbox.release(b, &token).await.unwrap();
    assert_eq!(inbox.claim(b, LEASE).await.unwrap(), Claim::Busy);
    inbox.release(b, &second).await.unwrap();

    // A holder that dies loses its lease when it expires.
    let c = MessageId::new();
    let _dead = acquire(inbox, c).await;
    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
    let _ = acquire(inbox, c).await;

    // Done expires too.
    let d = MessageId::new();
    let token = acquire(inbox, d).await;
    inbox
        .complete(d, &token, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(inbox.claim(d, LEASE).await.unwrap(), Claim::Done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = acquire(inbox, d).await;

    // Competing consumers: of 16 concurrent claims of one id, exactly one acquires.
    let e = MessageId::new();
    let claims = futures_join_all((0..16).map(|_| inbox.claim(e, Duration::from_secs(30)))).await;
    let acquired = claims
        .iter()
        .filter(|c| matches!(c, Ok(Claim::Acquired(_))))
        .count();
    assert_eq!(acquired, 1, "{claims:?}");
    assert!(
        claims
            .iter()
            .all(|c| matches!(c, Ok(Claim::Acquired(_) | Claim::Busy)))
    );
}

/// Polls the futures together (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn memory_inbox_has_each_effect_once() {
    let inbox = MemoryInbox::new();
    check(&inbox).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_inbox_has_each_effect_once() {
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "REDIS_URL must be set under CI=true"
            );
            println!("skipped: REDIS_URL is not set");
            return;
        }
    };
    let prefix = format!("bktest-inbox-{}:", MessageId::new().as_uuid().simple());
    let inbox = broker_core::RedisInbox::connect(&url, &prefix)
        .await
        .unwrap();
    check(&inbox).await;
    // The keys are where the docs say, with an expiry, and are removed afterwards.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}inbox:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no expiry ({ttl})");
    }
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
