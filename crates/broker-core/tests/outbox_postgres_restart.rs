#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The outbox's PostgreSQL stopped in the middle of a relay and started again: a
//! PostgreSQL of the test's own (`initdb` and `pg_ctl` from `/usr/lib/postgresql/*/bin`, in
//! a scratch directory, on a free port, run as the `postgres` user when the test runs as
//! root; never the machine's shared one) holds 150 orders written with their outbox rows in
//! business transactions, and a writer adds 150 more meanwhile. The relay publishes to the
//! embedded broker; at its 40th publish the server is stopped with `pg_ctl stop -m
//! immediate` (no shutdown checkpoint: crash recovery on the next start) and started again a
//! second later. The relay's transaction is lost, so its batch is published again after the
//! restart; the writer retries its transactions (a retry that finds its order already
//! committed stops there). At the end every order has exactly one effect through the inbox,
//! nothing is pending, and the deliveries are the publishes: 300 plus the republished batch.
//!
//! Skips with a message when the PostgreSQL server binaries are missing; fails under
//! `CI=true`.
#![cfg(feature = "outbox-postgres")]

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_core::{
    Broker, Capabilities, Claim, DeadLetter, Delivery, Disposition, EmbeddedBroker, Envelope,
    Inbox, MemoryInbox, MessageId, PostgresOutbox, QueueConfig, Result, Settlement,
};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

/// A PostgreSQL server of the test's own.
struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

impl OwnPostgres {
    fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            support::missing("PostgreSQL server binaries (initdb, pg_ctl)");
            return None;
        };
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("bk-pg-{}", MessageId::new()));
        std::fs::create_dir_all(&dir).unwrap();
        if root {
            // PostgreSQL refuses to run as root.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let server = Self {
            bin,
            dir,
            port,
            as_postgres: root,
        };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        server.run_server();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    fn run_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Stops it at once: every backend is killed, no shutdown checkpoint.
    fn crash(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(url: &str) -> Option<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(client)
}

async fn connect_retrying(url: &str, end: Instant) -> Client {
    loop {
        if let Some(client) = connect(url).await {
            return client;
        }
        assert!(Instant::now() < end, "PostgreSQL did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How placing an order ended.
enum Placed {
    Committed,
    /// A retry found the order there: the earlier attempt committed.
    AlreadyThere,
    Failed,
}

/// One business transaction: the order and its event.
async fn place(db: &mut Client, outbox: &PostgresOutbox, item: &str) -> Placed {
    let Ok(tx) = db.transaction().await else {
        return Placed::Failed;
    };
    match tx
        .execute("INSERT INTO orders (item) VALUES ($1)", &[&item])
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Placed::AlreadyThere,
        Err(_) => return Placed::Failed,
    }
    if outbox
        .add(&tx, "orders", &Envelope::new(item.to_owned()))
        .await
        .is_err()
    {
        return Placed::Failed;
    }
    match tx.commit().await {
        Ok(()) => Placed::Committed,
        Err(_) => Placed::Failed,
    }
}

/// The broker the relay publishes to: the embedded one, with PostgreSQL stopped at the
/// `at`-th publish and started again a second later on another thread.
struct StopAt<'a> {
    inner: &'a EmbeddedBroker,
    at: usize,
    publishes: AtomicUsize,
    server: Arc<OwnPostgres>,
    restarted: Arc<AtomicBool>,
}

impl Broker for StopAt<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn declare(&self, queue: &str, config: &QueueConfig) -> Result<()> {
        self.inner.declare(queue, config).await
    }
    async fn publish(&self, queue: &str, envelope: Envelope) -> Result<()> {
        let n = self.publishes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.at {
            self.server.crash();
            let (server, restarted) = (Arc::clone(&self.server), Arc::clone(&self.restarted));
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(1));
                server.run_server();
                restarted.store(true, Ordering::SeqCst);
            });
        }
        self.inner.publish(queue, envelope).await
    }
    async fn fetch(
        &self,
        queue: &str,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        self.inner.fetch(queue, consumer, max, wait).await
    }
    async fn settle(&self, delivery: &Delivery, settlement: Settlement) -> Result<Disposition> {
        self.inner.settle(delivery, settlement).await
    }
    async fn dead_letters(&self, queue: &str, max: usize) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters(queue, max).await
    }
    async fn redrive(&self, queue: &str, max: usize) -> Result<usize> {
        self.inner.redrive(queue, max).await
    }
}

