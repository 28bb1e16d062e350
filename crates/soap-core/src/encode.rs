//! Serde encoding of a response body entry straight into its qualified XML text: the text
//! [`crate::body::to_qualified_xml`] makes by running quick-xml's serializer and then adding
//! the namespace declarations, written in one pass with no buffer per element.
//!
//! It writes the shapes document/literal bodies use (a struct with attributes before its
//! child elements, scalars, strings, unit enum variants, options, sequences, nested structs,
//! newtype structs). Anything else is [`Unsupported`] and the caller takes quick-xml's way,
//! so the text is always the one quick-xml's serializer (with its default settings: no
//! indentation, partial escaping, empty elements self-closed) and the declarations give.

use std::fmt::Write as _;

use serde::ser::{self, Impossible, Serialize};

/// A shape this encoder leaves to quick-xml's serializer.
#[derive(Debug)]
pub(crate) struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not encoded by the direct encoder")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Unsupported
    }
}

type SResult<T = ()> = std::result::Result<T, Unsupported>;

/// `value` as element `name` in `namespace` (every descendant qualified through a default
/// namespace declaration on the root), with `xmlns:xsi` declared on each element that has
/// an `xsi:` attribute; `None` for a shape left to quick-xml.
#[cfg(test)]
pub(crate) fn to_qualified_xml<T: Serialize + ?Sized>(
    namespace: &str,
    name: &str,
    value: &T,
    capacity: usize,
) -> Option<String> {
    let mut out = String::with_capacity(capacity);
    write_qualified_xml(&mut out, namespace, name, value).then_some(out)
}

/// [`to_qualified_xml`] appended to `out` (the response envelope being written, so that the
/// body entry is not copied again); `false`, with `out` as it was, for a shape left to
/// quick-xml.
pub(crate) fn write_qualified_xml<T: Serialize + ?Sized>(
    out: &mut String,
    namespace: &str,
    name: &str,
    value: &T,
) -> bool {
    if !is_simple_name(name) {
        return false;
    }
    let start = out.len();
    let written = value.serialize(Root {
        out: &mut *out,
        namespace,
        name,
    });
    if written.is_err() {
        out.truncate(start);
        return false;
    }
    true
}

/// A name quick-xml's serializer writes as it is and the splicing reads back the same way:
/// an ASCII letter or `_`, then ASCII letters, digits, `_`, `-` and `.`.
fn is_simple_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    // A table lookup per byte: this runs for every field written.
    bytes.first().is_some_and(|&b| name_class(b) == NAME_START)
        && bytes.iter().all(|&b| name_class(b) != 0)
}

/// [`is_simple_name`]'s class of a byte: 0 for one no name has, [`NAME_START`] for one a
/// name can start with, 1 for one it can only continue with.
fn name_class(b: u8) -> u8 {
    NAME_CLASSES.get(usize::from(b)).copied().unwrap_or(0)
}

const NAME_START: u8 = 2;

// `i` is below the table's length: the index cannot fail (and this runs at compile time).
#[allow(clippy::indexing_slicing)]
const NAME_CLASSES: [u8; 256] = {
    const fn class(b: u8) -> u8 {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => NAME_START,
            b'0'..=b'9' | b'-' | b'.' => 1,
            _ => 0,
        }
    }
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = class(i as u8);
        i += 1;
    }
    table
};

/// Two ASCII bytes: cheaper than a `push_str` (a `memcpy` call) for the `</` and `/>` of
/// every element.
fn push_two(out: &mut String, first: u8, second: u8) {
    out.push(char::from(first));
    out.push(char::from(second));
}

/// Text content, escaped as quick-xml's serializer escapes it (partial quoting).
fn push_text(out: &mut String, text: &str) {
    push_escaped(out, text, |b| matches!(b, b'&' | b'<' | b'>' | b'\r'));
}

/// A double-quoted attribute value, escaped the same way.
fn push_attribute_value(out: &mut String, text: &str) {
    push_escaped(out, text, |b| {
        matches!(b, b'&' | b'<' | b'>' | b'"' | b'\r' | b'\n' | b'\t')
    });
}

fn push_escaped(out: &mut String, text: &str, escaped: impl Fn(u8) -> bool) {
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        if !escaped(b) {
            continue;
        }
        out.push_str(text.get(from..i).unwrap_or(""));
        out.push_str(match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\r' => "&#13;",
            b'\n' => "&#10;",
            _ => "&#9;",
        });
        from = i + 1;
    }
    out.push_str(text.get(from..).unwrap_or(""));
}

