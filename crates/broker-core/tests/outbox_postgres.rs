#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The transactional outbox on the machine's PostgreSQL (`DATABASE_URL`), with the embedded
//! broker and the inbox: the business row and its message commit together or not at all,
//! relays publish in order, two relays at once publish each row once, and a relay that dies
//! between a publish and its mark gives one effect through the inbox. Each test works in a
//! schema of its own, so the tests run in parallel.
#![cfg(feature = "outbox-postgres")]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use broker_core::{
    Broker, Claim, EmbeddedBroker, Envelope, Inbox, MemoryInbox, MessageId, PostgresOutbox,
    QueueConfig, Settlement,
};
use tokio_postgres::{Client, NoTls};

use support::env;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema of the test's own with an `orders` table and an outbox; dropped on the way out.
struct Scratch {
    url: String,
    db: Client,
    schema: String,
    outbox: PostgresOutbox,
}

impl Scratch {
    async fn new() -> Option<Self> {
        let url = env("DATABASE_URL")?;
        let db = connect(&url).await;
        let schema = format!("bk_outbox_{}", MessageId::new().as_uuid().simple());
        db.batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (id bigint GENERATED ALWAYS AS IDENTITY, item text NOT NULL);"
        ))
        .await
        .unwrap();
        let outbox = PostgresOutbox::new(&format!("{schema}.outbox")).unwrap();
        outbox.create_table(&db).await.unwrap();
        // Twice is fine.
        outbox.create_table(&db).await.unwrap();
        Some(Self {
            url,
            db,
            schema,
            outbox,
        })
    }

    /// Places an order and its event in one transaction; `commit` false rolls both back.
    async fn place(&mut self, item: &str, commit: bool) -> MessageId {
        let tx = self.db.transaction().await.unwrap();
        tx.execute(
            &format!("INSERT INTO {}.orders (item) VALUES ($1)", self.schema),
            &[&item],
        )
        .await
        .unwrap();
        let envelope = Envelope::new(item.to_owned());
        let id = envelope.id();
        self.outbox.add(&tx, "orders", &envelope).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        id
    }

    async fn orders(&self) -> i64 {
        self.db
            .query_one(&format!("SELECT count(*) FROM {}.orders", self.schema), &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn drop_schema(self) {
        self.db
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

async fn broker() -> EmbeddedBroker {
    let broker = EmbeddedBroker::new();
    broker
        .declare("orders", &QueueConfig::default())
        .await
        .unwrap();
    broker
}

/// Every delivery on `orders`, acked, in the order delivered.
async fn drain(broker: &EmbeddedBroker) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let batch = broker
            .fetch("orders", "c", 100, Duration::from_millis(20))
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        for delivery in batch {
            broker.settle(&delivery, Settlement::Ack).await.unwrap();
            out.push(delivery.envelope);
        }
    }
}

fn text(envelope: &Envelope) -> String {
    String::from_utf8(envelope.payload().to_vec()).unwrap()
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing_and_sent_rows_are_purged() {
    let Some(mut s) = Scratch::new().await else {
        return;
    };
    s.place("book", true).await;
    s.place("lamp", false).await;
    s.place("pen", true).await;
    assert_eq!(s.orders().await, 2);
    assert_eq!(s.outbox.pending(&s.db, 10).await.unwrap().len(), 2);

    // The broker refuses (queue not declared): nothing is marked sent.
    let unready = EmbeddedBroker::new();
    assert!(s.outbox.relay(&mut s.db, &unready, 10).await.is_err());
    assert_eq!(s.outbox.pending(&s.db, 10).await.unwrap().len(), 2);

    let broker = broker().await;
    assert_eq!(s.outbox.relay(&mut s.db, &broker, 10).await.unwrap(), 2);
    assert_eq!(s.outbox.relay(&mut s.db, &broker, 10).await.unwrap(), 0);
    let got: Vec<String> = drain(&broker).await.iter().map(text).collect();
    assert_eq!(got, ["book", "pen"]);

    // The same message id twice is refused.
    let envelope = Envelope::new("again");
    s.outbox.add(&s.db, "orders", &envelope).await.unwrap();
    assert!(s.outbox.add(&s.db, "orders", &envelope).await.is_err());
    assert!(
        s.outbox
            .add(&s.db, "bad queue", &Envelope::new("x"))
            .await
            .is_err()
    );

    // Sent rows go; the pending one stays.
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(s.outbox.purge_sent(&s.db, later).await.unwrap(), 2);
    assert_eq!(s.outbox.pending(&s.db, 10).await.unwrap().len(), 1);
    s.drop_schema().await;
}

#[tokio::test]
async fn relays_publish_in_order_with_headers_intact() {
    let Some(mut s) = Scratch::new().await else {
        return;
    };
    let tx = s.db.transaction().await.unwrap();
    let mut sent = Vec::new();
    for i in 0..50 {
        let envelope = Envelope::new(format!("m{i}"))
            .with_header("correlation-id", format!("c{i}"))
            .unwrap();
        s.outbox.add(&tx, "orders", &envelope).await.unwrap();
        sent.push(envelope);
    }
    tx.commit().await.unwrap();
    for i in 50..120 {
        s.place(&format!("m{i}"), true).await;
    }
    let broker = broker().await;
    // Small batches: the order holds across relays.
    let mut relayed = 0;
    loop {
        let n = s.outbox.relay(&mut s.db, &broker, 7).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 7);
        relayed += n;
    }
    assert_eq!(relayed, 120);
    let got = drain(&broker).await;
    let texts: Vec<String> = got.iter().map(text).collect();
    let expected: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected);
    for (envelope, original) in got.iter().zip(&sent) {
        assert_eq!(envelope.id(), original.id());
        assert_eq!(
            envelope.headers().correlation_id(),
            original.headers().correlation_id()
        );
    }
    s.drop_schema().await;
}

