//! The HTTP/1 head timeout: a connection with no request in progress (idle between
//! requests, or a request head still arriving) for `server.head_timeout_ms` is closed.
//!
//! hyper's own `header_read_timeout` arms a timer for every request head and drops it when
//! the head is in; under keep-alive load that per-request timer was part of our p99 above
//! nginx's (docs/benchmarks.md, "The HTTP/1 head timeout as one timer per connection":
//! the median excess fell from 0.57 to 0.35 ms without it). Here a request
//! costs four uncontended atomic additions, and each connection has one timer that fires
//! every half timeout: a connection is closed at a tick when no request began or ended
//! since the tick before and none is in progress, so after between half the timeout and
//! all of it without one. A request is in progress from its parsed head until its response
//! is written (on the lean path, [`crate::h1_server`]) or hyper drops its response body
//! (sent, or the connection ended), so a slow upload, a slow upstream and a long streamed
//! response are never cut by this timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use crate::{BoxError, ProxyBody};

/// What one connection's requests have been doing, for its timer.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Requests begun plus requests ended: unchanged over a tick means nothing happened.
    events: AtomicU64,
    /// Requests in progress.
    in_progress: AtomicU64,
}

impl Activity {
    /// Resolves once a whole `period` passed with no request in progress and none begun
    /// or ended (so the connection waited for a request at least that long).
    pub(crate) async fn idle(&self, period: Duration) {
        let mut seen = self.events.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(period).await;
            let now = self.events.load(Ordering::Relaxed);
            if now == seen && self.in_progress.load(Ordering::Relaxed) == 0 {
                return;
            }
            seen = now;
        }
    }
}

impl Activity {
    /// A request's head is in (the lean HTTP/1 path's [`InProgress::begin`]).
    pub(crate) fn began(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::Relaxed);
    }

    /// A request begun with [`Activity::began`] was answered.
    pub(crate) fn ended(&self) {
        self.in_progress.fetch_sub(1, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a request is in progress.
    pub(crate) fn busy(&self) -> bool {
        self.in_progress.load(Ordering::Relaxed) > 0
    }
}

/// One request in progress on its connection, until dropped.
#[derive(Debug)]
pub(crate) struct InProgress(Arc<Activity>);

impl InProgress {
    pub(crate) fn begin(activity: &Arc<Activity>) -> Self {
        activity.began();
        Self(activity.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// A response body that keeps its request in progress until hyper drops it.
pub(crate) struct TrackedBody {
    inner: ProxyBody,
    _request: InProgress,
}

impl TrackedBody {
    pub(crate) fn new(inner: ProxyBody, request: InProgress) -> Self {
        Self {
            inner,
            _request: request,
        }
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_resolves_only_after_a_quiet_period_with_nothing_in_progress() {
        let activity = Arc::new(Activity::default());
        let period = Duration::from_secs(10);
        // Nothing happens: the first tick closes.
        let started = tokio::time::Instant::now();
        activity.idle(period).await;
        assert_eq!(started.elapsed(), period);

        // A request in progress across ticks keeps the connection.
        let request = InProgress::begin(&activity);
        let waiting = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(period).await }
        });
        tokio::time::sleep(period * 3).await;
        assert!(!waiting.is_finished());
        // It ends just before a tick: that tick sees an event, the next one closes.
        tokio::time::sleep(period - Duration::from_millis(1)).await;
        drop(request);
        let ended = tokio::time::Instant::now();
        waiting.await.unwrap();
        let quiet = ended.elapsed();
        assert!(
            quiet >= period && quiet <= period * 2,
            "closed after {quiet:?}"
        );
    }
}