macro_rules! unsupported {
    ($($method:ident($($ty:ty),*))*) => {
        $(
            fn $method(self, $(_: $ty),*) -> SResult<Self::Ok> {
                Err(Unsupported)
            }
        )*
    };
}

macro_rules! unsupported_compounds {
    () => {
        type SerializeTuple = Impossible<(), Unsupported>;
        type SerializeTupleStruct = Impossible<(), Unsupported>;
        type SerializeTupleVariant = Impossible<(), Unsupported>;
        type SerializeMap = Impossible<(), Unsupported>;
        type SerializeStructVariant = Impossible<(), Unsupported>;

        fn serialize_bytes(self, _v: &[u8]) -> SResult {
            Err(Unsupported)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _value: &T,
        ) -> SResult {
            Err(Unsupported)
        }
        fn serialize_tuple(self, _len: usize) -> SResult<Self::SerializeTuple> {
            Err(Unsupported)
        }
        fn serialize_tuple_struct(
            self,
            _name: &'static str,
            _len: usize,
        ) -> SResult<Self::SerializeTupleStruct> {
            Err(Unsupported)
        }
        fn serialize_tuple_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> SResult<Self::SerializeTupleVariant> {
            Err(Unsupported)
        }
        fn serialize_map(self, _len: Option<usize>) -> SResult<Self::SerializeMap> {
            Err(Unsupported)
        }
        fn serialize_struct_variant(
            self,
            _name: &'static str,
            _index: u32,
            _variant: &'static str,
            _len: usize,
        ) -> SResult<Self::SerializeStructVariant> {
            Err(Unsupported)
        }
    };
}

/// The body entry: a struct only.
struct Root<'o, 'n> {
    out: &'o mut String,
    namespace: &'n str,
    name: &'n str,
}

impl<'o, 'n> ser::Serializer for Root<'o, 'n> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeStruct = Struct<'o, 'n>;
    unsupported_compounds!();

    unsupported! {
        serialize_bool(bool) serialize_i8(i8) serialize_i16(i16) serialize_i32(i32)
        serialize_i64(i64) serialize_u8(u8) serialize_u16(u16) serialize_u32(u32)
        serialize_u64(u64) serialize_f32(f32) serialize_f64(f64) serialize_char(char)
        serialize_str(&str) serialize_none() serialize_unit()
        serialize_unit_struct(&'static str)
        serialize_unit_variant(&'static str, u32, &'static str)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> SResult {
        Err(Unsupported)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> SResult {
        Err(Unsupported)
    }
    fn serialize_seq(self, _len: Option<usize>) -> SResult<Self::SerializeSeq> {
        Err(Unsupported)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> SResult<Struct<'o, 'n>> {
        let out = self.out;
        out.push('<');
        out.push_str(self.name);
        out.push_str(" xmlns=\"");
        out.push_str(&crate::xml::escape(self.namespace));
        out.push('"');
        Ok(Struct {
            declarations_at: out.len(),
            name: self.name,
            out,
            open: true,
            xsi_declared: false,
        })
    }
}

/// A struct's element: attributes go into its start tag, which stays open (`open`) until
/// the first child writes something.
struct Struct<'o, 'n> {
    out: &'o mut String,
    name: &'n str,
    /// Where `xmlns:xsi` goes if an `xsi:` attribute comes.
    declarations_at: usize,
    open: bool,
    xsi_declared: bool,
}

impl ser::SerializeStruct for Struct<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> SResult {
        if let Some(attribute) = key.strip_prefix('@') {
            let local = attribute.strip_prefix("xsi:").unwrap_or(attribute);
            if !self.open || !is_simple_name(local) {
                return Err(Unsupported);
            }
            if local.len() != attribute.len() && !self.xsi_declared {
                self.out.insert_str(self.declarations_at, XSI_DECLARATION);
                self.xsi_declared = true;
            }
            self.out.push(' ');
            self.out.push_str(attribute);
            self.out.push_str("=\"");
            value.serialize(AttributeValue { out: self.out })?;
            self.out.push('"');
            return Ok(());
        }
        if !is_simple_name(key) {
            return Err(Unsupported);
        }
        value.serialize(Field {
            out: self.out,
            key,
            parent_open: &mut self.open,
        })
    }

    fn end(self) -> SResult {
        if self.open {
            push_two(self.out, b'/', b'>');
        } else {
            push_two(self.out, b'<', b'/');
            self.out.push_str(self.name);
            self.out.push('>');
        }
        Ok(())
    }
}

/// `xmlns:xsi` as the splicing writes it (checked against [`XSI_NS`] by a unit test).
const XSI_DECLARATION: &str = " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";

/// A struct field written as elements named `key`.
struct Field<'o, 'p> {
    out: &'o mut String,
    key: &'static str,
    parent_open: &'p mut bool,
}

impl Field<'_, '_> {
    /// Closes the parent's start tag, then opens this element's.
    fn start(&mut self) {
        if *self.parent_open {
            self.out.push('>');
            *self.parent_open = false;
        }
        self.out.push('<');
        self.out.push_str(self.key);
    }

    fn empty(mut self) -> SResult {
        self.start();
        push_two(self.out, b'/', b'>');
        Ok(())
    }

    fn text(mut self, write: impl FnOnce(&mut String)) -> SResult {
        self.start();
        self.out.push('>');
        write(self.out);
        push_two(self.out, b'<', b'/');
        self.out.push_str(self.key);
        self.out.push('>');
        Ok(())
    }

    fn display(self, value: impl std::fmt::Display) -> SResult {
        self.text(|out| {
            let _ = write!(out, "{value}");
        })
    }

    fn integer(self, negative: bool, magnitude: u64) -> SResult {
        self.text(|out| push_integer(out, negative, magnitude))
    }
}

/// An integer as `Display` writes it, without the formatting machinery (a tenth of the
/// encoding of a typical body went there).
fn push_integer(out: &mut String, negative: bool, mut magnitude: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (magnitude % 10) as u8;
        }
        magnitude /= 10;
        if magnitude == 0 || at == 0 {
            break;
        }
    }
    if negative {
        out.push('-');
    }
    for &d in digits.get(at..).unwrap_or(&[]) {
        out.push(char::from(d));
    }
}