/// Two relays on their own connections, racing over 600 rows: each row is published once.
async fn two_relays(exclusive: bool) {
    let Some(mut s) = Scratch::new().await else {
        return;
    };
    const N: usize = 600;
    let tx = s.db.transaction().await.unwrap();
    for i in 0..N {
        s.outbox
            .add(&tx, "orders", &Envelope::new(format!("{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let broker = Arc::new(broker().await);
    let outbox = s.outbox.clone().exclusive_relay(exclusive);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let mut db = connect(&s.url).await;
        let (broker, outbox) = (Arc::clone(&broker), outbox.clone());
        tasks.push(tokio::spawn(async move {
            let (mut sent, mut idle) = (0, 0);
            // Until the outbox stays empty for a while (the other relay may hold rows).
            while idle < 20 {
                let n = outbox.relay(&mut db, &*broker, 25).await.unwrap();
                sent += n;
                if n == 0 {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    idle = 0;
                    tokio::task::yield_now().await;
                }
            }
            sent
        }));
    }
    let mut per_relay = Vec::new();
    for task in tasks {
        per_relay.push(task.await.unwrap());
    }
    println!("exclusive {exclusive}: rows per relay {per_relay:?}");
    assert_eq!(per_relay.iter().sum::<usize>(), N);
    let got = drain(&broker).await;
    assert_eq!(got.len(), N, "deliveries");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for envelope in &got {
        *counts.entry(text(envelope)).or_default() += 1;
    }
    assert_eq!(counts.len(), N);
    assert!(counts.values().all(|&n| n == 1));
    if exclusive {
        // One relay at a time: the order holds across both.
        let order: Vec<usize> = got.iter().map(|e| text(e).parse().unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "out of order");
    }
    assert!(s.outbox.pending(&s.db, 1).await.unwrap().is_empty());
    s.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_publish_each_row_once() {
    two_relays(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exclusive_relays_take_turns_in_order() {
    two_relays(true).await;
}

#[tokio::test]
async fn a_relay_crash_after_publish_gives_one_effect_with_the_inbox() {
    let Some(mut s) = Scratch::new().await else {
        return;
    };
    s.place("book", true).await;
    s.place("pen", true).await;
    let broker = broker().await;

    // A relay takes both rows, publishes the first and dies before its commit.
    let crashed = s.db.transaction().await.unwrap();
    let claimed = s.outbox.claim(&crashed, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Meanwhile another relay finds the rows locked and sends nothing.
    let mut other = connect(&s.url).await;
    assert_eq!(s.outbox.relay(&mut other, &broker, 10).await.unwrap(), 0);
    let first = claimed.first().unwrap();
    broker
        .publish(&first.queue, first.envelope.clone())
        .await
        .unwrap();
    // It dies: its transaction ends without a commit.
    crashed.rollback().await.unwrap();

    // The next relay sends both, the first one again.
    assert_eq!(s.outbox.relay(&mut other, &broker, 10).await.unwrap(), 2);
    assert_eq!(s.outbox.relay(&mut other, &broker, 10).await.unwrap(), 0);

    // The consumer sees three deliveries and has two effects.
    let inbox = MemoryInbox::new();
    let mut effects = Vec::new();
    let deliveries = drain(&broker).await;
    assert_eq!(deliveries.len(), 3);
    assert_eq!(deliveries[0].id(), deliveries[1].id());
    for envelope in deliveries {
        let id = envelope.id();
        if let Claim::Acquired(token) = inbox.claim(id, Duration::from_secs(30)).await.unwrap() {
            effects.push(text(&envelope));
            inbox
                .complete(id, &token, Duration::from_secs(3600))
                .await
                .unwrap();
        }
    }
    assert_eq!(effects, ["book", "pen"]);
    s.drop_schema().await;
}
