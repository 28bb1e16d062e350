//! An upgraded connection (a WebSocket over HTTP/1.1, or over an HTTP/2 stream): bytes
//! copied both ways until either side closes, or until nothing has moved either way for the
//! pool's `tunnel_idle_timeout_ms`, when both sides are closed.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The client's side of an upgrade, which becomes a byte stream once the answer that grants
/// it is sent.
pub(crate) enum ClientUpgrade {
    /// An HTTP/1.1 connection that hyper serves (`Upgrade`).
    Hyper(hyper::upgrade::OnUpgrade),
    /// An HTTP/2 stream of an extended CONNECT (RFC 8441), served by [`crate::h2_server`].
    H2(crate::h2_server::PendingTunnel),
}

/// Copies between the client's side and the upstream's in a task of its own, once both are
/// byte streams (see [`run`]).
pub(crate) fn spawn(
    client: ClientUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    idle: Option<Duration>,
) {
    use hyper_util::rt::TokioIo;
    tokio::spawn(async move {
        let Ok(upstream) = upstream.await else {
            return;
        };
        match client {
            ClientUpgrade::Hyper(client) => {
                if let Ok(client) = client.await {
                    run(TokioIo::new(client), TokioIo::new(upstream), idle).await;
                }
            }
            ClientUpgrade::H2(client) => {
                if let Ok(client) = client.await {
                    run(client, TokioIo::new(upstream), idle).await;
                }
            }
        }
    });
}

/// Copies between `client` and `upstream` until one closes, or (with `idle`) until no
/// byte moved for that long.
pub(crate) async fn run<A, B>(client: A, upstream: B, idle: Option<Duration>)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        let (mut client, mut upstream) = (client, upstream);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    };
    let clock = Clock::new();
    let mut client = Active::new(client, clock.clone());
    let mut upstream = Active::new(upstream, clock.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let mut copy = std::pin::pin!(copy);
    loop {
        let quiet = clock.quiet_for();
        let Some(left) = idle.checked_sub(quiet).filter(|left| !left.is_zero()) else {
            tracing::debug!(?idle, "tunnel closed after its idle timeout");
            return;
        };
        tokio::select! {
            _ = copy.as_mut() => return,
            () = tokio::time::sleep(left) => {}
        }
    }
}

/// When a byte last moved, shared by both sides of a tunnel.
#[derive(Clone)]
struct Clock {
    start: Instant,
    /// Milliseconds after `start`.
    last: Arc<AtomicU64>,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// One side of a tunnel, noting on the [`Clock`] each read or write that moved bytes.
struct Active<T> {
    io: T,
    clock: Clock,
}

impl<T> Active<T> {
    fn new(io: T, clock: Clock) -> Self {
        Self { io, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
