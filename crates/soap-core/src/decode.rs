//! Serde decoding of a body entry straight from the hardened reader's items (or from an
//! [`Element`] already read), without writing XML text for another parser to read again.
//!
//! It reads the shapes document/literal bodies use: a struct is its child elements by local
//! name (and its unprefixed attributes as `@name`), a `Vec` field is a run of elements with
//! the same name, an `Option` is present or absent, a scalar or a unit enum variant is the
//! element's trimmed text. Anything else (`$text`/`$value` fields, maps, tuples, enums with
//! content, `deserialize_any` as `flatten` and untagged enums use) is
//! [`DecodeError::Unsupported`], and the caller decodes the same element the slower way
//! (quick-xml's deserializer over the element written without namespaces), which is also
//! where a request that does not fit its type gets its error message from. So for every
//! value this module does produce, it is the value the slower way gives.

use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::xml::{Element, Item, ItemResult, ReadError, Tag, TagAttribute, TagAttributes};

/// Why an entry was not decoded here.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// A shape this decoder leaves to quick-xml's deserializer, or a value that does not
    /// fit the type (quick-xml's deserializer words the error).
    Unsupported,
    /// The hardened reader refused the document.
    Xml(crate::Error),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Unsupported => f.write_str("not decoded by the direct decoder"),
            DecodeError::Xml(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        DecodeError::Unsupported
    }
}

impl From<crate::Error> for DecodeError {
    fn from(e: crate::Error) -> Self {
        DecodeError::Xml(e)
    }
}

impl From<ReadError> for DecodeError {
    #[cold]
    fn from(e: ReadError) -> Self {
        DecodeError::Xml(e.into())
    }
}

pub(crate) type DResult<T> = std::result::Result<T, DecodeError>;

/// Where items come from. The reader's own result type, so that an item is handed from
/// the reader to the decoder without being copied into another one on the way.
pub(crate) trait Source<'de> {
    fn next_item(&mut self) -> ItemResult<'de>;
}

/// Whether a start tag has a prefixed attribute: every start tag the decoder reads is
/// checked, and one with `xsi:nil`, `xsi:type` or the like is left to the tree's way with
/// its checks.
fn has_prefixed_attribute(tag: &Tag<'_>) -> bool {
    tag.attributes.iter().any(|a| a.namespace.is_some())
}

/// Decodes `T` from the element whose start tag (`tag`) `source` has just handed out; reads
/// through its end tag.
pub(crate) fn decode<'de, T: de::Deserialize<'de>, S: Source<'de>>(
    source: S,
    tag: Tag<'de>,
) -> DResult<T> {
    let mut reader = Reader {
        source,
        peeked: None,
    };
    T::deserialize(ElementDeserializer {
        reader: &mut reader,
        attributes: tag.attributes,
    })
}

/// Decodes `T` from an element of a tree: its text, then its children that are not
/// `xsi:nil`, and its unprefixed attributes, as [`Element::write_plain`] writes it.
pub(crate) fn from_element<'de, T: de::Deserialize<'de>>(element: &'de Element) -> DResult<T> {
    let mut source = TreeSource {
        stack: Vec::new(),
        pending: None,
    };
    let tag = source.enter(element);
    decode(source, tag)
}

struct TreeSource<'de> {
    /// Open elements and how many of their children have been handed out.
    stack: Vec<(&'de Element, usize)>,
    /// Text handed out before the first child.
    pending: Option<&'de str>,
}

