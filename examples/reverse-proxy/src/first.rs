//! [`first`]: a connection's work raced against what may end it early (its idle timer, the
//! server stopping), where the latter is polled only after its own waker fired.
//!
//! `tokio::select!` polls every branch each time the task wakes. A keep-alive connection's
//! task wakes two or three times per request (the client's bytes, the upstream's answer),
//! and each wake polled the idle timer's `Sleep` and the stop signal's `watch` again: about
//! 770 instructions per request (callgrind, docs/benchmarks.md) for futures that are ready
//! once in a connection's life. Here the side future gets a waker of its own that marks it
//! woken and then wakes the task, and a poll that finds no mark skips it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Which of the two futures finished first.
#[derive(Debug)]
pub(crate) enum First<M, S> {
    Main(M),
    Side(S),
}

/// Resolves with the first of `main` and `side` to finish; `main` is polled at every wake,
/// `side` at the first poll and then only once something woke it. Both are borrowed, so
/// the one that did not finish can be polled on afterwards.
pub(crate) fn first<'a, M, S>(
    mut main: Pin<&'a mut M>,
    mut side: Pin<&'a mut S>,
) -> impl Future<Output = First<M::Output, S::Output>> + 'a
where
    M: Future + ?Sized,
    S: Future + ?Sized,
{
    let mark = Arc::new(SideWaker {
        woken: AtomicBool::new(true),
        task: Mutex::new(None),
    });
    let side_waker = Waker::from(mark.clone());
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(out) = main.as_mut().poll(cx) {
            return Poll::Ready(First::Main(out));
        }
        // The task's waker, for the side's wakes to reach (tokio's stays the same, so this
        // clones it once).
        if let Ok(mut task) = mark.task.lock()
            && !task.as_ref().is_some_and(|t| t.will_wake(cx.waker()))
        {
            *task = Some(cx.waker().clone());
        }
        if mark.woken.swap(false, Ordering::AcqRel)
            && let Poll::Ready(out) = side.as_mut().poll(&mut Context::from_waker(&side_waker))
        {
            return Poll::Ready(First::Side(out));
        }
        Poll::Pending
    })
}

/// The side future's waker: marks it woken, then wakes the task.
struct SideWaker {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Ok(task) = self.task.lock()
            && let Some(task) = task.as_ref()
        {
            task.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// A future that counts its polls and never finishes (it keeps no waker, so nothing
    /// ever wakes it).
    struct Counted<'a>(&'a AtomicUsize);

    impl Future for Counted<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn the_side_is_polled_once_until_its_own_waker_fires() {
        let polls = AtomicUsize::new(0);
        let mut side = Counted(&polls);
        // The main future wakes itself ten times before it finishes.
        let mut left = 10;
        let mut main = std::future::poll_fn(|cx| {
            if left == 0 {
                return Poll::Ready("main");
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let out = first(Pin::new(&mut main), Pin::new(&mut side)).await;
        assert!(matches!(out, First::Main("main")));
        assert_eq!(
            polls.load(Ordering::Relaxed),
            1,
            "the side was polled again"
        );
    }

    #[tokio::test]
    async fn a_side_that_wakes_itself_finishes_the_race() {
        let main = std::pin::pin!(std::future::pending::<()>());
        let side = std::pin::pin!(tokio::time::sleep(Duration::from_millis(20)));
        let out = tokio::time::timeout(Duration::from_secs(5), first(main, side))
            .await
            .expect("the side's timer did not end the race");
        assert!(matches!(out, First::Side(())));
    }

    #[tokio::test]
    async fn a_signal_sent_while_the_main_future_works_is_seen() {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let mut side = Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        });
        // A main future that keeps waking and is never done.
        let mut main = std::future::poll_fn(|cx| {
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let race = first(Pin::new(&mut main), side.as_mut());
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            tx.send(true).unwrap();
            tx
        });
        let out = tokio::time::timeout(Duration::from_secs(5), race)
            .await
            .expect("the stop signal was missed");
        assert!(matches!(out, First::Side(())));
        drop(sender.await.unwrap());
    }
}
