#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! DataLoader: batching of concurrent loads, per-request caching, errors, batch size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use graphql_core::{Context, DataLoader, FieldError, FieldResult, Request, Resolver, Schema};
use serde_json::{Value, json};

fn loader(seen: Arc<Mutex<Vec<Vec<u32>>>>) -> DataLoader<u32, String> {
    DataLoader::new(move |keys: Vec<u32>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(keys.clone());
            if keys.contains(&666) {
                return Err(FieldError::new("cursed key"));
            }
            Ok(keys
                .into_iter()
                .filter(|k| *k != 0)
                .map(|k| (k, format!("v{k}")))
                .collect::<HashMap<_, _>>())
        }
    })
}

#[tokio::test]
async fn concurrent_loads_share_one_batch_and_the_cache() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = loader(Arc::clone(&seen));
    let (a, b, c, d) = tokio::join!(l.load(1), l.load(2), l.load(1), l.load(0));
    assert_eq!(
        (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()),
        (
            Some("v1".into()),
            Some("v2".into()),
            Some("v1".into()),
            None
        )
    );
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 2, 0]]);
    // Cached now: no new batch.
    assert_eq!(l.load(2).await.unwrap(), Some("v2".into()));
    assert_eq!(
        l.load_many(vec![1, 2, 3]).await.unwrap(),
        vec![Some("v1".into()), Some("v2".into()), Some("v3".into())]
    );
    assert_eq!(*seen.lock().unwrap(), vec![vec![1, 2, 0], vec![3]]);
    assert_eq!(l.batch_calls(), 2);
}

#[tokio::test]
async fn batch_errors_reach_every_load_of_the_batch_and_are_not_cached() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = loader(Arc::clone(&seen));
    let (a, b) = tokio::join!(l.load(666), l.load(5));
    assert_eq!(a.unwrap_err().message, "cursed key");
    assert_eq!(b.unwrap_err().message, "cursed key");
    assert_eq!(l.load(5).await.unwrap(), Some("v5".into()));
}

#[tokio::test]
async fn max_batch_splits_large_batches() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let l = loader(Arc::clone(&seen)).max_batch(2);
    let r = l.load_many(vec![1, 2, 3, 4, 5]).await.unwrap();
    assert_eq!(r.len(), 5);
    let sizes: Vec<usize> = seen.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
}

#[tokio::test]
async fn a_relation_on_every_list_item_costs_one_batch() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let schema =
        Schema::build("type Query { books: [Book!]! } type Book { id: Int! author: String }")
            .resolver(
                "Query",
                "books",
                Resolver::sync(|_, _, _| {
                    Ok(json!(
                        (1..=20)
                            .map(|i| json!({"id": i, "authorId": i % 3 + 1}))
                            .collect::<Vec<_>>()
                    ))
                }),
            )
            .resolver(
                "Book",
                "author",
                Resolver::asynchronous(|input| {
                    Box::pin(async move {
                        let loader = input.ctx.data::<DataLoader<u32, String>>().unwrap();
                        let id = input.parent["authorId"].as_u64().unwrap() as u32;
                        FieldResult::Ok(loader.load(id).await?.map_or(Value::Null, Value::String))
                    })
                }),
            )
            .finish()
            .unwrap();
    let ctx = Context::new(loader(Arc::clone(&seen)));
    let r = schema
        .execute(&Request::new("{ books { id author } }"), &ctx)
        .await
        .to_value();
    assert_eq!(r["data"]["books"].as_array().unwrap().len(), 20);
    assert_eq!(r["data"]["books"][0], json!({"id": 1, "author": "v2"}));
    let batches = seen.lock().unwrap().clone();
    assert_eq!(batches.len(), 1, "{batches:?}");
    let mut keys = batches[0].clone();
    keys.sort_unstable();
    assert_eq!(keys, [1, 2, 3]);
}
