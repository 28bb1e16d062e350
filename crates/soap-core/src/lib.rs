#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
mod client;
mod decode;
mod description;
mod encode;
mod envelope;
mod error;
mod fault;
mod schema;
mod service;
#[cfg(feature = "tower")]
mod tower;
mod wsdl;
mod wsse;
pub mod xml;

pub use client::Client;
pub use description::{Description, OperationDescription, Port, QName, ServiceDescription, Style};
pub use envelope::{
    Envelope, MessageInfo, SOAP11_ACTOR_NEXT, SOAP11_NS, SOAP12_ENCODING_NONE, SOAP12_NS,
    SOAP12_ROLE_NEXT, SOAP12_ROLE_NONE, SOAP12_ROLE_ULTIMATE, SoapVersion, must_understand,
    targets_us,
};
pub use error::{Error, LimitKind, Result};
pub use fault::{Fault, FaultCode};
pub use schema::{ComplexType, Occurs, Schema, TypeRef, XsdType};
pub use service::{Context, Operation, SoapService, error_response};
#[cfg(feature = "tower")]
pub use tower::SoapTowerService;
pub use wsdl::{HTTP_TRANSPORT, WSDL_NS, WSDL_SOAP11_NS, WSDL_SOAP12_NS, XS_NS};
pub use wsse::{
    CredentialStore, PASSWORD_DIGEST, PASSWORD_TEXT, Security, SecurityFailure, UsernameToken,
    WSSE_NS, WSU_NS,
};
pub use xml::{Element, XmlLimits};
