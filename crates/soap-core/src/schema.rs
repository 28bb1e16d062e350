//! XML Schema for Rust types, as used in the generated WSDL.
//!
//! [`XsdType`] says which schema type a Rust type is written as. It is implemented for
//! strings, numbers, `bool`, [`time::OffsetDateTime`] (`xs:dateTime`), `Option<T>`
//! (`minOccurs="0"`) and `Vec<T>` (`maxOccurs="unbounded"`); you implement it for your
//! structs with [`Schema::complex_type`] and for unit enums with [`Schema::enumeration`]
//! (an `xs:simpleType` restriction), keeping field names in step with serde's.
//!
//! ```
//! use soap_core::{Schema, TypeRef, XsdType};
//!
//! enum Status { Open, Shipped }
//! impl XsdType for Status {
//!     fn xsd(schema: &mut Schema) -> TypeRef {
//!         schema.enumeration("Status", &["Open", "Shipped"])
//!     }
//! }
//! struct Order { id: String, status: Status, lines: Vec<u32>, note: Option<String> }
//! impl XsdType for Order {
//!     fn xsd(schema: &mut Schema) -> TypeRef {
//!         schema.complex_type("Order", |t| {
//!             t.field::<String>("id").field::<Status>("status")
//!                 .field::<Vec<u32>>("lines").field::<Option<String>>("note")
//!         })
//!     }
//! }
//! let mut schema = Schema::default();
//! assert_eq!(Order::xsd(&mut schema).as_str(), "tns:Order");
//! assert!(schema.definitions().contains(r#"<xs:enumeration value="Shipped"/>"#));
//! ```

use crate::error::{Error, Result};
use crate::wsdl::XS_NS;
use crate::xml::{Element, XSI_NS, escape};

/// The SOAP 1.1 encoding namespace, whose schema redeclares every built-in simple type
/// (`soapenc:string`, ...); SOAPBuilders-era clients write those in `xsi:type`.
const SOAP11_ENCODING_NS: &str = "http://schemas.xmlsoap.org/soap/encoding/";
/// The XML Schema namespaces of the 1999 and 2000/10 drafts, still sent by old toolkits
/// (Apache SOAP 2) for the built-in types.
const XS_DRAFT_NS: [&str; 2] = [
    "http://www.w3.org/1999/XMLSchema",
    "http://www.w3.org/2000/10/XMLSchema",
];

/// A reference to a schema type, as written in a `type` attribute (`xs:int`, `tns:Order`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef(String);

impl TypeRef {
    /// The type's expanded name: `xs:` is the XML Schema namespace, `tns:` the service's.
    fn expanded<'a>(&'a self, tns: &'a str) -> (&'a str, &'a str) {
        match self.0.split_once(':') {
            Some(("xs", local)) => (XS_NS, local),
            Some((_, local)) => (tns, local),
            None => (tns, &self.0),
        }
    }

    /// A built-in XML Schema type by local name (`TypeRef::builtin("string")`).
    pub fn builtin(name: &str) -> Self {
        TypeRef(format!("xs:{name}"))
    }
    /// A type defined in the service's own namespace.
    pub fn named(name: &str) -> Self {
        TypeRef(format!("tns:{name}"))
    }
    /// As written in the schema.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How often an element occurs and whether it may be nil.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurs {
    /// `minOccurs`.
    pub min: u32,
    /// `maxOccurs="unbounded"` when true, else 1.
    pub unbounded: bool,
    /// `nillable="true"`.
    pub nillable: bool,
}

impl Occurs {
    /// Exactly once.
    pub const ONE: Occurs = Occurs {
        min: 1,
        unbounded: false,
        nillable: false,
    };
}

/// A Rust type's XML Schema description.
pub trait XsdType {
    /// Registers the definitions this type needs in `schema` and returns its reference.
    fn xsd(schema: &mut Schema) -> TypeRef;
    /// Occurrence of an element of this type (`Option`, `Vec` change it).
    fn occurs() -> Occurs {
        Occurs::ONE
    }
}

macro_rules! builtin {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl XsdType for $t {
            fn xsd(_: &mut Schema) -> TypeRef {
                TypeRef::builtin($name)
            }
        }
    )*};
}

builtin! {
    String => "string", bool => "boolean",
    i8 => "byte", i16 => "short", i32 => "int", i64 => "long",
    u8 => "unsignedByte", u16 => "unsignedShort", u32 => "unsignedInt", u64 => "unsignedLong",
    f32 => "float", f64 => "double",
    time::OffsetDateTime => "dateTime", time::Date => "date",
}

impl<T: XsdType> XsdType for Option<T> {
    fn xsd(schema: &mut Schema) -> TypeRef {
        T::xsd(schema)
    }
    fn occurs() -> Occurs {
        Occurs {
            min: 0,
            ..T::occurs()
        }
    }
}

impl<T: XsdType> XsdType for Vec<T> {
    fn xsd(schema: &mut Schema) -> TypeRef {
        T::xsd(schema)
    }
    fn occurs() -> Occurs {
        Occurs {
            min: 0,
            unbounded: true,
            nillable: false,
        }
    }
}

/// The schema being built: named types in the service's namespace, each defined once.
#[derive(Debug, Default, Clone)]
pub struct Schema {
    names: Vec<String>,
    definitions: String,
    /// Each complex type's fields as (element name, type), for checking `xsi:type`.
    fields: Vec<(String, Vec<(String, TypeRef)>)>,
}