impl<'o> ser::Serializer for Field<'o, '_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Self;
    type SerializeStruct = Struct<'o, 'static>;
    unsupported_compounds!();

    fn serialize_bool(self, v: bool) -> SResult {
        self.text(|out| out.push_str(if v { "true" } else { "false" }))
    }
    fn serialize_i8(self, v: i8) -> SResult {
        self.integer(v < 0, i64::from(v).unsigned_abs())
    }
    fn serialize_i16(self, v: i16) -> SResult {
        self.integer(v < 0, i64::from(v).unsigned_abs())
    }
    fn serialize_i32(self, v: i32) -> SResult {
        self.integer(v < 0, i64::from(v).unsigned_abs())
    }
    fn serialize_i64(self, v: i64) -> SResult {
        self.integer(v < 0, v.unsigned_abs())
    }
    fn serialize_i128(self, v: i128) -> SResult {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> SResult {
        self.integer(false, u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> SResult {
        self.integer(false, u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> SResult {
        self.integer(false, u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> SResult {
        self.integer(false, v)
    }
    fn serialize_u128(self, v: u128) -> SResult {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> SResult {
        self.display(v)
    }
    fn serialize_f64(self, v: f64) -> SResult {
        self.display(v)
    }
    fn serialize_char(self, v: char) -> SResult {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> SResult {
        if v.is_empty() {
            return self.empty();
        }
        self.text(|out| push_text(out, v))
    }
    fn serialize_none(self) -> SResult {
        self.empty()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> SResult {
        value.serialize(self)
    }
    fn serialize_unit(self) -> SResult {
        self.empty()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> SResult {
        self.empty()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> SResult {
        if variant.starts_with('$') {
            return Err(Unsupported);
        }
        self.text(|out| push_text(out, variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> SResult {
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> SResult<Self> {
        Ok(self)
    }
    fn serialize_struct(
        mut self,
        _name: &'static str,
        _len: usize,
    ) -> SResult<Struct<'o, 'static>> {
        self.start();
        Ok(Struct {
            declarations_at: self.out.len(),
            name: self.key,
            out: self.out,
            open: true,
            xsi_declared: false,
        })
    }
}

impl ser::SerializeSeq for Field<'_, '_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> SResult {
        value.serialize(Field {
            out: self.out,
            key: self.key,
            parent_open: self.parent_open,
        })
    }

    fn end(self) -> SResult {
        Ok(())
    }
}

/// An attribute's value: a scalar.
struct AttributeValue<'o> {
    out: &'o mut String,
}

impl AttributeValue<'_> {
    fn display(self, value: impl std::fmt::Display) -> SResult {
        let _ = write!(self.out, "{value}");
        Ok(())
    }
}

impl ser::Serializer for AttributeValue<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    unsupported_compounds!();

    unsupported! {
        serialize_none() serialize_unit() serialize_unit_struct(&'static str)
    }

    fn serialize_bool(self, v: bool) -> SResult {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> SResult {
        self.display(v)
    }
    fn serialize_i16(self, v: i16) -> SResult {
        self.display(v)
    }
    fn serialize_i32(self, v: i32) -> SResult {
        self.display(v)
    }
    fn serialize_i64(self, v: i64) -> SResult {
        self.display(v)
    }
    fn serialize_u8(self, v: u8) -> SResult {
        self.display(v)
    }
    fn serialize_u16(self, v: u16) -> SResult {
        self.display(v)
    }
    fn serialize_u32(self, v: u32) -> SResult {
        self.display(v)
    }
    fn serialize_u64(self, v: u64) -> SResult {
        self.display(v)
    }
    fn serialize_f32(self, v: f32) -> SResult {
        self.display(v)
    }
    fn serialize_f64(self, v: f64) -> SResult {
        self.display(v)
    }
    fn serialize_char(self, v: char) -> SResult {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> SResult {
        push_attribute_value(self.out, v);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> SResult {
        Err(Unsupported)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> SResult {
        Err(Unsupported)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> SResult {
        Err(Unsupported)
    }
    fn serialize_seq(self, _len: Option<usize>) -> SResult<Self::SerializeSeq> {
        Err(Unsupported)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> SResult<Self::SerializeStruct> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Serialize;

    use super::*;
    use crate::xml::XSI_NS;

    #[derive(Serialize)]
    enum Status {
        Pending,
    }

    #[derive(Serialize)]
    struct Id(u64);

    #[derive(Serialize)]
    struct Nil {
        #[serde(rename = "@xsi:nil")]
        nil: &'static str,
    }

    #[derive(Serialize)]
    struct Line {
        #[serde(rename = "@kind")]
        kind: String,
        sku: String,
        quantity: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    }

    #[derive(Serialize)]
    struct Everything {
        id: Id,
        status: Status,
        tracking: Nil,
        flag: bool,
        ratio: f32,
        big: i64,
        min: i64,
        max: u64,
        zero: u8,
        small: i8,
        letter: char,
        empty: String,
        nothing: Option<String>,
        unit: (),
        lines: Vec<Line>,
        none_lines: Vec<Line>,
        maybe_lines: Option<Vec<u8>>,
        text: String,
    }

    #[derive(Serialize)]
    struct Empty {
        lines: Vec<u8>,
    }

    #[derive(Serialize)]
    struct Tupled {
        pair: (u8, u8),
    }

    #[test]
    fn the_declaration_is_the_xsi_namespace() {
        assert_eq!(XSI_DECLARATION, format!(" xmlns:xsi=\"{XSI_NS}\""));
    }

    /// The direct text is the spliced quick-xml text, byte for byte.
    fn same<T: Serialize>(value: &T) {
        let direct = to_qualified_xml("urn:x&\"y", "reply", value, 16).unwrap();
        let spliced = crate::body::to_qualified_xml_spliced("urn:x&\"y", "reply", value)
            .unwrap()
            .unwrap();
        assert_eq!(direct, spliced);
    }

    #[test]
    fn writes_what_quick_xml_and_the_splicing_write() {
        same(&Everything {
            id: Id(7),
            status: Status::Pending,
            tracking: Nil { nil: "true" },
            flag: true,
            ratio: 1.5e-7,
            big: -9_000_000_000,
            min: i64::MIN,
            max: u64::MAX,
            zero: 0,
            small: -128,
            letter: '<',
            empty: String::new(),
            nothing: None,
            unit: (),
            lines: vec![
                Line {
                    kind: "a\"b<c>&d\r\n\te 'f' xsi:g".into(),
                    sku: "x < y & z > w \"q\" 'r'\r\n\t".into(),
                    quantity: 3,
                    note: Some(String::new()),
                },
                Line {
                    kind: String::new(),
                    sku: "ünï".into(),
                    quantity: 0,
                    note: None,
                },
            ],
            none_lines: Vec::new(),
            maybe_lines: Some(vec![1, 2]),
            text: " spaced ".into(),
        });
        same(&Empty { lines: Vec::new() });
        same(&Nil { nil: "1" });
        // Shapes left to quick-xml.
        assert!(to_qualified_xml("urn:x", "reply", &Tupled { pair: (1, 2) }, 16).is_none());
        assert!(to_qualified_xml("urn:x", "reply", &5u8, 16).is_none());
        assert!(to_qualified_xml("urn:x", "p:reply", &Empty { lines: vec![] }, 16).is_none());
    }
}
