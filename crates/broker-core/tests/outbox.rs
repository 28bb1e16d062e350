#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The transactional outbox with the embedded broker and the inbox: the business row and
//! its message commit together or not at all, and a relay that dies between a publish and
//! its mark publishes again, which the consumer's inbox turns into one effect.
#![cfg(feature = "outbox-sqlite")]

use std::sync::Mutex;
use std::time::Duration;

use broker_core::{
    Broker, Claim, EmbeddedBroker, Envelope, Inbox, MemoryInbox, QueueConfig, Settlement,
    SqliteOutbox,
};
use rusqlite::Connection;

fn database(outbox: &SqliteOutbox) -> Connection {
    let db = Connection::open_in_memory().unwrap();
    db.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)")
        .unwrap();
    outbox.create_table(&db).unwrap();
    db
}

/// Places an order and its event in one transaction; `commit` false rolls both back.
fn place(db: &mut Connection, outbox: &SqliteOutbox, item: &str, commit: bool) {
    let tx = db.transaction().unwrap();
    tx.execute("INSERT INTO orders (item) VALUES (?1)", [item])
        .unwrap();
    outbox
        .add(&tx, "orders", &Envelope::new(item.to_owned()))
        .unwrap();
    if commit {
        tx.commit().unwrap();
    } else {
        tx.rollback().unwrap();
    }
}

#[tokio::test]
async fn a_relay_crash_after_publish_gives_one_effect_with_the_inbox() {
    let outbox = SqliteOutbox::new("outbox").unwrap();
    let mut db = database(&outbox);
    place(&mut db, &outbox, "book", true);
    place(&mut db, &outbox, "lamp", false);
    place(&mut db, &outbox, "pen", true);
    let orders: i64 = db
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 2);
    assert_eq!(outbox.pending(&db, 10).unwrap().len(), 2);

    let broker = EmbeddedBroker::new();
    // The broker refuses (queue not declared yet): nothing is marked sent.
    let db = Mutex::new(db);
    assert!(outbox.relay(&db, &broker, 10).await.is_err());
    assert_eq!(outbox.pending(&db.lock().unwrap(), 10).unwrap().len(), 2);
    broker
        .declare("orders", &QueueConfig::default())
        .await
        .unwrap();

    // A relay that publishes the first message and dies before marking it.
    let first = outbox
        .pending(&db.lock().unwrap(), 1)
        .unwrap()
        .pop()
        .unwrap();
    broker
        .publish(&first.queue, first.envelope.clone())
        .await
        .unwrap();
    // The next relay sends both, the first one again.
    assert_eq!(outbox.relay(&db, &broker, 10).await.unwrap(), 2);
    assert_eq!(outbox.relay(&db, &broker, 10).await.unwrap(), 0);

    // The consumer sees three deliveries and has two effects.
    let inbox = MemoryInbox::new();
    let mut effects = Vec::new();
    let mut deliveries = 0;
    loop {
        let batch = broker
            .fetch("orders", "c", 10, Duration::from_millis(50))
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
                effects.push(String::from_utf8(delivery.envelope.payload().to_vec()).unwrap());
                inbox
                    .complete(id, &token, Duration::from_secs(3600))
                    .await
                    .unwrap();
            }
            broker.settle(&delivery, Settlement::Ack).await.unwrap();
        }
    }
    assert_eq!(deliveries, 3);
    assert_eq!(effects, ["book", "pen"]);
}
