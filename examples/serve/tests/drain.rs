//! Shutdown drains: a request in flight when the shutdown signal arrives still gets its
//! whole response, and the server returns once it has; a request that never finishes is
//! cut off at the grace period.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

/// Answers once `release` is notified, telling `entered` when the request arrived; with
/// `release_on_shutdown`, the server's shutdown notifies it, so that the response can only
/// be written if the server keeps running after it stopped accepting.
#[derive(Debug, Default)]
struct Slow {
    entered: Mutex<Option<oneshot::Sender<()>>>,
    release_on_shutdown: bool,
    release: Notify,
}

impl serve::App for Slow {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        _request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move {
            if let Some(entered) = self.entered.lock().unwrap().take() {
                let _ = entered.send(());
            }
            self.release.notified().await;
            Response::new(serve::full("finished\n"))
        })
    }

    fn shutdown(&self) {
        if self.release_on_shutdown {
            self.release.notify_one();
        }
    }
}

/// Serves `app` on a single-threaded runtime of its own that is dropped when `serve_until`
/// returns, as a binary's is when `main` returns: connection tasks still running then are
/// cut off, and none runs unless `serve_until` waits for it.
async fn start(
    app: Arc<Slow>,
    grace: Duration,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    std::thread::JoinHandle<Result<(), serve::Error>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound) = oneshot::channel();
    let serving = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = serve::Server::bind_addr("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap()
                .with_grace(grace);
            bound_tx.send(server.local_addr()).unwrap();
            server
                .serve_until(app, async {
                    let _ = stopped.await;
                })
                .await
        })
    });
    (bound.await.unwrap(), stop, serving)
}

/// Waits for the server thread to return.
async fn finished(serving: std::thread::JoinHandle<Result<(), serve::Error>>) {
    tokio::task::spawn_blocking(move || serving.join())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let (entered_tx, entered) = oneshot::channel();
    let app = Arc::new(Slow {
        entered: Mutex::new(Some(entered_tx)),
        release_on_shutdown: true,
        release: Notify::new(),
    });
    let (addr, stop, serving) = start(Arc::clone(&app), Duration::from_secs(30)).await;

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    entered.await.unwrap();

    stop.send(()).unwrap();
    let mut response = String::new();
    // Without the drain the connection is cut (EOF or a reset) before the response.
    let _ = client.read_to_string(&mut response).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("finished\n"), "{response}");

    finished(serving).await;
}

#[tokio::test]
async fn shutdown_gives_up_on_a_request_after_the_grace_period() {
    let (entered_tx, entered) = oneshot::channel();
    let app = Arc::new(Slow {
        entered: Mutex::new(Some(entered_tx)),
        ..Slow::default()
    });
    let (addr, stop, serving) = start(app, Duration::from_millis(50)).await;

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .unwrap();
    entered.await.unwrap();

    stop.send(()).unwrap();
    // Never released: the server must still return, after the grace period.
    finished(serving).await;
}