impl<'de> TreeSource<'de> {
    fn enter(&mut self, element: &'de Element) -> Tag<'de> {
        self.stack.push((element, 0));
        self.pending = Some(element.text()).filter(|t| !t.is_empty());
        Tag {
            namespace: None,
            name: element.name(),
            attributes: element
                .attributes()
                .iter()
                .filter(|a| a.namespace.is_none())
                .map(|a| TagAttribute {
                    namespace: None,
                    name: &a.name,
                    value: Cow::Borrowed(&a.value),
                })
                .collect(),
            declares: false,
        }
    }
}

impl<'de> Source<'de> for TreeSource<'de> {
    fn next_item(&mut self) -> ItemResult<'de> {
        if let Some(text) = self.pending.take() {
            return Ok(Item::Text(Cow::Borrowed(text)));
        }
        let Some((element, next)) = self.stack.last_mut() else {
            return Ok(Item::Eof);
        };
        let element: &'de Element = element;
        while let Some(child) = element.children().get(*next) {
            *next += 1;
            if !child.is_nil() {
                return Ok(Item::Start(self.enter(child)));
            }
        }
        self.stack.pop();
        Ok(Item::End)
    }
}

/// The hardened reader as a [`Source`] (the decoder refuses, as unsupported, any start tag
/// with a prefixed attribute: [`has_prefixed_attribute`]).
pub(crate) struct EventSource<'r, 'a, 'l> {
    pub(crate) events: &'r mut crate::xml::Events<'a, 'l>,
}

impl<'a> Source<'a> for EventSource<'_, 'a, '_> {
    // Inlined into the decoder, so that an item is not copied through one more layer.
    #[inline(always)]
    fn next_item(&mut self) -> ItemResult<'a> {
        self.events.next()
    }
}

struct Reader<'de, S> {
    source: S,
    peeked: Option<Item<'de>>,
}

impl<'de, S: Source<'de>> Reader<'de, S> {
    #[inline]
    fn peek(&mut self) -> DResult<&Item<'de>> {
        if self.peeked.is_none() {
            self.peeked = Some(self.source.next_item()?);
        }
        // Not `ok_or`: building and dropping the error on every call showed in profiles.
        match &self.peeked {
            Some(item) => Ok(item),
            None => Err(DecodeError::Unsupported),
        }
    }

    #[inline(always)]
    fn next(&mut self) -> ItemResult<'de> {
        match self.peeked.take() {
            Some(item) => Ok(item),
            None => self.source.next_item(),
        }
    }

    /// The text of the element being read up to its end tag, as it is (quick-xml's
    /// deserializer trims it for numbers and booleans only); a child element is unsupported.
    fn text(&mut self) -> DResult<Cow<'de, str>> {
        // The common element: one piece of text, then the end tag.
        let mut text: Cow<'de, str> = match self.next()? {
            Item::Text(t) => match self.next()? {
                Item::End => return Ok(t),
                Item::Text(more) if t.is_empty() => more,
                Item::Text(more) => {
                    let mut t = t;
                    t.to_mut().push_str(&more);
                    t
                }
                Item::Start(_) | Item::Eof => return Err(DecodeError::Unsupported),
            },
            Item::End => return Ok(Cow::Borrowed("")),
            Item::Start(_) | Item::Eof => return Err(DecodeError::Unsupported),
        };
        loop {
            match self.next()? {
                Item::Text(t) if text.is_empty() => text = t,
                Item::Text(t) => text.to_mut().push_str(&t),
                Item::End => return Ok(text),
                Item::Start(_) | Item::Eof => return Err(DecodeError::Unsupported),
            }
        }
    }

    /// Skips the rest of the element being read, through its end tag.
    fn skip(&mut self) -> DResult<()> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Item::Start(tag) if has_prefixed_attribute(&tag) => {
                    return Err(DecodeError::Unsupported);
                }
                Item::Start(_) => depth += 1,
                Item::End if depth == 0 => return Ok(()),
                Item::End => depth -= 1,
                Item::Text(_) => {}
                Item::Eof => return Err(DecodeError::Unsupported),
            }
        }
    }
}

/// `a == b` for the short names of elements, without a call to `memcmp`.
#[inline(always)]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn trim_xml(s: &str) -> &str {
    crate::xml::trim_whitespace(s)
}

/// An element whose start tag has been read.
struct ElementDeserializer<'r, 'de, S> {
    reader: &'r mut Reader<'de, S>,
    attributes: TagAttributes<'de>,
}