const BEFORE: usize = 150;
const DURING: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_relay_loses_nothing_and_the_inbox_gives_one_effect() {
    let Some(server) = OwnPostgres::start() else {
        return;
    };
    let server = Arc::new(server);
    let url = server.url();
    let end = Instant::now() + Duration::from_secs(90);
    let mut db = connect(&url).await.unwrap();
    db.batch_execute("CREATE TABLE orders (item text PRIMARY KEY)")
        .await
        .unwrap();
    let outbox = PostgresOutbox::new("outbox").unwrap();
    outbox.create_table(&db).await.unwrap();
    for i in 0..BEFORE {
        assert!(matches!(
            place(&mut db, &outbox, &format!("order-{i}")).await,
            Placed::Committed
        ));
    }

    // The writer keeps placing orders through the outage, retrying each until it is in.
    let writer = {
        let (url, outbox) = (url.clone(), outbox.clone());
        tokio::spawn(async move {
            let mut db = connect_retrying(&url, end).await;
            let mut failures = 0;
            for i in BEFORE..BEFORE + DURING {
                let item = format!("order-{i}");
                loop {
                    match place(&mut db, &outbox, &item).await {
                        Placed::Committed | Placed::AlreadyThere => break,
                        Placed::Failed => {
                            failures += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if db.is_closed() {
                                db = connect_retrying(&url, end).await;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            failures
        })
    };

    let broker = EmbeddedBroker::new();
    broker
        .declare("orders", &QueueConfig::default())
        .await
        .unwrap();
    let restarted = Arc::new(AtomicBool::new(false));
    let relay_to = StopAt {
        inner: &broker,
        at: 40,
        publishes: AtomicUsize::new(0),
        server: Arc::clone(&server),
        restarted: Arc::clone(&restarted),
    };
    let mut relay_errors = 0;
    let mut relay_db = Some(db);
    loop {
        assert!(Instant::now() < end, "the relay did not finish");
        let Some(db) = relay_db.as_mut() else {
            relay_db = connect(&url).await;
            if relay_db.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        match outbox.relay(db, &relay_to, 10).await {
            Ok(0) => {
                if writer.is_finished() && outbox.pending(db, 1).await.unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(_) => {}
            Err(_) => {
                relay_errors += 1;
                relay_db = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let writer_failures = writer.await.unwrap();
    assert!(restarted.load(Ordering::SeqCst));
    assert!(relay_errors >= 1, "the relay never saw the server go");
    let publishes = relay_to.publishes.load(Ordering::SeqCst);
    println!(
        "publishes {publishes}, relay errors {relay_errors}, writer failures {writer_failures}"
    );
    // The batch in flight at the stop was published and never marked: published again.
    assert!(
        publishes > BEFORE + DURING && publishes <= BEFORE + DURING + 10,
        "{publishes} publishes"
    );

    // Every order in the database, and one effect each through the inbox.
    let db = connect(&url).await.unwrap();
    let orders: i64 = db
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, i64::try_from(BEFORE + DURING).unwrap());
    let inbox = MemoryInbox::new();
    let effects: Mutex<HashMap<String, usize>> = Mutex::default();
    let mut deliveries = 0;
    loop {
        let batch = broker
            .fetch("orders", "c", 100, Duration::from_millis(20))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for delivery in batch {
            deliveries += 1;
            let id = delivery.envelope.id();
            if let Claim::Acquired(token) = inbox.claim(id, Duration::from_secs(30)).await.unwrap()
            {
                let item = String::from_utf8(delivery.envelope.payload().to_vec()).unwrap();
                *effects.lock().unwrap().entry(item).or_default() += 1;
                inbox
                    .complete(id, &token, Duration::from_secs(3600))
                    .await
                    .unwrap();
            }
            broker.settle(&delivery, Settlement::Ack).await.unwrap();
        }
    }
    assert_eq!(deliveries, publishes);
    let effects = effects.into_inner().unwrap();
    assert_eq!(effects.len(), BEFORE + DURING);
    for i in 0..BEFORE + DURING {
        assert_eq!(effects.get(&format!("order-{i}")), Some(&1), "order-{i}");
    }
    assert!(outbox.pending(&db, 1).await.unwrap().is_empty());
    assert_eq!(broker.pending("orders").await.unwrap(), 0);
}
