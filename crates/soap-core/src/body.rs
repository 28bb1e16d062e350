//! Typed message bodies through serde (document/literal wrapped).
//!
//! A request or response wrapper element is a serde struct: each field is a child element
//! in the service's namespace (`elementFormDefault="qualified"`), a `Vec` is a repeated
//! element, an `Option` with `skip_serializing_if` an optional one, and [`nillable`] writes
//! `None` as `xsi:nil="true"`. Reading ignores prefixes and namespaces below the wrapper
//! (the wrapper's own namespace is checked by dispatch) and treats `xsi:nil` elements as
//! absent.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Line { sku: String, quantity: u32 }
//!
//! let el = soap_core::body::to_element("urn:shop", "line", &Line { sku: "A-1".into(), quantity: 2 })?;
//! assert_eq!(el.to_xml(), r#"<line xmlns="urn:shop"><sku>A-1</sku><quantity>2</quantity></line>"#);
//! let back: Line = soap_core::body::from_element(&el)?;
//! assert_eq!(back.quantity, 2);
//! # Ok::<(), soap_core::Error>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::xml::{self, Element, XSI_NS, XmlLimits};

/// Serializes `value` as element `name` in `namespace`, every descendant qualified.
pub fn to_element<T: Serialize + ?Sized>(
    namespace: &str,
    name: &str,
    value: &T,
) -> Result<Element> {
    let mut element = to_plain_element(name, value)?;
    element.qualify(namespace);
    Ok(element)
}

/// Serializes `value` as element `name` in `namespace` with its descendants in no namespace
/// (a schema with `elementFormDefault="unqualified"`, XML Schema's default).
pub fn to_element_unqualified<T: Serialize + ?Sized>(
    namespace: &str,
    name: &str,
    value: &T,
) -> Result<Element> {
    let mut element = to_plain_element(name, value)?;
    element.qualify_root(namespace);
    Ok(element)
}

fn to_plain_element<T: Serialize + ?Sized>(name: &str, value: &T) -> Result<Element> {
    let inner = quick_xml::se::to_string_with_root(name, value)
        .map_err(|e| Error::Serialize(e.to_string()))?;
    // The wrapper binds `xsi` for `nillable`; our own output is read back with the
    // default limits raised, since it is trusted and may be large.
    let wrapped = format!(r#"<w xmlns:xsi="{XSI_NS}">{inner}</w>"#);
    let limits = XmlLimits::default()
        .max_body_bytes(usize::MAX)
        .max_text_bytes(usize::MAX)
        .max_elements(usize::MAX)
        .max_depth(1_000);
    let wrapper =
        xml::parse(wrapped.as_bytes(), &limits).map_err(|e| Error::Serialize(e.to_string()))?;
    wrapper
        .into_children()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Serialize("serializer produced no element".into()))
}

/// Deserializes an element's content into `T`.
pub fn from_element<T: DeserializeOwned>(element: &Element) -> Result<T> {
    let mut plain = String::new();
    element.write_plain(&mut plain);
    quick_xml::de::from_str(&plain).map_err(|e| Error::InvalidBody(e.to_string()))
}

/// Serde helper for nillable fields: `#[serde(default, with = "soap_core::body::nillable")]`
/// on an `Option<T>` writes `None` as an element with `xsi:nil="true"` (XML Schema part 1
/// section 2.6.2) and reads such an element as `None`.
pub mod nillable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Nil {
        #[serde(rename = "@xsi:nil")]
        nil: &'static str,
    }

    /// Writes `None` as `xsi:nil="true"`.
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => v.serialize(serializer),
            None => Nil { nil: "true" }.serialize(serializer),
        }
    }

    /// Reads a value; nil elements never reach here (they are read as absent).
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        T::deserialize(deserializer).map(Some)
    }
}
