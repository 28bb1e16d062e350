#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Request/reply across a restart of a broker server of the test's own (persistence on,
//! another port; see `support::OwnServer`).
//!
//! NATS: one requester handle (its one shared `<inbox>.*` reply subscription) and one
//! responder handle, each on its own connection. Two requests wait while the server is
//! stopped (SIGTERM) or killed (SIGKILL) and started again: one whose responder has not
//! fetched it yet (the request is stored in the stream), one whose responder fetched it
//! before the restart and answers after. Once the requester is connected again, the
//! responder's replies reach both requests, each its own, within their timeout. A request
//! made while the server is down ends with an error within a bound. After the restart the
//! same handle's shared reply subscription serves 50 concurrent requests, each gets its
//! own reply, no waiter is left and nothing is pending.
//!
//! Redis: a request waiting through a SIGTERM restart gets its reply (its request is in
//! the stream and its handle's reply list outlives the restart; the task popping the list
//! reconnects); through a SIGKILL it gets its reply or ends within a bound. Requests after
//! the restart work on the same handle.
//!
//! Needs the `nats-server` and `redis-server` binaries; each test skips with a message
//! when its binary is missing and fails when `CI=true`.
#![cfg(any(feature = "redis", feature = "nats"))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{Broker, Envelope, Error, QueueConfig, Settlement};
use tokio::time::Instant;

use support::OwnServer;

/// The timeout of the requests that wait through the restart.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest any call may take, server down or not.
const BOUND: Duration = Duration::from_secs(90);
const CONCURRENT: usize = 50;

fn reply_to(envelope: &Envelope) -> String {
    envelope.headers().reply_to().unwrap().to_owned()
}

/// The reply to `request` (sent as `payload`): `re:payload`, with its correlation id.
fn assert_reply_to(request_id: &str, payload: &str, reply: &Envelope) {
    assert_eq!(
        reply.payload().as_ref(),
        format!("re:{payload}").as_bytes(),
        "the reply to {payload} went to its own request"
    );
    assert_eq!(reply.headers().correlation_id(), Some(request_id));
}

/// Echoes `re:<payload>` to every request it fetches until `stop`, ignoring the errors
/// of a server that is away; records each request's `reply-to`.
fn respond<B: Broker + 'static>(
    responder: Arc<B>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let batch = match tokio::time::timeout(
                BOUND,
                responder.fetch("rr", "responder", 64, Duration::from_millis(200)),
            )
            .await
            .expect("a fetch returns within the bound")
            {
                Ok(batch) => batch,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            for delivery in batch {
                let mut text = b"re:".to_vec();
                text.extend_from_slice(delivery.envelope.payload());
                seen.lock().unwrap().push(reply_to(&delivery.envelope));
                let replied =
                    tokio::time::timeout(BOUND, responder.reply(&delivery, Envelope::new(text)))
                        .await
                        .expect("a reply returns within the bound");
                let settled =
                    tokio::time::timeout(BOUND, responder.settle(&delivery, Settlement::Ack))
                        .await
                        .expect("a settlement returns within the bound");
                if replied.is_err() || settled.is_err() {
                    println!("responder: reply {replied:?}, settle {settled:?}");
                }
            }
        }
    })
}

/// Sends `payload` as a request and waits for it, bounded.
async fn ask<B: Broker>(
    broker: &B,
    payload: &str,
    timeout: Duration,
) -> (String, Result<Envelope, Error>) {
    let envelope = Envelope::new(payload.to_owned());
    let id = envelope.id().to_string();
    let outcome = tokio::time::timeout(BOUND, broker.request("rr", envelope, timeout))
        .await
        .expect("a request returns within the bound");
    (id, outcome)
}

/// `CONCURRENT` requests at once on `requester`, each answered with its own reply.
async fn concurrent_requests<B: Broker + 'static>(requester: &Arc<B>, round: &str) {
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let requester = Arc::clone(requester);
            let payload = format!("{round}-{i}");
            tokio::spawn(async move {
                let (id, outcome) = ask(&*requester, &payload, Duration::from_secs(30)).await;
                (id, payload, outcome)
            })
        })
        .collect();
    for task in tasks {
        let (id, payload, outcome) = task.await.unwrap();
        let reply = outcome.unwrap_or_else(|e| panic!("{payload}: {e:?}"));
        assert_reply_to(&id, &payload, &reply);
    }
}

