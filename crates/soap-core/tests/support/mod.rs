//! A small orders service shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use soap_core::{
    CredentialStore, Envelope, Error, Fault, FaultCode, Operation, Schema, Security, SoapService,
    SoapVersion, TypeRef, XmlLimits, XsdType,
};

pub const NS: &str = "urn:example:orders";
pub const V11: &str = "text/xml; charset=utf-8";
pub const V12: &str = "application/soap+xml; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Status {
    Pending,
    Shipped,
}
impl XsdType for Status {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.enumeration("Status", &["Pending", "Shipped"])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
}
impl XsdType for Line {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("Line", |t| {
            t.field::<String>("sku").field::<u32>("quantity")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrder {
    pub customer: String,
    #[serde(rename = "line", default)]
    pub lines: Vec<Line>,
    #[serde(skip_serializing_if = "Option::is_none")]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrderResponse {
    pub id: String,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub placed: time::OffsetDateTime,
    #[serde(default, with = "soap_core::body::nillable")]
    pub tracking: Option<String>,
    #[serde(rename = "line", default)]
    pub lines: Vec<Line>,
}
impl XsdType for PlaceOrderResponse {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("PlaceOrderResponse", |t| {
            t.field::<String>("id")
                .field::<Status>("status")
                .field::<time::OffsetDateTime>("placed")
                .nillable::<String>("tracking")
                .field::<Vec<Line>>("line")
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutOfStock {
    pub sku: String,
    pub available: u32,
}
impl XsdType for OutOfStock {
    fn xsd(s: &mut Schema) -> TypeRef {
        s.complex_type("OutOfStock", |t| {
            t.field::<String>("sku").field::<u32>("available")
        })
    }
}

pub struct Users;
impl CredentialStore for Users {
    fn password(&self, user: &str) -> Option<String> {
        (user == "ada").then(|| "s3cret".to_owned())
    }
}

pub fn place(req: PlaceOrder) -> Result<PlaceOrderResponse, Error> {
    if let Some(line) = req.lines.iter().find(|l| l.quantity > 10) {
        let fault = Fault::sender("out of stock").with_detail(
            NS,
            "outOfStock",
            &OutOfStock {
                sku: line.sku.clone(),
                available: 10,
            },
        )?;
        return Err(fault.into());
    }
    if req.customer == "crash" {
        return Err(Error::Internal("database password is hunter2".into()));
    }
    Ok(PlaceOrderResponse {
        id: "o-1".into(),
        status: Status::Pending,
        placed: time::macros::datetime!(2026-12-04 01:00 UTC),
        tracking: None,
        lines: req.lines,
    })
}

pub fn service() -> SoapService {
    service_with(XmlLimits::default())
}

pub fn service_with(limits: XmlLimits) -> SoapService {
    SoapService::new("Orders", NS)
        .limits(limits)
        .security(Security::new(Users))
        .understands("urn:example:trace", "trace")
        .operation(
            Operation::new("placeOrder", |req: PlaceOrder, _ctx| place(req))
                .fault::<OutOfStock>("outOfStock"),
        )
        .operation(
            Operation::new("placeSecureOrder", |req: PlaceOrder, ctx| {
                assert_eq!(ctx.user, Some("ada"));
                place(req)
            })
            .secured(),
        )
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub envelope: Option<Envelope>,
}

impl Reply {
    pub fn fault(&self) -> Fault {
        let env = self.envelope.as_ref().expect("an envelope");
        Fault::from_element(env.version, &env.body[0]).expect("a fault")
    }
    pub fn code(&self) -> FaultCode {
        self.fault().code
    }
}

pub fn post(service: &SoapService, content_type: &str, action: Option<&str>, body: &[u8]) -> Reply {
    post_at(service, content_type, action, body, SystemTime::now())
}

pub fn post_at(
    service: &SoapService,
    content_type: &str,
    action: Option<&str>,
    body: &[u8],
    now: SystemTime,
) -> Reply {
    let mut b =
        http::Request::post("http://shop.example/soap").header("content-type", content_type);
    if let Some(a) = action {
        b = b.header("soapaction", a);
    }
    let (parts, ()) = b.body(()).unwrap().into_parts();
    let response = service.handle(&parts, body, now);
    let text = String::from_utf8(response.body().to_vec()).unwrap();
    Reply {
        status: response.status().as_u16(),
        envelope: Envelope::parse(text.as_bytes(), &XmlLimits::default()).ok(),
        body: text,
    }
}

pub fn envelope(version: SoapVersion, header: &str, body: &str) -> String {
    let ns = version.namespace();
    format!(
        r#"<s:Envelope xmlns:s="{ns}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"#
    )
}

pub const ORDER: &str = r#"<placeOrder xmlns="urn:example:orders"><customer>c-1</customer><line><sku>A-1</sku><quantity>2</quantity></line></placeOrder>"#;
