//! The soap-core benchmark's two sides without criterion, for counting instructions under
//! `valgrind --tool=callgrind` (counts do not move with the machine's load).
//!
//! ```text
//! cargo build --release --bin soap_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     $CARGO_TARGET_DIR/release/soap_instructions ours 2000
//! ```
//!
//! Arguments: `raw` (the bare quick-xml walk) or `ours` (`SoapService::handle`), and the
//! number of requests. Run once with 0 and once with N: the difference divided by N is the
//! cost of one request.

use std::hint::black_box;
use std::time::SystemTime;

use backend_kit_benches::soap::{order_parts, order_request, orders_service, quick_xml_walk};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "ours".to_owned());
    let passes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let service = orders_service();
    let parts = order_parts();
    let request = order_request();
    let mut total = 0usize;
    for _ in 0..passes {
        if which == "raw" {
            total += quick_xml_walk(black_box(request.as_bytes()));
        } else {
            let response = service.handle(
                black_box(&parts),
                black_box(request.as_bytes()),
                SystemTime::UNIX_EPOCH,
            );
            total += response.body().len();
        }
    }
    println!(
        "{which}: {passes} requests of {} bytes, {total}",
        request.len()
    );
}
