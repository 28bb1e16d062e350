//! soap-service: an orders and inventory service on soap-core. The [`App`] is a library (it
//! opens no socket and implements [`serve::App`]); `main.rs` serves it with the `serve`
//! crate, and the showcase mounts it at `/soap/` ([`Settings::base_path`]).
//!
//! Operations, in namespace `urn:backend-kit:orders`, over SOAP 1.1 and 1.2 on
//! `BASE/soap` (`/soap` standalone, `/soap/soap` in the showcase):
//!
//! - `placeOrder`: nested complex types and arrays (order lines), an enumeration (status),
//!   an optional field (`note`), a nillable one (`tracking`) and a date-time (`placed`);
//!   a line for more than the stock gives a Sender fault with a typed `outOfStock` detail.
//! - `getStock`: stock of one SKU; an unknown SKU is a Sender fault.
//! - `cancelOrder`: needs a WS-Security UsernameToken (text or digest) for the demo user.
//!
//! `GET BASE/soap?wsdl` serves the WSDL whose `soap:address` is the URL the request came to
//! (scheme, `Host` and the full path, prefix included); `BASE/healthz` answers `ok`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde::{Deserialize, Serialize};
use serve::page::text;
use soap_core::{
    CredentialStore, Error, Fault, Operation, Schema, Security, SoapService, TypeRef, XsdType,
};

/// The service namespace.
pub const NAMESPACE: &str = "urn:backend-kit:orders";

/// Request bodies are read up to this size; soap-core's own limit is the same.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The prefix every path is served under (`/soap` in the showcase); empty standalone.
    pub base_path: String,
    /// The WS-Security user allowed to cancel orders.
    pub user: String,
    /// Their password.
    pub password: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            base_path: String::new(),
            user: "demo".into(),
            password: std::env::var("DEMO_PASSWORD").unwrap_or_else(|_| "demo-password".into()),
        }
    }
}

/// Order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Accepted, not shipped.
    Pending,
    /// On its way.
    Shipped,
    /// Cancelled.
    Cancelled,
}
impl XsdType for Status {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.enumeration("Status", &["Pending", "Shipped", "Cancelled"])
    }
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}
impl XsdType for Line {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("Line", |t| {
            t.field::<String>("sku").field::<u32>("quantity")
        })
    }
}

/// `placeOrder` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// Customer id.
    pub customer: String,
    /// Lines.
    #[serde(rename = "line", default)]
    pub lines: Vec<Line>,
    /// A note for the courier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
impl XsdType for PlaceOrder {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("PlaceOrder", |t| {
            t.field::<String>("customer")
                .field::<Vec<Line>>("line")
                .field::<Option<String>>("note")
        })
    }
}

/// An order, as returned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Order id.
    pub id: String,
    /// Status.
    pub status: Status,
    /// When it was placed.
    #[serde(with = "time::serde::rfc3339")]
    pub placed: time::OffsetDateTime,
    /// Tracking number, nil until shipped.
    #[serde(default, with = "soap_core::body::nillable")]
    pub tracking: Option<String>,
    /// Lines.
    #[serde(rename = "line", default)]
    pub lines: Vec<Line>,
    /// The note, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}
impl XsdType for Order {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("Order", |t| {
            t.field::<String>("id")
                .field::<Status>("status")
                .field::<time::OffsetDateTime>("placed")
                .nillable::<String>("tracking")
                .field::<Vec<Line>>("line")
                .field::<Option<String>>("note")
        })
    }
}

/// The `outOfStock` fault detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutOfStock {
    /// The SKU short of stock.
    pub sku: String,
    /// How many there are.
    pub available: u32,
}
impl XsdType for OutOfStock {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("OutOfStock", |t| {
            t.field::<String>("sku").field::<u32>("available")
        })
    }
}

/// `getStock` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetStock {
    /// The SKU.
    pub sku: String,
}
impl XsdType for GetStock {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("GetStock", |t| t.field::<String>("sku"))
    }
}

/// `getStock` response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stock {
    /// The SKU.
    pub sku: String,
    /// Units available.
    pub available: u32,
}
impl XsdType for Stock {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("Stock", |t| {
            t.field::<String>("sku").field::<u32>("available")
        })
    }
}