macro_rules! parsed {
    ($($method:ident => $visit:ident,)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
                let text = self.reader.text()?;
                visitor.$visit(trim_xml(&text).parse().map_err(|_| DecodeError::Unsupported)?)
            }
        )*
    };
}

macro_rules! unsupported {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, _visitor: V) -> DResult<V::Value> {
                Err(DecodeError::Unsupported)
            }
        )*
    };
}

impl<'de, S: Source<'de>> de::Deserializer<'de> for ElementDeserializer<'_, 'de, S> {
    type Error = DecodeError;

    parsed! {
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    unsupported! {
        deserialize_any deserialize_bytes deserialize_byte_buf deserialize_unit deserialize_seq
        deserialize_map deserialize_identifier
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        // XML Schema part 2 section 3.2.2, as quick-xml's deserializer reads it.
        match trim_xml(&self.reader.text()?) {
            "true" | "1" => visitor.visit_bool(true),
            "false" | "0" => visitor.visit_bool(false),
            _ => Err(DecodeError::Unsupported),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        match self.reader.text()? {
            Cow::Borrowed(t) => visitor.visit_borrowed_str(t),
            Cow::Owned(t) => visitor.visit_string(t),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _visitor: V,
    ) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> DResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> DResult<V::Value> {
        if fields.iter().any(|f| f.starts_with('$')) {
            return Err(DecodeError::Unsupported);
        }
        visitor.visit_map(Fields {
            reader: self.reader,
            attributes: self.attributes.into_iter(),
            value: None,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> DResult<V::Value> {
        let text = self.reader.text()?;
        visitor.visit_enum(UnitVariant(text))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        self.reader.skip()?;
        visitor.visit_unit()
    }
}

/// A unit variant named by an element's text.
struct UnitVariant<'de>(Cow<'de, str>);

impl<'de> de::EnumAccess<'de> for UnitVariant<'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> DResult<(V::Value, Self)> {
        let name: de::value::CowStrDeserializer<'de, DecodeError> =
            self.0.clone().into_deserializer();
        Ok((seed.deserialize(name)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> DResult<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> DResult<T::Value> {
        Err(DecodeError::Unsupported)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }
}

/// What the key handed out last stands for.
enum Pending<'de> {
    Attribute(Cow<'de, str>),
    /// Child elements named as this start tag (already read), starting with it.
    Element(Tag<'de>),
}

/// A struct's attributes and child elements.
struct Fields<'r, 'de, S> {
    reader: &'r mut Reader<'de, S>,
    attributes: std::vec::IntoIter<TagAttribute<'de>>,
    value: Option<Pending<'de>>,
}

impl<'de, S: Source<'de>> de::MapAccess<'de> for Fields<'_, 'de, S> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> DResult<Option<K::Value>> {
        if let Some(attribute) = self.attributes.next() {
            self.value = Some(Pending::Attribute(attribute.value));
            let key = format!("@{}", attribute.name);
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        // The start tag is read here, not peeked: its field's deserializer takes it.
        loop {
            match self.reader.next()? {
                Item::Text(t) if crate::xml::is_whitespace(&t) => {}
                Item::Start(tag) if has_prefixed_attribute(&tag) => {
                    return Err(DecodeError::Unsupported);
                }
                Item::Start(tag) => {
                    let name = tag.name;
                    self.value = Some(Pending::Element(tag));
                    let key: de::value::BorrowedStrDeserializer<'de, DecodeError> =
                        de::value::BorrowedStrDeserializer::new(name);
                    return seed.deserialize(key).map(Some);
                }
                Item::End => return Ok(None),
                Item::Text(_) | Item::Eof => return Err(DecodeError::Unsupported),
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> DResult<V::Value> {
        match self.value.take() {
            Some(Pending::Attribute(value)) => seed.deserialize(AttributeDeserializer(value)),
            Some(Pending::Element(tag)) => seed.deserialize(FieldDeserializer {
                reader: self.reader,
                tag,
            }),
            None => Err(DecodeError::Unsupported),
        }
    }
}

/// An attribute's value: a scalar.
struct AttributeDeserializer<'de>(Cow<'de, str>);

impl<'de> de::Deserializer<'de> for AttributeDeserializer<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        match self.0 {
            Cow::Borrowed(t) => visitor.visit_borrowed_str(t),
            Cow::Owned(t) => visitor.visit_string(t),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        // quick-xml reads an empty attribute as `None`; left to it.
        if self.0.is_empty() {
            return Err(DecodeError::Unsupported);
        }
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
    }
}

/// The elements of a struct field, from the start tag of the first (already read): that
/// element for a scalar or struct, the run of elements with the field's name for a sequence.
struct FieldDeserializer<'r, 'de, S> {
    reader: &'r mut Reader<'de, S>,
    tag: Tag<'de>,
}

impl<'r, 'de, S: Source<'de>> FieldDeserializer<'r, 'de, S> {
    fn element(self) -> DResult<ElementDeserializer<'r, 'de, S>> {
        Ok(ElementDeserializer {
            reader: self.reader,
            attributes: self.tag.attributes,
        })
    }
}

macro_rules! to_element {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
                self.element()?.$method(visitor)
            }
        )*
    };
}

impl<'de, S: Source<'de>> de::Deserializer<'de> for FieldDeserializer<'_, 'de, S> {
    type Error = DecodeError;

    to_element! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_unit deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> DResult<V::Value> {
        self.element()?.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> DResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> DResult<V::Value> {
        visitor.visit_seq(Run {
            reader: self.reader,
            name: self.tag.name,
            first: Some(self.tag.attributes),
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        _visitor: V,
    ) -> DResult<V::Value> {
        Err(DecodeError::Unsupported)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> DResult<V::Value> {
        self.element()?.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> DResult<V::Value> {
        self.element()?.deserialize_enum(name, variants, visitor)
    }
}

/// Consecutive elements with one name (whitespace between them skipped).
struct Run<'r, 'de, S> {
    reader: &'r mut Reader<'de, S>,
    name: &'de str,
    /// The attributes of the first element, whose start tag has been read.
    first: Option<TagAttributes<'de>>,
}

impl<'de, S: Source<'de>> de::SeqAccess<'de> for Run<'_, 'de, S> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> DResult<Option<T::Value>> {
        if let Some(attributes) = self.first.take() {
            return seed
                .deserialize(ElementDeserializer {
                    reader: self.reader,
                    attributes,
                })
                .map(Some);
        }
        loop {
            match self.reader.peek()? {
                Item::Text(t) if crate::xml::is_whitespace(t) => {
                    self.reader.next()?;
                }
                // Compared inline: a `memcmp` call per element showed in profiles.
                Item::Start(tag) if same_name(tag.name, self.name) => {
                    if has_prefixed_attribute(tag) {
                        return Err(DecodeError::Unsupported);
                    }
                    let Item::Start(tag) = self.reader.next()? else {
                        return Err(DecodeError::Unsupported);
                    };
                    return seed
                        .deserialize(ElementDeserializer {
                            reader: self.reader,
                            attributes: tag.attributes,
                        })
                        .map(Some);
                }
                Item::Start(_) | Item::End => return Ok(None),
                Item::Text(_) | Item::Eof => return Err(DecodeError::Unsupported),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use serde::Deserialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::xml::{self, Events, XmlLimits};

    #[derive(Debug, PartialEq, Deserialize)]
    enum Status {
        Pending,
        Shipped,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Line {
        sku: String,
        quantity: u32,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Order {
        customer: String,
        #[serde(rename = "line", default)]
        lines: Vec<Line>,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Scalars {
        #[serde(rename = "@kind", default)]
        kind: Option<String>,
        flag: bool,
        small: i8,
        big: i64,
        ratio: f32,
        letter: char,
        status: Status,
        #[serde(default)]
        tags: Option<Vec<String>>,
        #[serde(default)]
        nested: Option<Line>,
    }

    /// Decodes `doc`'s root three ways: from the tree, from the reader's items, and through
    /// quick-xml's deserializer over the tree written as text. Whenever a direct way gives
    /// a value, it must be the value quick-xml's way gives. Returns whether both direct ways
    /// decoded it.
    fn agree<T: DeserializeOwned + PartialEq + std::fmt::Debug>(doc: &str) -> bool {
        let limits = XmlLimits::default();
        let element = xml::parse(doc.as_bytes(), &limits).unwrap();
        let reference: crate::Result<T> = crate::body::from_element_text(&element);
        let from_tree: DResult<T> = from_element(&element);
        let mut events = Events::new(doc.as_bytes(), &limits, false).unwrap();
        let tag = loop {
            match events.next().unwrap() {
                Item::Start(tag) => break tag,
                _ => continue,
            }
        };
        let from_items: DResult<T> = decode(
            EventSource {
                events: &mut events,
            },
            tag,
        );
        if let Ok(value) = &from_tree {
            assert_eq!(Some(value), reference.as_ref().ok(), "tree: {doc}");
        }
        if let Ok(value) = &from_items {
            assert_eq!(Some(value), reference.as_ref().ok(), "items: {doc}");
            assert!(matches!(events.next(), Ok(Item::Eof)), "items: {doc}");
        }
        from_tree.is_ok() && from_items.is_ok()
    }

    #[test]
    fn decodes_what_quick_xml_decodes() {
        let decoded = [
            "<o xmlns='urn:o'><customer>c-1</customer><line><sku>A</sku><quantity>2</quantity></line>\n <line><sku>B</sku><quantity> 3 </quantity></line><note>a &amp; b</note></o>",
            "<p:o xmlns:p='urn:o'><p:customer> spaced </p:customer></p:o>",
            "<o><customer/><note/></o>",
            "<o><customer>x<!-- c -->y</customer><unknown><deep>1</deep></unknown><line><sku><![CDATA[<s>]]></sku><quantity>1</quantity></line></o>",
            "<o><customer>&#32;c&#x20;</customer><note>\n</note></o>",
            "<s kind='k'><flag> 1 </flag><small>-5</small><big>+9000000000</big><ratio>1.5e3</ratio><letter> z </letter><status>Shipped</status><tags>a</tags><tags/><nested><sku>n</sku><quantity>0</quantity></nested></s>",
        ];
        for doc in decoded {
            let ok = if doc.starts_with("<s") {
                agree::<Scalars>(doc)
            } else {
                agree::<Order>(doc)
            };
            assert!(ok, "not decoded directly: {doc}");
        }
        // Decoded or not, never a value quick-xml would not give.
        for doc in [
            "<o><line><sku>A</sku><quantity>x</quantity></line><customer>c</customer></o>",
            "<o><customer>c</customer><line><sku>A</sku><quantity>1</quantity></line><note>n</note><line><sku>B</sku><quantity>1</quantity></line></o>",
            "<o><customer>c</customer><customer>d</customer></o>",
            "<o>text<customer>c</customer></o>",
            "<o><customer>c<b/></customer></o>",
            "<o><note>n</note></o>",
            "<o xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><customer>c</customer><note xsi:nil='true'/></o>",
            "<o xmlns:p='urn:p'><customer p:a='1'>c</customer></o>",
            "<s><flag>yes</flag><small>300</small><big>1</big><ratio>x</ratio><letter>ab</letter><status>Pending</status></s>",
            "<s><flag>true</flag><small>1</small><big>1</big><ratio>1</ratio><letter>a</letter><status> Pending </status></s>",
            "<s><flag>true</flag><small>1</small><big>1</big><ratio>1</ratio><letter>a</letter><status>Other</status></s>",
            "<s><flag>true</flag><small>1</small><big>1</big><ratio>1</ratio><letter> </letter><status>Pending</status></s>",
        ] {
            if doc.starts_with("<s") {
                agree::<Scalars>(doc);
            } else {
                agree::<Order>(doc);
            }
        }
    }
}