/// Polls `pending` on `broker` until it is `n` (errors while the server is away count as
/// not yet), or panics after the bound.
async fn wait_pending<B: Broker>(broker: &B, n: usize) {
    let deadline = Instant::now() + BOUND;
    loop {
        let now = broker.pending("rr").await;
        if matches!(now, Ok(p) if p == n) {
            return;
        }
        assert!(Instant::now() < deadline, "pending stayed {now:?}, not {n}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `pending` on `broker` until it answers (its connection is back).
async fn wait_connected<B: Broker>(broker: &B) {
    let deadline = Instant::now() + BOUND;
    while let Err(e) = broker.pending("rr").await {
        assert!(Instant::now() < deadline, "not connected again: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(feature = "nats")]
async fn nats_request_across_restart(kill: bool) {
    use broker_core::NatsBroker;
    let Some(mut server) = OwnServer::nats() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", server.port);
    let requester = Arc::new(NatsBroker::connect(&url, "rr").await.unwrap());
    let responder = Arc::new(NatsBroker::connect(&url, "rr").await.unwrap());
    let config = QueueConfig::default().ack_wait(Duration::from_secs(2));
    requester.declare("rr", &config).await.unwrap();
    responder.declare("rr", &config).await.unwrap();
    let prefix = |reply_to: &str| reply_to.rsplit_once('.').unwrap().0.to_owned();

    // Before the restart: the shared reply subscription is made and answers.
    let warm = {
        let requester = Arc::clone(&requester);
        tokio::spawn(async move { ask(&*requester, "warm", REQUEST_TIMEOUT).await })
    };
    let fetched = responder
        .fetch("rr", "responder", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let shared = prefix(&reply_to(&fetched[0].envelope));
    responder
        .reply(&fetched[0], Envelope::new("re:warm"))
        .await
        .unwrap();
    responder
        .settle(&fetched[0], Settlement::Ack)
        .await
        .unwrap();
    let (id, outcome) = warm.await.unwrap();
    assert_reply_to(&id, "warm", &outcome.unwrap());

    // A request its responder fetched before the restart and answers after it.
    let slow = {
        let requester = Arc::clone(&requester);
        tokio::spawn(async move { ask(&*requester, "slow", REQUEST_TIMEOUT).await })
    };
    let fetched = responder
        .fetch("rr", "responder", 1, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let slow_delivery = fetched.into_iter().next().unwrap();
    assert_eq!(slow_delivery.envelope.payload().as_ref(), b"slow");
    // A request no responder has fetched yet: stored in the stream.
    let queued = {
        let requester = Arc::clone(&requester);
        tokio::spawn(async move { ask(&*requester, "queued", REQUEST_TIMEOUT).await })
    };
    wait_pending(&*responder, 2).await;
    // Let the server write what it stored to its files.
    tokio::time::sleep(Duration::from_millis(500)).await;

    tokio::task::block_in_place(|| if kill { server.kill() } else { server.stop() });
    // While the server is down, a new request ends with an error within its bound (its
    // publish is not confirmed).
    let started = Instant::now();
    let (_, during) = ask(&*requester, "during", Duration::from_secs(5)).await;
    println!(
        "a request while the server was down: {during:?} after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(during, Err(Error::Backend { .. } | Error::Timeout(_))),
        "{during:?}"
    );
    tokio::task::block_in_place(|| server.run());

    // The requester is connected again once a call of its own went through: async-nats
    // subscribed the shared reply subject again before anything else it sent.
    wait_connected(&*requester).await;
    let replied = tokio::time::timeout(
        BOUND,
        responder.reply(&slow_delivery, Envelope::new("re:slow")),
    )
    .await
    .expect("a reply returns within the bound");
    println!("reply to the request fetched before the restart: {replied:?}");
    // After SIGKILL the server may not have kept that the message was delivered: it comes
    // again, and the responder below answers it again (the same reply).
    let _ = responder.settle(&slow_delivery, Settlement::Ack).await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let responding = respond(Arc::clone(&responder), Arc::clone(&stop), Arc::clone(&seen));

    for (task, payload) in [(slow, "slow"), (queued, "queued")] {
        let (id, outcome) = task.await.unwrap();
        let reply = outcome.unwrap_or_else(|e| panic!("{payload}: {e:?}"));
        assert_reply_to(&id, payload, &reply);
    }

    // The same handle after the restart, twice: the shared subscription is live.
    concurrent_requests(&requester, "after").await;
    concurrent_requests(&requester, "again").await;
    let debug = format!("{requester:?}");
    assert!(debug.contains("waiting: 0"), "a waiter was left: {debug}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2 * CONCURRENT, "{}", seen.len());
    for reply_to in &seen {
        assert_eq!(
            prefix(reply_to),
            shared,
            "one reply subscription throughout"
        );
    }

    // The request made while the server was down may have been stored after all (the
    // client sent it once connected again): its late reply went nowhere; nothing stays.
    wait_pending(&*requester, 0).await;
    stop.store(true, Ordering::Relaxed);
    responding.await.unwrap();
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_requests_wait_through_a_sigterm_restart_and_the_handle_works_after() {
    nats_request_across_restart(false).await;
}

#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_requests_wait_through_a_sigkill_restart_and_the_handle_works_after() {
    nats_request_across_restart(true).await;
}

#[cfg(feature = "redis")]
async fn redis_request_across_restart(kill: bool) {
    use broker_core::RedisBroker;
    let Some(mut server) = OwnServer::redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.port);
    let requester = Arc::new(RedisBroker::connect(&url, "rr-").await.unwrap());
    let responder = Arc::new(RedisBroker::connect(&url, "rr-").await.unwrap());
    let config = QueueConfig::default().ack_wait(Duration::from_secs(2));
    requester.declare("rr", &config).await.unwrap();
    responder.declare("rr", &config).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let responding = respond(Arc::clone(&responder), Arc::clone(&stop), Arc::clone(&seen));
    // Before the restart, so that the requester keeps several connections for waiting.
    concurrent_requests(&requester, "before").await;
    stop.store(true, Ordering::Relaxed);
    responding.await.unwrap();

    // A request waiting through the restart (no responder runs).
    let waiting = {
        let requester = Arc::clone(&requester);
        tokio::spawn(async move { ask(&*requester, "waiting", REQUEST_TIMEOUT).await })
    };
    wait_pending(&*responder, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| {
        if kill {
            server.kill()
        } else {
            server.stop()
        }
        std::thread::sleep(Duration::from_millis(500));
        server.run();
    });

    stop.store(false, Ordering::Relaxed);
    let responding = respond(Arc::clone(&responder), Arc::clone(&stop), Arc::clone(&seen));
    let (id, outcome) = waiting.await.unwrap();
    println!("a request waiting through the restart: {outcome:?}");
    match outcome {
        Ok(reply) => assert_reply_to(&id, "waiting", &reply),
        // SIGKILL: what the server had not yet written to its AOF is gone.
        Err(e) => assert!(
            kill && matches!(e, Error::Backend { .. } | Error::Timeout(_)),
            "{e:?}"
        ),
    }
    // The first command on the handle's shared connection after the restart may fail
    // (the redis client reconnects when a command finds its connection dropped); then
    // requests work.
    let (id, first) = ask(&*requester, "first", Duration::from_secs(30)).await;
    println!("the first request after the restart: {first:?}");
    match first {
        Ok(reply) => assert_reply_to(&id, "first", &reply),
        Err(e) => assert!(matches!(e, Error::Backend { .. }), "{e:?}"),
    }
    concurrent_requests(&requester, "after").await;
    concurrent_requests(&requester, "again").await;
    wait_pending(&*requester, 0).await;
    stop.store(true, Ordering::Relaxed);
    responding.await.unwrap();
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_requests_after_a_sigterm_restart_work_on_the_same_handle() {
    redis_request_across_restart(false).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_requests_after_a_sigkill_restart_work_on_the_same_handle() {
    redis_request_across_restart(true).await;
}