/// `cancelOrder` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelOrder {
    /// The order id.
    pub id: String,
}
impl XsdType for CancelOrder {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("CancelOrder", |t| t.field::<String>("id"))
    }
}

#[derive(Debug, Default)]
struct Store {
    orders: Vec<Order>,
}

fn stock_of(sku: &str) -> Option<u32> {
    match sku {
        "A-1" => Some(25),
        "B-2" => Some(3),
        "C-3" => Some(0),
        _ => None,
    }
}

struct DemoUser(String, String);
impl CredentialStore for DemoUser {
    fn password(&self, user: &str) -> Option<String> {
        (user == self.0).then(|| self.1.clone())
    }
}

/// The application.
#[derive(Debug)]
pub struct App {
    service: SoapService,
    base_path: String,
}

impl App {
    /// Builds the service.
    pub fn new(settings: Settings) -> App {
        let store = Arc::new(Mutex::new(Store::default()));
        let place_store = store.clone();
        let cancel_store = store;
        let service = SoapService::new("Orders", NAMESPACE)
            .security(Security::new(DemoUser(settings.user, settings.password)))
            .operation(
                Operation::new("placeOrder", move |req: PlaceOrder, _ctx| {
                    place(&place_store, req)
                })
                .fault::<OutOfStock>("outOfStock"),
            )
            .operation(Operation::new(
                "getStock",
                |req: GetStock, _ctx| match stock_of(&req.sku) {
                    Some(available) => Ok(Stock {
                        sku: req.sku,
                        available,
                    }),
                    None => Err(Fault::sender(format!("unknown SKU {:?}", req.sku)).into()),
                },
            ))
            .operation(
                Operation::new("cancelOrder", move |req: CancelOrder, _ctx| {
                    let mut store = cancel_store
                        .lock()
                        .map_err(|_| Error::Internal("store lock poisoned".into()))?;
                    match store.orders.iter_mut().find(|o| o.id == req.id) {
                        Some(order) => {
                            order.status = Status::Cancelled;
                            Ok(order.clone())
                        }
                        None => Err(Fault::sender("no such order").into()),
                    }
                })
                .secured(),
            );
        App {
            service,
            base_path: settings.base_path.trim_end_matches('/').to_owned(),
        }
    }

    /// Answers one request: reads its body (up to [`MAX_BODY`]) and hands it to the
    /// service.
    pub async fn respond(&self, request: Request<serve::Body>) -> Response<Bytes> {
        let (parts, body) = request.into_parts();
        match serve::local_path(&self.base_path, parts.uri.path()).unwrap_or("") {
            "/soap" => match Limited::new(body, MAX_BODY).collect().await {
                Ok(body) => self
                    .service
                    .handle(&parts, &body.to_bytes(), SystemTime::now()),
                Err(_) => text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body is over {MAX_BODY} bytes or broken"),
                ),
            },
            "/healthz" => text(StatusCode::OK, "ok"),
            _ => text(
                StatusCode::NOT_FOUND,
                &format!("not found; the service is at {}/soap", self.base_path),
            ),
        }
    }
}

impl serve::App for App {
    fn handle(
        self: Arc<Self>,
        _peer: SocketAddr,
        request: Request<serve::Body>,
    ) -> serve::ResponseFuture {
        Box::pin(async move { self.respond(request).await.map(serve::full) })
    }
}

fn place(store: &Mutex<Store>, req: PlaceOrder) -> Result<Order, Error> {
    if req.lines.is_empty() {
        return Err(Fault::sender("an order needs at least one line").into());
    }
    for line in &req.lines {
        let available = stock_of(&line.sku)
            .ok_or_else(|| Error::from(Fault::sender(format!("unknown SKU {:?}", line.sku))))?;
        if line.quantity > available {
            return Err(Fault::sender("out of stock")
                .with_detail(
                    NAMESPACE,
                    "outOfStock",
                    &OutOfStock {
                        sku: line.sku.clone(),
                        available,
                    },
                )?
                .into());
        }
    }
    let mut store = store
        .lock()
        .map_err(|_| Error::Internal("store lock poisoned".into()))?;
    let order = Order {
        id: format!("o-{}", store.orders.len() + 1),
        status: Status::Pending,
        placed: time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
        tracking: None,
        lines: req.lines,
        note: req.note,
    };
    store.orders.push(order.clone());
    Ok(order)
}
