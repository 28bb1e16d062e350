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
    let wrapper = xml::parse(wrapped.as_bytes(), &trusted_limits())
        .map_err(|e| Error::Serialize(e.to_string()))?;
    wrapper
        .into_children()
        .into_iter()
        .next()
        .ok_or_else(|| Error::Serialize("serializer produced no element".into()))
}

/// Initial capacity of the text buffers for a body (a few lines of a typical message).
pub(crate) const TYPICAL_BODY_BYTES: usize = 2048;

/// Serializes `value` as element `name` in `namespace` (every descendant qualified) straight
/// to XML text, for splicing into an envelope: the text [`to_element`] would read back into a
/// tree and write again. Our serializer's output is trusted well-formed XML; a default
/// namespace declaration on the root puts its unprefixed descendants in `namespace`, as
/// [`to_element`] does, and `xsi` is declared on each element with an `xsi:` attribute
/// ([`nillable`]), where [`crate::xml::Element::to_xml`] declares it. Returns `None` (the
/// caller falls back to [`to_element`]) if the text does not start with the root tag.
#[cfg(test)]
pub(crate) fn to_qualified_xml<T: Serialize + ?Sized>(
    namespace: &str,
    name: &str,
    value: &T,
) -> Result<Option<String>> {
    let mut out = String::with_capacity(TYPICAL_BODY_BYTES);
    Ok(write_qualified_xml(&mut out, namespace, name, value)?.then_some(out))
}

