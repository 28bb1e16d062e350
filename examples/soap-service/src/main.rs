//! soap-service: an orders and inventory SOAP service (see `src/lib.rs`).
//! SOAP 1.1 and 1.2 on `/soap`, the WSDL at `/soap?wsdl`, `/healthz` answers `ok`.
//!
//! Run with: `cargo run -p soap-service`, then open <http://127.0.0.1:8080/soap?wsdl>.
//!
//! Try:
//!
//! ```text
//! curl -s http://127.0.0.1:8080/soap -H 'content-type: text/xml; charset=utf-8' \
//!      -H 'SOAPAction: "urn:backend-kit:orders/getStock"' \
//!      -d '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><getStock xmlns="urn:backend-kit:orders"><sku>A-1</sku></getStock></s:Body></s:Envelope>'
//! curl -s http://127.0.0.1:8080/soap -H 'content-type: application/soap+xml; charset=utf-8' \
//!      -d '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><placeOrder xmlns="urn:backend-kit:orders"><customer>c-1</customer><line><sku>B-2</sku><quantity>9</quantity></line></placeOrder></e:Body></e:Envelope>'
//! ```
//!
//! Environment: `DEMO_PASSWORD` (the WS-Security password of user `demo`; default
//! `demo-password`). `PORT`, `BIND`, logging and the shutdown are the `serve` crate's
//! (examples/serve).

use std::process::ExitCode;
use std::sync::Arc;

use soap_service::{App, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    serve::init_tracing();
    serve::exit(run().await)
}

async fn run() -> Result<(), serve::Error> {
    let server = serve::Server::bind(8080).await?;
    let app = Arc::new(App::new(Settings::default()));
    server.serve(app).await
}
