//! The pool's request timeout on one timer per HTTP/1 connection.
//!
//! `tokio::time::timeout_at` around every forwarded request files a new entry in tokio's
//! timer wheel when the request is first polled and takes it out again when the answer is
//! in: the timer driver's lock twice and the wheel's bookkeeping for every request, which
//! an earlier profile also found to be part of our tail latency (docs/benchmarks.md, "Where
//! the p99 comes from").
//!
//! An HTTP/1 connection's requests come one at a time, so the connection keeps one `Sleep`
//! and each request moves its deadline. Moving a registered deadline later is one atomic
//! compare-and-swap in tokio: the entry stays where it is filed and is filed again only
//! when its old deadline comes. A keep-alive request then touches the wheel about once per
//! timeout period instead of twice (callgrind: tokio's timer code went from 466 to 208
//! instructions per keep-alive request; docs/benchmarks.md, "The request timeout on one
//! timer per connection"). An earlier deadline (a gRPC client's own) is filed again at
//! once, as `timeout_at` would.
//!
//! A request that finds the connection's timer taken (which HTTP/1 does not do) and the
//! requests of HTTP/2 connections and of a mounted [`crate::App`] use `timeout_at`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use tokio::time::{Instant, Sleep};

/// The request was not answered before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// One connection's request timer, lent to one request at a time.
#[derive(Debug, Default)]
pub(crate) struct RequestTimer {
    /// The timer, once a request made it; `None` while a request holds it.
    sleep: Mutex<Option<Pin<Box<Sleep>>>>,
}

impl RequestTimer {
    /// The connection's timer for one request, or none while another request holds it.
    fn take(&self) -> Option<Pin<Box<Sleep>>> {
        self.sleep.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// `work`'s output, or [`TimedOut`] when `deadline` passes first; on `timer`, the
/// connection's, when given and free.
///
/// `work` comes pinned by the caller: a future taken by value would be moved into this
/// one's state and moved again to be pinned, a copy of the whole upstream send per request.
pub(crate) async fn within<F: Future>(
    timer: Option<&RequestTimer>,
    deadline: Instant,
    mut work: Pin<&mut F>,
) -> Result<F::Output, TimedOut> {
    let Some(timer) = timer else {
        return tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| TimedOut);
    };
    let mut lease = Lease {
        owner: timer,
        sleep: timer.take(),
    };
    let sleep = match &mut lease.sleep {
        Some(sleep) => {
            sleep.as_mut().reset(deadline);
            sleep
        }
        // The first request of the connection (or one that found the timer taken).
        slot @ None => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
    };
    tokio::select! {
        // The answer first, as `timeout_at` does: one that is ready at the deadline counts.
        biased;
        output = work.as_mut() => Ok(output),
        () = sleep.as_mut() => Err(TimedOut),
    }
}

/// A timer lent to one request; back to its connection when the request is done, however
/// it ends.
struct Lease<'a> {
    owner: &'a RequestTimer,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take()
            && let Ok(mut slot) = self.owner.sleep.lock()
            && slot.is_none()
        {
            *slot = Some(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_before_the_deadline_and_times_out_after_it_on_one_timer() {
        let timer = RequestTimer::default();
        let start = Instant::now();
        // Answered in time, three times: the connection's one timer moves along.
        for i in 1..=3_u64 {
            let deadline = Instant::now() + Duration::from_secs(10);
            let answer = within(
                Some(&timer),
                deadline,
                std::pin::pin!(async {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    i
                }),
            )
            .await;
            assert_eq!(answer, Ok(i));
        }
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        assert!(
            timer
                .take()
                .is_some_and(|sleep| sleep.deadline() > Instant::now())
        );

        // The timer is back after each request; an answer that does not come times out at
        // its own deadline, earlier ones included (a gRPC client's).
        let timer = RequestTimer::default();
        for wait in [30_u64, 5, 20] {
            let asked = Instant::now();
            let answer = within(
                Some(&timer),
                asked + Duration::from_secs(wait),
                std::pin::pin!(std::future::pending::<()>()),
            )
            .await;
            assert_eq!(answer, Err(TimedOut));
            assert_eq!(asked.elapsed(), Duration::from_secs(wait));
        }
        // Without a connection's timer, the same.
        let asked = Instant::now();
        let answer = within(
            None,
            asked + Duration::from_secs(7),
            std::pin::pin!(std::future::pending::<()>()),
        )
        .await;
        assert_eq!(answer, Err(TimedOut));
        assert_eq!(asked.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_finds_the_timer_taken_has_its_own() {
        let timer = RequestTimer::default();
        // The first request made the timer and holds it while the second runs.
        let never = std::pin::pin!(std::future::pending::<()>());
        let first = within(
            Some(&timer),
            Instant::now() + Duration::from_secs(10),
            never,
        );
        let quick = std::pin::pin!(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let second = within(Some(&timer), Instant::now() + Duration::from_secs(3), quick);
        let (first, second) = tokio::join!(first, second);
        assert_eq!(first, Err(TimedOut));
        assert_eq!(second, Ok(()));
        // One timer went back to the connection.
        assert!(timer.take().is_some());
        assert!(timer.take().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_ready_at_the_deadline_counts() {
        let timer = RequestTimer::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = within(
            Some(&timer),
            deadline,
            std::pin::pin!(async {
                tokio::time::sleep_until(deadline).await;
                "in time"
            }),
        )
        .await;
        assert_eq!(answer, Ok("in time"));
    }
}
