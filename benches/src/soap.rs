//! The soap-core bench's service and request: `placeOrder` with the types of
//! `examples/soap-service` (nested lines, an enumeration, a nillable and an optional field,
//! a date-time), served here without the example's store, so that the handler's own work is
//! a copy of the request.

use std::hint::black_box;

use http::request::Parts;
use soap_core::{Operation, SoapService};
use soap_service::{NAMESPACE, Order, PlaceOrder, Status};

/// The orders service with its `placeOrder` operation.
#[must_use]
pub fn orders_service() -> SoapService {
    SoapService::new("Orders", NAMESPACE).operation(Operation::new(
        "placeOrder",
        |req: PlaceOrder, _ctx| {
            Ok(Order {
                id: "o-1".into(),
                status: Status::Pending,
                placed: time::OffsetDateTime::UNIX_EPOCH,
                tracking: None,
                lines: req.lines,
                note: req.note,
            })
        },
    ))
}

/// A SOAP 1.1 `placeOrder` request of about 2 KB: a header block (not mandatory), 20 lines
/// and a note, prefixed as zeep writes them.
#[must_use]
pub fn order_request() -> String {
    let mut lines = String::new();
    for i in 0..20 {
        lines.push_str(&format!(
            "\n      <o:line><o:sku>SKU-{i:04}</o:sku><o:quantity>{}</o:quantity></o:line>",
            i % 7 + 1
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="{NAMESPACE}">
  <soap:Header>
    <t:trace xmlns:t="urn:example:trace">4bf92f3577b34da6a3ce929d0e0e4736</t:trace>
  </soap:Header>
  <soap:Body>
    <o:placeOrder>
      <o:customer>c-12345</o:customer>{lines}
      <o:note>Leave at the back door &amp; ring twice</o:note>
    </o:placeOrder>
  </soap:Body>
</soap:Envelope>
"#
    )
}

/// The request head: `POST /soap`, `text/xml`, the operation's `SOAPAction`.
///
/// # Panics
///
/// Never: the head is constant.
#[must_use]
pub fn order_parts() -> Parts {
    http::Request::post("/soap")
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", format!("\"{NAMESPACE}/placeOrder\""))
        .body(())
        .map(|r| r.into_parts().0)
        .unwrap_or_else(|_| unreachable!("constant request head"))
}

/// The floor: a bare quick-xml event walk over the bytes, every event looked at once.
/// Returns the number of events, so that the walk cannot be skipped.
#[must_use]
pub fn quick_xml_walk(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut events = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) | Err(_) => return events,
            Ok(event) => {
                black_box(&event);
                events += 1;
            }
        }
    }
}