/// [`to_qualified_xml`] appended to `out` (the response envelope being written); `false`,
/// with `out` as it was, where the caller falls back to [`to_element`].
pub(crate) fn write_qualified_xml<T: Serialize + ?Sized>(
    out: &mut String,
    namespace: &str,
    name: &str,
    value: &T,
) -> Result<bool> {
    // Written directly for the shapes the direct encoder knows (the same text).
    if crate::encode::write_qualified_xml(out, namespace, name, value) {
        return Ok(true);
    }
    match to_qualified_xml_spliced(namespace, name, value)? {
        Some(xml) => {
            out.push_str(&xml);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// [`to_qualified_xml`] through quick-xml's serializer, with the declarations spliced in.
pub(crate) fn to_qualified_xml_spliced<T: Serialize + ?Sized>(
    namespace: &str,
    name: &str,
    value: &T,
) -> Result<Option<String>> {
    // Sized for a typical body up front: growing the string was a tenth of the encoding.
    let mut inner = String::with_capacity(TYPICAL_BODY_BYTES);
    let serializer = quick_xml::se::Serializer::with_root(&mut inner, Some(name))
        .map_err(|e| Error::Serialize(e.to_string()))?;
    value
        .serialize(serializer)
        .map_err(|e| Error::Serialize(e.to_string()))?;
    let root_named = inner
        .strip_prefix('<')
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with([' ', '>', '/']));
    if !root_named {
        return Ok(None);
    }
    let bytes = inner.as_bytes();
    let mut out = String::with_capacity(inner.len() + namespace.len() + 64);
    let mut copied = 0;
    let mut at = 0;
    let mut root = true;
    // Text never holds a raw `<` (the serializer escapes it), so each `<` opens a tag; in a
    // tag, attribute values are in double quotes with any `"` in them escaped.
    while let Some(lt) = bytes
        .get(at..)
        .and_then(|b| b.iter().position(|&c| c == b'<'))
    {
        let start = at + lt;
        let mut end = start + 1;
        while bytes
            .get(end)
            .is_some_and(|&c| !matches!(c, b' ' | b'>' | b'/') || end == start + 1)
        {
            end += 1;
        }
        let name_end = end;
        let mut quoted = false;
        let mut uses_xsi = false;
        while let Some(&c) = bytes.get(end) {
            match c {
                b'"' => quoted = !quoted,
                b'>' if !quoted => break,
                b' ' if !quoted && bytes.get(end + 1..).is_some_and(|r| r.starts_with(b"xsi:")) => {
                    uses_xsi = true;
                }
                _ => {}
            }
            end += 1;
        }
        let Some(head) = inner.get(copied..name_end) else {
            return Ok(None);
        };
        out.push_str(head);
        if root {
            out.push_str(" xmlns=\"");
            out.push_str(&xml::escape(namespace));
            out.push('"');
            root = false;
        }
        if uses_xsi {
            out.push_str(" xmlns:xsi=\"");
            out.push_str(XSI_NS);
            out.push('"');
        }
        copied = name_end;
        at = end;
    }
    match inner.get(copied..) {
        Some(rest) => out.push_str(rest),
        None => return Ok(None),
    }
    Ok(Some(out))
}

/// Reads text written by [`to_qualified_xml`] back into the element [`to_element`] returns.
pub(crate) fn from_qualified_xml(namespace: &str, xml: &str) -> Result<Element> {
    let mut element = xml::parse(xml.as_bytes(), &trusted_limits())
        .map_err(|e| Error::Serialize(e.to_string()))?;
    element.qualify(namespace);
    Ok(element)
}

/// Limits for reading our own serializer's output back: trusted, and possibly large.
fn trusted_limits() -> XmlLimits {
    XmlLimits::default()
        .max_body_bytes(usize::MAX)
        .max_text_bytes(usize::MAX)
        .max_elements(usize::MAX)
        .max_depth(1_000)
}

/// Deserializes an element's content into `T`.
pub fn from_element<T: DeserializeOwned>(element: &Element) -> Result<T> {
    // Straight from the tree for the shapes the direct decoder reads; quick-xml's
    // deserializer over the element written as text for the others (and for the error).
    match crate::decode::from_element(element) {
        Ok(value) => Ok(value),
        Err(_) => from_element_text(element),
    }
}

/// [`from_element`] through quick-xml's deserializer: the element written without
/// namespaces, then read.
pub(crate) fn from_element_text<T: DeserializeOwned>(element: &Element) -> Result<T> {
    let mut plain = String::with_capacity(TYPICAL_BODY_BYTES);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct Line {
        #[serde(rename = "@kind")]
        kind: &'static str,
        sku: String,
        #[serde(with = "nillable")]
        note: Option<String>,
    }

    #[derive(Serialize)]
    struct Order {
        id: String,
        #[serde(with = "nillable")]
        tracking: Option<String>,
        line: Vec<Line>,
        empty: Vec<u8>,
    }

    #[test]
    fn spliced_text_is_what_the_element_writes() {
        let order = Order {
            id: r#"a "quoted" <xsi:nil="1"> & 'b'"#.into(),
            tracking: None,
            line: vec![
                Line {
                    kind: r#"x"y>z xsi:q"#,
                    sku: "A-1".into(),
                    note: None,
                },
                Line {
                    kind: "plain",
                    sku: "B-2".into(),
                    note: Some("n".into()),
                },
            ],
            empty: Vec::new(),
        };
        let spliced = to_qualified_xml("urn:shop", "orderResponse", &order)
            .unwrap()
            .unwrap();
        let element = to_element("urn:shop", "orderResponse", &order).unwrap();
        // The same tree (quotes in text are escaped by the tree's writer only)...
        assert_eq!(from_qualified_xml("urn:shop", &spliced).unwrap(), element);
        assert!(
            spliced.contains(r#"<id>a "quoted" &lt;xsi:nil="1"&gt;"#),
            "{spliced}"
        );
        // ...and the same bytes where the text has no quotes.
        let order = Order {
            id: "o-1 <&>".into(),
            ..order
        };
        let spliced = to_qualified_xml("urn:shop", "orderResponse", &order)
            .unwrap()
            .unwrap();
        let element = to_element("urn:shop", "orderResponse", &order).unwrap();
        assert_eq!(spliced, element.to_xml());
        assert!(spliced.starts_with(r#"<orderResponse xmlns="urn:shop"><id>"#));
        assert!(spliced.contains(
            r#"<tracking xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>"#
        ));
    }
}
