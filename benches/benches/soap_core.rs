//! soap-core's whole server path beside a bare quick-xml event walk over the same bytes, in
//! one run: issue 16's bar is parse + dispatch + serialize of a typical 2 KB request in at
//! most 2x the walk's time. The request is `placeOrder` (20 lines, a header block, a note;
//! `benches/src/soap.rs`); ours is `SoapService::handle` from the request head and body
//! bytes to the response with its serialized envelope.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::SystemTime;

use backend_kit_benches::soap::{order_parts, order_request, orders_service, quick_xml_walk};
use criterion::{Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let service = orders_service();
    let parts = order_parts();
    let request = order_request();
    let now = SystemTime::UNIX_EPOCH;
    let check = service.handle(&parts, request.as_bytes(), now);
    assert_eq!(check.status(), 200, "{:?}", check.body());
    let mut group = c.benchmark_group("soap/place-order-2k");
    group.throughput(Throughput::Bytes(request.len() as u64));
    group.bench_function("quick-xml-walk", |b| {
        b.iter(|| quick_xml_walk(black_box(request.as_bytes())));
    });
    group.bench_function("soap-core-handle", |b| {
        b.iter(|| service.handle(black_box(&parts), black_box(request.as_bytes()), now));
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