impl Schema {
    /// Defines (once) a complex type as a sequence of the fields `build` adds.
    pub fn complex_type(
        &mut self,
        name: &str,
        build: impl for<'a, 'b> FnOnce(&'a mut ComplexType<'b>) -> &'a mut ComplexType<'b>,
    ) -> TypeRef {
        if !self.names.iter().any(|n| n == name) {
            // Registered before the fields are, so that recursive types terminate.
            self.names.push(name.to_owned());
            let mut t = ComplexType {
                schema: self,
                fields: String::new(),
                elements: Vec::new(),
            };
            build(&mut t);
            let (fields, elements) = (t.fields, t.elements);
            self.fields.push((name.to_owned(), elements));
            self.definitions.push_str(&format!(
                r#"<xs:complexType name="{}"><xs:sequence>{fields}</xs:sequence></xs:complexType>"#,
                escape(name)
            ));
        }
        TypeRef::named(name)
    }

    /// Defines (once) a string enumeration as an `xs:simpleType` restriction.
    pub fn enumeration(&mut self, name: &str, values: &[&str]) -> TypeRef {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
            let mut def = format!(
                r#"<xs:simpleType name="{}"><xs:restriction base="xs:string">"#,
                escape(name)
            );
            for v in values {
                def.push_str(&format!(r#"<xs:enumeration value="{}"/>"#, escape(v)));
            }
            def.push_str("</xs:restriction></xs:simpleType>");
            self.definitions.push_str(&def);
        }
        TypeRef::named(name)
    }

    /// The type definitions, in the order they were registered.
    pub fn definitions(&self) -> &str {
        &self.definitions
    }

    /// Whether a type of this name is defined.
    pub fn defines(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Checks every `xsi:type` in `element` and its descendants against the schema:
    /// `element` is expected to be of type `expected`, its children of their fields' types
    /// (matched by local name, as the body decoder matches them), and `tns` is the
    /// service's namespace. An `xsi:type` must name the expected type by namespace-resolved
    /// QName (a built-in type may also be named in the SOAP 1.1 encoding namespace or the
    /// XML Schema drafts' namespaces); anything else, derived types included, is refused as
    /// [`Error::XsiTypeMismatch`] naming the element (XML Schema part 1 section 2.6.1:
    /// the declared type must be validly derived from the expected one, and no schema type
    /// here has a derivation). Elements the schema does not describe are left to the decoder.
    pub fn check_xsi_types(&self, element: &Element, expected: &TypeRef, tns: &str) -> Result<()> {
        if let Some(declared) = element.attribute(Some(XSI_NS), "type") {
            let mismatch = || Error::XsiTypeMismatch {
                element: element.name().to_owned(),
                declared: declared.trim().to_owned(),
                expected: expected.as_str().to_owned(),
            };
            let (ns, local) = element.resolve_qname(declared).ok_or_else(mismatch)?;
            let (want_ns, want_local) = expected.expanded(tns);
            let ns = ns.as_deref().unwrap_or("");
            let alias = want_ns == XS_NS && (ns == SOAP11_ENCODING_NS || XS_DRAFT_NS.contains(&ns));
            if local != want_local || (ns != want_ns && !alias) {
                return Err(mismatch());
            }
        }
        let (ns, local) = expected.expanded(tns);
        if ns != tns {
            return Ok(());
        }
        let Some((_, fields)) = self.fields.iter().find(|(n, _)| n == local) else {
            return Ok(());
        };
        for child in element.children() {
            if let Some((_, ty)) = fields.iter().find(|(n, _)| n == child.name()) {
                self.check_xsi_types(child, ty, tns)?;
            }
        }
        Ok(())
    }
}

/// A complex type under construction: see [`Schema::complex_type`].
#[derive(Debug)]
pub struct ComplexType<'s> {
    schema: &'s mut Schema,
    fields: String,
    elements: Vec<(String, TypeRef)>,
}

impl ComplexType<'_> {
    /// Adds a field of type `T` with `T`'s occurrence.
    pub fn field<T: XsdType>(&mut self, name: &str) -> &mut Self {
        let occurs = T::occurs();
        self.element::<T>(name, occurs)
    }

    /// Adds a field that is always written and is `xsi:nil` when absent; pair it with
    /// `#[serde(default, with = "soap_core::body::nillable")]` on an `Option<T>`.
    pub fn nillable<T: XsdType>(&mut self, name: &str) -> &mut Self {
        self.element::<T>(
            name,
            Occurs {
                min: 1,
                unbounded: false,
                nillable: true,
            },
        )
    }

    fn element<T: XsdType>(&mut self, name: &str, occurs: Occurs) -> &mut Self {
        let ty = T::xsd(self.schema);
        let mut el = format!(
            r#"<xs:element name="{}" type="{}""#,
            escape(name),
            escape(ty.as_str())
        );
        if occurs.min != 1 {
            el.push_str(&format!(r#" minOccurs="{}""#, occurs.min));
        }
        if occurs.unbounded {
            el.push_str(r#" maxOccurs="unbounded""#);
        }
        if occurs.nillable {
            el.push_str(r#" nillable="true""#);
        }
        el.push_str("/>");
        self.fields.push_str(&el);
        self.elements.push((name.to_owned(), ty));
        self
    }
}
