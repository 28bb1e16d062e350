//! The hardened XML reader and a small namespace-aware element tree.
//!
//! Every SOAP message goes through [`parse`] before anything else looks at it. The reader
//! refuses any DOCTYPE (so there is no entity expansion, external entity or parameter entity
//! to worry about), refuses bytes that are not UTF-8, and counts what it reads against
//! [`XmlLimits`], stopping at the first limit crossed: the work done on a hostile document is
//! bounded by the limits, not by the document.
//!
//! ```
//! use soap_core::{XmlLimits, xml};
//!
//! let root = xml::parse(br#"<a xmlns="urn:x"><b>1 &lt; 2</b></a>"#, &XmlLimits::default())?;
//! assert_eq!(root.namespace(), Some("urn:x"));
//! assert_eq!(root.child("urn:x", "b").map(|b| b.text()), Some("1 < 2"));
//!
//! let refused = xml::parse(b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>", &XmlLimits::default());
//! assert!(matches!(refused, Err(soap_core::Error::DoctypeRefused)));
//! # Ok::<(), soap_core::Error>(())
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use quick_xml::XmlVersion;
use quick_xml::events::BytesRef;
use quick_xml::events::attributes::Attributes;

use crate::error::{Error, LimitKind, Result};

/// The namespace of `xmlns` declarations (Namespaces in XML 1.0, section 3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
/// The namespace bound to the `xml` prefix.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// XML Schema instance (`xsi:nil`, `xsi:type`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Limits the reader enforces while parsing. The defaults follow Apache CXF's hardened
/// StAX settings (depth 100, 500 attributes per element, 64 KiB per attribute), with a
/// body cap so that the other limits bound the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct XmlLimits {
    /// Largest body accepted, checked before parsing starts (default 4 MiB).
    pub max_body_bytes: usize,
    /// Deepest element nesting (default 100).
    pub max_depth: usize,
    /// Most attributes on one element, namespace declarations included (default 500).
    pub max_attributes: usize,
    /// Longest attribute value in bytes, before unescaping (default 64 KiB).
    pub max_attribute_bytes: usize,
    /// Longest text content of one element in bytes (default 1 MiB).
    pub max_text_bytes: usize,
    /// Most elements in the document (default 50,000).
    pub max_elements: usize,
    /// Most namespace declarations in the whole document (default 1,000).
    pub max_namespace_declarations: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 100,
            max_attributes: 500,
            max_attribute_bytes: 64 * 1024,
            max_text_bytes: 1024 * 1024,
            max_elements: 50_000,
            max_namespace_declarations: 1_000,
        }
    }
}

impl XmlLimits {
    /// Sets [`XmlLimits::max_body_bytes`].
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }
    /// Sets [`XmlLimits::max_depth`].
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }
    /// Sets [`XmlLimits::max_attributes`].
    pub fn max_attributes(mut self, n: usize) -> Self {
        self.max_attributes = n;
        self
    }
    /// Sets [`XmlLimits::max_attribute_bytes`].
    pub fn max_attribute_bytes(mut self, n: usize) -> Self {
        self.max_attribute_bytes = n;
        self
    }
    /// Sets [`XmlLimits::max_text_bytes`].
    pub fn max_text_bytes(mut self, n: usize) -> Self {
        self.max_text_bytes = n;
        self
    }
    /// Sets [`XmlLimits::max_elements`].
    pub fn max_elements(mut self, n: usize) -> Self {
        self.max_elements = n;
        self
    }
    /// Sets [`XmlLimits::max_namespace_declarations`].
    pub fn max_namespace_declarations(mut self, n: usize) -> Self {
        self.max_namespace_declarations = n;
        self
    }
}

/// An attribute with its namespace resolved (unprefixed attributes have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The namespace name, if the attribute was prefixed.
    pub namespace: Option<String>,
    /// The local name.
    pub name: String,
    /// The value, unescaped.
    pub value: String,
}

/// In-scope prefix bindings, shared between an element and its descendants that declare
/// nothing new; used to resolve QNames that appear in text (`faultcode`, `xsi:type`).
type Scope = Arc<Vec<(String, String)>>;

/// An element: its expanded name, attributes, child elements and text. Mixed content is
/// kept as the concatenation of the element's own text nodes, which is all SOAP needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    namespace: Option<String>,
    name: String,
    attributes: Vec<Attribute>,
    children: Vec<Element>,
    text: String,
    scope: Scope,
}

impl Element {
    /// A new element with no attributes, children or text.
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        Element {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            attributes: Vec::new(),
            children: Vec::new(),
            text: String::new(),
            scope: Scope::default(),
        }
    }

    /// The namespace name, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    /// The local name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether this element has this namespace and local name.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref() == Some(namespace) && self.name == name
    }
    /// The attributes, namespace declarations excluded.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
    /// The value of an attribute by namespace (`None` for an unprefixed one) and name.
    pub fn attribute(&self, namespace: Option<&str>, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.as_deref() == namespace && a.name == name)
            .map(|a| a.value.as_str())
    }
    /// The child elements.
    pub fn children(&self) -> &[Element] {
        &self.children
    }
    /// The first child with this expanded name.
    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(namespace, name))
    }
    /// The element's own text (text nodes and CDATA, concatenated).
    pub fn text(&self) -> &str {
        &self.text
    }
    /// Whether `xsi:nil` is `true` or `1`.
    pub fn is_nil(&self) -> bool {
        matches!(self.attribute(Some(XSI_NS), "nil"), Some("true" | "1"))
    }

    /// Resolves a prefix in this element's scope (`None`: the default namespace).
    pub fn lookup_prefix(&self, prefix: Option<&str>) -> Option<&str> {
        let prefix = prefix.unwrap_or("");
        if prefix == "xml" {
            return Some(XML_NS);
        }
        self.scope
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.as_str())
            .filter(|ns| !ns.is_empty())
    }

    /// Resolves a QName written in text (`soap:Client`) to (namespace, local name).
    pub fn resolve_qname(&self, qname: &str) -> Option<(Option<String>, String)> {
        let qname = qname.trim();
        match qname.split_once(':') {
            Some((prefix, local)) => {
                let ns = self.lookup_prefix(Some(prefix))?;
                Some((Some(ns.to_owned()), local.to_owned()))
            }
            None => Some((
                self.lookup_prefix(None).map(str::to_owned),
                qname.to_owned(),
            )),
        }
    }

    /// Adds an attribute (builder style).
    pub fn with_attribute(mut self, namespace: Option<&str>, name: &str, value: &str) -> Self {
        self.attributes.push(Attribute {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            value: value.to_owned(),
        });
        self
    }
    /// Sets an attribute, replacing one with the same name.
    pub fn set_attribute(&mut self, namespace: Option<&str>, name: &str, value: &str) {
        match self
            .attributes
            .iter_mut()
            .find(|a| a.namespace.as_deref() == namespace && a.name == name)
        {
            Some(a) => a.value = value.to_owned(),
            None => self.attributes.push(Attribute {
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        }
    }
    /// Adds a child (builder style).
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }
    /// Sets the text (builder style).
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }
    /// Binds a prefix for QName-valued text written under this element (`faultcode`).
    pub fn with_prefix(mut self, prefix: &str, namespace: &str) -> Self {
        let mut scope = (*self.scope).clone();
        scope.push((prefix.to_owned(), namespace.to_owned()));
        self.scope = Arc::new(scope);
        self
    }
    /// Appends a child.
    pub fn push_child(&mut self, child: Element) {
        self.children.push(child);
    }
    /// Takes the children out.
    pub fn into_children(self) -> Vec<Element> {
        self.children
    }
    /// Puts this element and every descendant without a namespace into `namespace`
    /// (document/literal with `elementFormDefault="qualified"`), and forgets the prefixes
    /// of the document it was read from (namespaced attributes get theirs when written).
    pub(crate) fn qualify(&mut self, namespace: &str) {
        self.scope = Scope::default();
        if self.namespace.is_none() {
            self.namespace = Some(namespace.to_owned());
        }
        for child in &mut self.children {
            child.qualify(namespace);
        }
    }

    /// Puts this element (not its descendants) into `namespace` and forgets the prefixes of
    /// the document it was read from, in this element and below.
    pub(crate) fn qualify_root(&mut self, namespace: &str) {
        fn forget(el: &mut Element) {
            el.scope = Scope::default();
            for child in &mut el.children {
                forget(child);
            }
        }
        forget(self);
        self.namespace = Some(namespace.to_owned());
    }

    /// Serializes the element with its namespaces declared where needed.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write(&mut out, &mut Vec::new(), None);
        out
    }

    /// Writes the element; `declared` holds the prefixes already bound by ancestors and
    /// `default` the inherited default namespace.
    pub(crate) fn write(
        &self,
        out: &mut String,
        declared: &mut Vec<(String, String)>,
        default: Option<&str>,
    ) {
        let mark = declared.len();
        let mut decls = String::new();
        // Prefixes bound on this element: for QName-valued text (fault codes) and for its
        // own name (the envelope's `soap:` prefix).
        for (p, ns) in self.scope.iter() {
            if !p.is_empty() && !declared.iter().any(|(dp, dn)| dp == p && dn == ns) {
                decls.push_str(&format!(" xmlns:{p}=\"{}\"", escape(ns)));
                declared.push((p.clone(), ns.clone()));
            }
        }
        let tag = match self.namespace.as_deref() {
            // The `xml` prefix is bound by definition, and its namespace must not be made
            // the default one (Namespaces in XML 1.0, section 3).
            Some(XML_NS) => format!("xml:{}", self.name),
            Some(ns) => match declared.iter().rev().find(|(_, n)| n == ns) {
                Some((p, _)) => format!("{p}:{}", self.name),
                None if default == Some(ns) => self.name.clone(),
                None => {
                    decls.push_str(&format!(" xmlns=\"{}\"", escape(ns)));
                    self.name.clone()
                }
            },
            None => {
                if default.is_some() {
                    decls.push_str(" xmlns=\"\"");
                }
                self.name.clone()
            }
        };
        let own_default = match self.namespace.as_deref() {
            Some(XML_NS) => default,
            Some(ns) if !declared.iter().any(|(_, n)| n == ns) => Some(ns),
            Some(_) => default,
            None => None,
        };
        let mut attrs = String::new();
        for a in &self.attributes {
            let name = match a.namespace.as_deref() {
                None => a.name.clone(),
                Some(XML_NS) => format!("xml:{}", a.name),
                Some(ns) => {
                    let prefix = match declared.iter().rev().find(|(_, n)| n == ns) {
                        Some((p, _)) => p.clone(),
                        None => {
                            let p = well_known_prefix(ns)
                                .filter(|p| !declared.iter().any(|(dp, _)| dp == p))
                                .map_or_else(|| format!("ns{}", declared.len()), str::to_owned);
                            decls.push_str(&format!(" xmlns:{p}=\"{}\"", escape(ns)));
                            declared.push((p.clone(), ns.to_owned()));
                            p
                        }
                    };
                    format!("{prefix}:{}", a.name)
                }
            };
            attrs.push_str(&format!(" {name}=\"{}\"", escape(&a.value)));
        }
        out.push('<');
        out.push_str(&tag);
        out.push_str(&decls);
        out.push_str(&attrs);
        if self.children.is_empty() && self.text.is_empty() {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&escape(&self.text));
            for child in &self.children {
                child.write(out, declared, own_default);
            }
            out.push_str("</");
            out.push_str(&tag);
            out.push('>');
        }
        declared.truncate(mark);
    }

    /// Writes the element without namespaces, leaving out `xsi:nil` elements and namespaced
    /// attributes: the shape quick-xml's serde deserializer reads.
    pub(crate) fn write_plain(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for a in self.attributes.iter().filter(|a| a.namespace.is_none()) {
            out.push_str(&format!(" {}=\"{}\"", a.name, escape(&a.value)));
        }
        out.push('>');
        out.push_str(&escape(&self.text));
        for child in self.children.iter().filter(|c| !c.is_nil()) {
            child.write_plain(out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

fn well_known_prefix(ns: &str) -> Option<&'static str> {
    match ns {
        XSI_NS => Some("xsi"),
        crate::envelope::SOAP11_NS => Some("soap"),
        crate::envelope::SOAP12_NS => Some("soap12"),
        _ => None,
    }
}

/// Escapes text and attribute values (`&`, `<`, `>`, `"`, `'`).
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// XML's white space (XML 1.0 production 3).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// `a == b` for the short names and prefixes of tags, compared inline rather than by a
/// call to `memcmp`.
#[inline(always)]
pub(crate) fn same_bytes(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Whether `s` is XML white space only (or empty): a byte loop, cheaper than `trim_matches`
/// with a pattern for the short texts between tags.
pub(crate) fn is_whitespace(s: &str) -> bool {
    s.bytes().all(is_space)
}

/// `s` without leading and trailing XML white space.
pub(crate) fn trim_whitespace(s: &str) -> &str {
    let bytes = s.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    // Both ends are next to ASCII bytes, so on character boundaries.
    s.get(start..end.max(start)).unwrap_or("")
}

/// Whether `bytes` has a carriage return. Blocks of bytes are compared without an early
/// exit inside a block, which the compiler turns into vector compares: a third of the cost
/// of `contains`' word-at-a-time search over a whole message.
fn has_carriage_return(bytes: &[u8]) -> bool {
    bytes
        .chunks(64)
        .any(|block| block.iter().fold(false, |found, &b| found | (b == b'\r')))
}

/// Splits a QName (Namespaces in XML 1.0 section 4): at most one colon, with a non-empty
/// prefix and local part, so that what we write back names the same thing. `None` for a
/// name that is not a QName.
fn split_qname(qname: &str) -> Option<(Option<&str>, &str)> {
    // One pass over the bytes, no `memchr` call: names are a few bytes, and this runs for
    // every tag.
    let mut colon = None;
    for (i, &b) in qname.as_bytes().iter().enumerate() {
        if b == b':' {
            if colon.is_some() {
                return None;
            }
            colon = Some(i);
        }
    }
    match colon {
        None if !qname.is_empty() => Some((None, qname)),
        Some(i) if i > 0 => match (qname.get(..i), qname.get(i + 1..)) {
            (Some(p), Some(local)) if !local.is_empty() => Some((Some(p), local)),
            _ => None,
        },
        _ => None,
    }
}

/// Parses a document into its root element, enforcing `limits` (see the module docs).
pub fn parse(body: &[u8], limits: &XmlLimits) -> Result<Element> {
    parse_with(body, limits, false)
}

/// [`parse`] for documents that are not SOAP messages (a WSDL): the same limits and the
/// same refusal of any DOCTYPE, but processing instructions are skipped, not refused.
pub(crate) fn parse_document(body: &[u8], limits: &XmlLimits) -> Result<Element> {
    parse_with(body, limits, true)
}

fn parse_with(
    body: &[u8],
    limits: &XmlLimits,
    skip_processing_instructions: bool,
) -> Result<Element> {
    build_tree(Events::new(body, limits, skip_processing_instructions)?)
}

/// Reads the whole document into its root element.
fn build_tree(mut events: Events<'_, '_>) -> Result<Element> {
    let mut root = None;
    loop {
        match events.next()? {
            Item::Start(tag) => root = Some(read_element(&mut events, tag)?),
            // Whitespace around the root (the reader refuses anything else).
            Item::Text(_) => {}
            Item::End => {
                return Err(Error::MalformedXml {
                    position: events.position(),
                    reason: "unexpected end tag".into(),
                });
            }
            Item::Eof => break,
        }
    }
    root.ok_or(Error::MalformedXml {
        position: 0,
        reason: "no root element".into(),
    })
}

/// Reads the element whose start tag `events` has just handed out, through its end tag.
pub(crate) fn read_element(events: &mut Events<'_, '_>, tag: Tag<'_>) -> Result<Element> {
    let scope = |events: &Events<'_, '_>| -> Scope {
        Arc::new(
            events
                .bindings()
                .iter()
                .map(|(p, ns)| ((*p).to_owned(), ns.clone().into_owned()))
                .collect(),
        )
    };
    let mut stack: Vec<Element> = vec![tag.into_element(scope(events))];
    loop {
        match events.next()? {
            Item::Start(tag) => {
                let inherited = match (tag.declares, stack.last()) {
                    (false, Some(parent)) => parent.scope.clone(),
                    _ => scope(events),
                };
                stack.push(tag.into_element(inherited));
            }
            Item::End => {
                let done = stack.pop().ok_or_else(|| Error::MalformedXml {
                    position: events.position(),
                    reason: "unexpected end tag".into(),
                })?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Item::Text(text) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text);
                }
            }
            Item::Eof => {
                return Err(Error::MalformedXml {
                    position: events.position(),
                    reason: "unclosed element at end of input".into(),
                });
            }
        }
    }
}

/// One step of the hardened reader: a start tag (an empty element is a start and an end),
/// an end tag, a piece of text (unescaped, borrowed from the input where it can be), or the
/// end of the document. Every limit and namespace rule is checked before an item is handed
/// out, so a consumer that builds no tree (the streaming body decoder) is as hardened as
/// [`parse`].
pub(crate) enum Item<'a> {
    Start(Tag<'a>),
    End,
    Text(Cow<'a, str>),
    Eof,
}

/// What [`Events::next`] returns: the error boxed, so that the result is no larger than the
/// item (the crate's [`Error`] is larger than an item, and every item is moved through the
/// result on its way to the decoder).
pub(crate) type ItemResult<'a> = std::result::Result<Item<'a>, ReadError>;

/// The reader's [`Error`], boxed (see [`ItemResult`]); `?` turns it back into the error.
#[derive(Debug)]
pub(crate) struct ReadError(Box<Error>);

impl From<Error> for ReadError {
    #[cold]
    fn from(e: Error) -> Self {
        ReadError(Box::new(e))
    }
}

impl From<ReadError> for Error {
    #[cold]
    fn from(e: ReadError) -> Self {
        *e.0
    }
}

/// A start tag with its names resolved.
pub(crate) struct Tag<'a> {
    pub(crate) namespace: Option<Cow<'a, str>>,
    pub(crate) name: &'a str,
    /// Attributes, namespace declarations excluded.
    pub(crate) attributes: TagAttributes<'a>,
    /// Whether the tag declares namespaces (then [`Events::bindings`] has changed).
    pub(crate) declares: bool,
}

/// An attribute of a [`Tag`].
pub(crate) struct TagAttribute<'a> {
    pub(crate) namespace: Option<Cow<'a, str>>,
    pub(crate) name: &'a str,
    pub(crate) value: Cow<'a, str>,
}

/// A start tag's attributes: one pointer, null for the common tag without any, so that a
/// [`Tag`] (and every [`Item`] moved from the reader to the decoder) stays small.
// Boxed on purpose: one pointer in every tag instead of a `Vec`'s three words, for one
// more allocation on the few tags with attributes.
#[allow(clippy::box_collection)]
#[derive(Default)]
pub(crate) struct TagAttributes<'a>(Option<Box<Vec<TagAttribute<'a>>>>);

impl<'a> TagAttributes<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.is_empty())
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, TagAttribute<'a>> {
        match &self.0 {
            Some(v) => v.iter(),
            None => [].iter(),
        }
    }
}

impl<'a> From<Vec<TagAttribute<'a>>> for TagAttributes<'a> {
    fn from(v: Vec<TagAttribute<'a>>) -> Self {
        TagAttributes((!v.is_empty()).then(|| Box::new(v)))
    }
}

impl<'a> FromIterator<TagAttribute<'a>> for TagAttributes<'a> {
    fn from_iter<I: IntoIterator<Item = TagAttribute<'a>>>(iter: I) -> Self {
        Self::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for TagAttributes<'a> {
    type Item = TagAttribute<'a>;
    type IntoIter = std::vec::IntoIter<TagAttribute<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.map(|v| *v).unwrap_or_default().into_iter()
    }
}

impl Tag<'_> {
    fn into_element(self, scope: Scope) -> Element {
        Element {
            namespace: self.namespace.map(Cow::into_owned),
            name: self.name.to_owned(),
            attributes: self
                .attributes
                .into_iter()
                .map(|a| Attribute {
                    namespace: a.namespace.map(Cow::into_owned),
                    name: a.name.to_owned(),
                    value: a.value.into_owned(),
                })
                .collect(),
            children: Vec::new(),
            text: String::new(),
            scope,
        }
    }
}

/// The hardened reader as a stream of [`Item`]s (see the module docs for what it refuses).
///
/// It tokenizes the input itself rather than through quick-xml's reader: the input has been
/// checked as UTF-8 once, every token boundary is an ASCII byte (`<`, `>`, `&`, `;`), so the
/// pieces are handed out as `&str` without checking each again, and the limits and the
/// namespace resolution happen in the same step as the tokenizing. quick-xml still reads
/// the attributes of a start tag, their values and character references.
pub(crate) struct Events<'a, 'l> {
    input: &'a str,
    /// Where reading goes on, in bytes.
    offset: usize,
    limits: &'l XmlLimits,
    /// Whether processing instructions are skipped (WSDL) rather than refused (SOAP).
    allow_processing_instructions: bool,
    elements: usize,
    namespace_declarations: usize,
    /// In-scope namespace bindings, innermost last.
    bindings: Vec<(&'a str, Cow<'a, str>)>,
    /// The open elements, innermost last.
    open: Vec<Open<'a>>,
    /// The end of an empty element, handed out after its start.
    pending_end: bool,
    root_seen: bool,
    /// Where the last item read started.
    position: u64,
    /// Whether the input has a carriage return anywhere: one search of the whole input
    /// instead of one per text node.
    has_carriage_return: bool,
}

/// An open element: its QName as written (its end tag must repeat it), where its bindings
/// start, and how much text it has had.
struct Open<'a> {
    qname: &'a str,
    mark: usize,
    text_bytes: usize,
}

impl<'a, 'l> Events<'a, 'l> {
    /// Checks the body size and encoding, then reads lazily.
    pub(crate) fn new(
        body: &'a [u8],
        limits: &'l XmlLimits,
        allow_processing_instructions: bool,
    ) -> Result<Self> {
        if body.len() > limits.max_body_bytes {
            return Err(Error::LimitExceeded {
                limit: LimitKind::BodyBytes,
                max: limits.max_body_bytes,
            });
        }
        let input = std::str::from_utf8(body).map_err(|e| Error::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        // A UTF-8 byte order mark is not part of the document (XML 1.0 section 4.3.3).
        let offset = if input.starts_with('\u{FEFF}') { 3 } else { 0 };
        Ok(Events {
            input,
            offset,
            limits,
            allow_processing_instructions,
            elements: 0,
            namespace_declarations: 0,
            // Sized for a typical message (a few prefixes, a few levels) so that they
            // do not grow while it is read.
            bindings: Vec::with_capacity(8),
            open: Vec::with_capacity(16),
            pending_end: false,
            root_seen: false,
            position: offset as u64,
            has_carriage_return: has_carriage_return(body),
        })
    }

    /// Where the last item read started, in bytes.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// The namespace bindings in scope, innermost last.
    pub(crate) fn bindings(&self) -> &[(&'a str, Cow<'a, str>)] {
        &self.bindings
    }

    fn limit(&self, limit: LimitKind) -> Error {
        let max = match limit {
            LimitKind::BodyBytes => self.limits.max_body_bytes,
            LimitKind::Depth => self.limits.max_depth,
            LimitKind::Attributes => self.limits.max_attributes,
            LimitKind::AttributeBytes => self.limits.max_attribute_bytes,
            LimitKind::TextBytes => self.limits.max_text_bytes,
            LimitKind::Elements => self.limits.max_elements,
            LimitKind::NamespaceDeclarations => self.limits.max_namespace_declarations,
        };
        Error::LimitExceeded { limit, max }
    }

    #[cold]
    fn malformed(&self, reason: String) -> Error {
        Error::MalformedXml {
            position: self.position,
            reason,
        }
    }

    #[cold]
    fn malformed_item(&self, reason: &str) -> ReadError {
        self.malformed(reason.into()).into()
    }

    #[cold]
    fn unexpected_end(&self) -> ReadError {
        self.malformed_item("unexpected end tag")
    }

    /// The next item; after an error, the reader is not to be used again.
    pub(crate) fn next(&mut self) -> ItemResult<'a> {
        if self.pending_end {
            self.pending_end = false;
            return self.close_empty();
        }
        loop {
            self.position = self.offset as u64;
            let rest = self.input.as_bytes().get(self.offset..).unwrap_or_default();
            return match rest {
                [] if !self.open.is_empty() => Err(Error::MalformedXml {
                    position: self.input.len() as u64,
                    reason: "unclosed element at end of input".into(),
                }
                .into()),
                [] => Ok(Item::Eof),
                [b'<', b'/', ..] => self.end_tag(),
                [b'<', b'!', ..] => match self.bang()? {
                    Some(item) => Ok(item),
                    None => continue,
                },
                [b'<', b'?', ..] => {
                    self.question_mark()?;
                    continue;
                }
                [b'<', ..] => self.start_tag(),
                _ => self.text_run(),
            };
        }
    }

    /// The end of the markup that starts at `from` (the index of its `>`; a `>` in a quoted
    /// attribute value does not end it), read past.
    #[inline(always)]
    fn markup_end(&mut self, from: usize) -> std::result::Result<usize, ReadError> {
        let bytes = self.input.as_bytes();
        let mut quote = 0u8;
        let mut i = from;
        while let Some(&b) = bytes.get(i) {
            if quote == 0 {
                if b == b'>' {
                    self.offset = i + 1;
                    return Ok(i);
                }
                if b == b'"' || b == b'\'' {
                    quote = b;
                }
            } else if b == quote {
                quote = 0;
            }
            i += 1;
        }
        Err(self.malformed_item("unclosed tag at end of input"))
    }

    /// A start tag or an empty element's tag (`<` at the offset).
    #[inline(always)]
    fn start_tag(&mut self) -> ItemResult<'a> {
        let start = self.offset + 1;
        let end = self.markup_end(start)?;
        if self.root_seen {
            return Err(self.malformed_item("content after the root element"));
        }
        let Some(content) = self.input.get(start..end) else {
            return Err(self.malformed_item("tag outside the input"));
        };
        match content.strip_suffix('/') {
            Some(content) => self.open_tag(content, true),
            None => self.open_tag(content, false),
        }
    }

    /// An end tag (`</` at the offset): it closes the innermost open element and repeats its
    /// name (white space may follow the name).
    #[inline(always)]
    fn end_tag(&mut self) -> ItemResult<'a> {
        let start = self.offset + 2;
        let end = self.markup_end(start)?;
        let name = self
            .input
            .get(start..end)
            .map(|n| n.trim_end_matches([' ', '\t', '\r', '\n']))
            .unwrap_or_default();
        let Some(open) = self.open.pop() else {
            return Err(self.unexpected_end());
        };
        if !same_bytes(open.qname, name) {
            return Err(self.mismatched_end(open.qname, name));
        }
        self.bindings.truncate(open.mark);
        if self.open.is_empty() {
            self.root_seen = true;
        }
        Ok(Item::End)
    }

    #[cold]
    fn mismatched_end(&self, expected: &str, found: &str) -> ReadError {
        self.malformed(format!(
            "expected `</{expected}>`, but `</{found}>` was found"
        ))
        .into()
    }

    /// The end of the empty element whose start was handed out last.
    #[inline(always)]
    fn close_empty(&mut self) -> ItemResult<'a> {
        let Some(open) = self.open.pop() else {
            return Err(self.unexpected_end());
        };
        self.bindings.truncate(open.mark);
        if self.open.is_empty() {
            self.root_seen = true;
        }
        Ok(Item::End)
    }

    /// `<!` at the offset: a comment (skipped: `None`), a CDATA section (text), a DOCTYPE
    /// (refused) or nothing XML has.
    fn bang(&mut self) -> std::result::Result<Option<Item<'a>>, ReadError> {
        let rest = self.input.get(self.offset..).unwrap_or_default();
        if let Some(comment) = rest.strip_prefix("<!--") {
            let Some(end) = comment.find("-->") else {
                return Err(self.malformed_item("unclosed comment"));
            };
            self.offset += 4 + end + 3;
            return Ok(None);
        }
        if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            let Some(end) = cdata.find("]]>") else {
                return Err(self.malformed_item("unclosed CDATA section"));
            };
            self.offset += 9 + end + 3;
            let content = cdata.get(..end).unwrap_or_default();
            let content = self.normalize_line_ends(Cow::Borrowed(content));
            return self.text(content).map(Some);
        }
        if rest
            .as_bytes()
            .get(2..9)
            .is_some_and(|d| d.eq_ignore_ascii_case(b"DOCTYPE"))
        {
            return Err(Error::DoctypeRefused.into());
        }
        Err(self.malformed_item("`<!` starts no comment, CDATA section or DOCTYPE"))
    }

    /// `<?` at the offset: the XML declaration (skipped) or a processing instruction
    /// (refused in a SOAP message, skipped in other documents).
    fn question_mark(&mut self) -> std::result::Result<(), ReadError> {
        let rest = self.input.get(self.offset + 2..).unwrap_or_default();
        let Some(end) = rest.find("?>") else {
            return Err(self.malformed_item("unclosed processing instruction"));
        };
        self.offset += 2 + end + 2;
        let content = rest.as_bytes().get(..end).unwrap_or_default();
        let declaration =
            content.starts_with(b"xml") && content.get(3).is_none_or(|&b| is_space(b));
        // SOAP 1.2 part 1 section 5 and SOAP 1.1 section 3: a message carries no
        // processing instructions. The XML declaration is not one.
        if !declaration && !self.allow_processing_instructions {
            return Err(Error::ProcessingInstructionRefused {
                position: self.position,
            }
            .into());
        }
        Ok(())
    }

    /// Text up to the next markup, line ends normalized and references resolved.
    #[inline(always)]
    fn text_run(&mut self) -> ItemResult<'a> {
        let start = self.offset;
        let bytes = self.input.as_bytes();
        let mut end = start;
        let mut reference = false;
        while let Some(&b) = bytes.get(end) {
            if b == b'<' {
                break;
            }
            reference |= b == b'&';
            end += 1;
        }
        self.offset = end;
        let raw = self.input.get(start..end).unwrap_or_default();
        if !reference && !self.has_carriage_return {
            return self.text(Cow::Borrowed(raw));
        }
        let content = self.normalize_line_ends(Cow::Borrowed(raw));
        let content = if reference {
            Cow::Owned(self.resolve_references(&content)?)
        } else {
            content
        };
        self.text(content)
    }

    /// End-of-line normalization (XML 1.0 section 2.11): `\r\n` and a lone `\r` become
    /// `\n`. Before references are resolved, so that `&#13;` stays a carriage return.
    fn normalize_line_ends(&self, text: Cow<'a, str>) -> Cow<'a, str> {
        if !self.has_carriage_return || !text.contains('\r') {
            return text;
        }
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    }

    /// Text with its character and predefined entity references resolved (only those five
    /// exist without a DTD).
    fn resolve_references(&self, text: &str) -> std::result::Result<String, ReadError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some((before, after)) = rest.split_once('&') {
            out.push_str(before);
            let Some(end) = after.find([';', '&']) else {
                return Err(self.malformed_item("unclosed reference"));
            };
            let (name, after) = after.split_at(end);
            if !after.starts_with(';') {
                return Err(self.malformed_item("unclosed reference"));
            }
            match BytesRef::new(name).resolve_char_ref() {
                Ok(Some(c)) => out.push(c),
                Ok(None) => match quick_xml::escape::resolve_predefined_entity(name) {
                    Some(s) => out.push_str(s),
                    None => {
                        return Err(self.malformed(format!("undeclared entity &{name};")).into());
                    }
                },
                Err(e) => return Err(self.malformed(e.to_string()).into()),
            }
            rest = after.get(1..).unwrap_or_default();
        }
        out.push_str(rest);
        Ok(out)
    }

    #[inline(always)]
    fn text(&mut self, content: Cow<'a, str>) -> ItemResult<'a> {
        let max = self.limits.max_text_bytes;
        match self.open.last_mut() {
            Some(open) => {
                open.text_bytes = open.text_bytes.saturating_add(content.len());
                if open.text_bytes > max {
                    return Err(self.limit(LimitKind::TextBytes).into());
                }
                Ok(Item::Text(content))
            }
            None if is_whitespace(&content) => Ok(Item::Text(content)),
            None => Err(self.malformed_item("text outside the root element")),
        }
    }

    #[inline(always)]
    fn lookup(&self, prefix: &str) -> Result<Option<Cow<'a, str>>> {
        if prefix == "xml" {
            return Ok(Some(Cow::Borrowed(XML_NS)));
        }
        match self
            .bindings
            .iter()
            .rev()
            .find(|(p, _)| same_bytes(p, prefix))
        {
            Some((_, ns)) if ns.is_empty() => Ok(None),
            // Matched rather than `clone()`, which is not inlined: a borrowed name is a copy.
            Some((_, Cow::Borrowed(ns))) => Ok(Some(Cow::Borrowed(ns))),
            Some((_, Cow::Owned(ns))) => Ok(Some(Cow::Owned(ns.clone()))),
            None if prefix.is_empty() => Ok(None),
            None => Err(self.undeclared(prefix)),
        }
    }

    #[cold]
    fn undeclared(&self, prefix: &str) -> Error {
        self.malformed(format!("undeclared prefix {prefix:?}"))
    }

    /// The item for a start tag (`content`: between `<` and `>`, without the `/` of an empty
    /// element, whose end comes next), built in place: the depth, element, attribute and
    /// namespace checks, the names resolved.
    #[inline(always)]
    fn open_tag(&mut self, content: &'a str, empty: bool) -> ItemResult<'a> {
        if empty && self.open.len() >= self.limits.max_depth {
            return Err(self.limit(LimitKind::Depth).into());
        }
        self.elements = self.elements.saturating_add(1);
        if self.elements > self.limits.max_elements {
            return Err(self.limit(LimitKind::Elements).into());
        }
        let name_len = content.bytes().position(is_space).unwrap_or(content.len());
        let (qname, rest) = content.split_at_checked(name_len).unwrap_or((content, ""));
        let mark = self.bindings.len();
        // Most tags have no attributes: then there is nothing to iterate, and the tag's
        // name is all there is to resolve.
        if rest.bytes().all(is_space) {
            let (namespace, name) = self.resolve_name(qname)?;
            return self.opened(
                qname,
                mark,
                empty,
                Tag {
                    namespace,
                    name,
                    attributes: TagAttributes::default(),
                    declares: false,
                },
            );
        }
        self.open_tag_with_attributes(qname, content, mark, empty)
    }

    fn open_tag_with_attributes(
        &mut self,
        qname: &'a str,
        content: &'a str,
        mark: usize,
        empty: bool,
    ) -> ItemResult<'a> {
        let raw_attrs = self.read_attributes(content, qname.len())?;
        let (namespace, name) = self.resolve_name(qname)?;
        let mut attributes: Vec<TagAttribute<'a>> = Vec::with_capacity(raw_attrs.len());
        for (key, value) in raw_attrs {
            let (namespace, name) = match split_qname(key) {
                Some((Some(p), local)) => (self.lookup(p)?, local),
                Some((None, local)) => (None, local),
                None => return Err(self.not_a_qname(key).into()),
            };
            if attributes
                .iter()
                .any(|a| a.namespace == namespace && a.name == name)
            {
                return Err(self
                    .malformed(format!("duplicate attribute {name:?}"))
                    .into());
            }
            attributes.push(TagAttribute {
                namespace,
                name,
                value,
            });
        }
        let declares = self.bindings.len() > mark;
        self.opened(
            qname,
            mark,
            empty,
            Tag {
                namespace,
                name,
                attributes: attributes.into(),
                declares,
            },
        )
    }

    /// Records an opened element (its bindings start at `mark`) and hands out its tag.
    #[inline(always)]
    fn opened(&mut self, qname: &'a str, mark: usize, empty: bool, tag: Tag<'a>) -> ItemResult<'a> {
        self.open.push(Open {
            qname,
            mark,
            text_bytes: 0,
        });
        if empty {
            self.pending_end = true;
        } else if self.open.len() > self.limits.max_depth {
            return Err(self.limit(LimitKind::Depth).into());
        }
        Ok(Item::Start(tag))
    }

    /// An element's QName resolved in the bindings in scope (the default namespace for an
    /// unprefixed one).
    #[inline(always)]
    fn resolve_name(&self, qname: &'a str) -> Result<(Option<Cow<'a, str>>, &'a str)> {
        match split_qname(qname) {
            Some((Some(p), local)) => Ok((self.lookup(p)?, local)),
            Some((None, local)) => Ok((self.lookup("")?, local)),
            None => Err(self.not_a_qname(qname)),
        }
    }

    #[cold]
    fn not_a_qname(&self, qname: &str) -> Error {
        self.malformed(format!("{qname:?} is not a qualified name"))
    }
    /// A start tag's attributes, checked against the limits: namespace declarations are
    /// bound (and counted), the others handed back unresolved.
    fn read_attributes(
        &mut self,
        content: &'a str,
        name_len: usize,
    ) -> Result<Vec<(&'a str, Cow<'a, str>)>> {
        let mut raw_attrs: Vec<(&'a str, Cow<'a, str>)> = Vec::new();
        let mut declarations = 0usize;
        // The attribute count is checked as we go, so that quick-xml's duplicate check
        // (quadratic in the count) never runs past the limit.
        for attr in Attributes::new(content, name_len) {
            if raw_attrs.len() + declarations >= self.limits.max_attributes {
                return Err(self.limit(LimitKind::Attributes));
            }
            let attr = attr.map_err(|e| self.malformed(e.to_string()))?;
            if attr.value.len() > self.limits.max_attribute_bytes {
                return Err(self.limit(LimitKind::AttributeBytes));
            }
            let key: &'a str = attr.key.into_inner();
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| self.malformed(e.to_string()))?;
            if key == "xmlns" || key.starts_with("xmlns:") {
                declarations += 1;
                self.namespace_declarations = self.namespace_declarations.saturating_add(1);
                if self.namespace_declarations > self.limits.max_namespace_declarations {
                    return Err(self.limit(LimitKind::NamespaceDeclarations));
                }
                let prefix = match key.strip_prefix("xmlns:") {
                    // Namespaces in XML 1.0 section 3: `'xmlns:' NCName`. A prefix with a
                    // colon would be written back as a tag with two colons, one starting
                    // with `?` as a processing instruction (both found by the
                    // soap_core_envelope fuzz target), and `xmlns:` alone binds nothing.
                    Some(p) if !is_ncname(p) => {
                        return Err(self.malformed(format!(
                            "{key:?} does not declare a prefix (not an NCName)"
                        )));
                    }
                    Some(p) => p,
                    None => "",
                };
                if prefix == "xmlns" || value == XMLNS_NS {
                    return Err(self.malformed("the xmlns prefix cannot be bound".into()));
                }
                // Section 3 again: `xml` is bound to its namespace and nothing else is.
                if (prefix == "xml") != (value == XML_NS) {
                    return Err(self.malformed(format!(
                        "the xml prefix and its namespace go together only ({key}={value:?})"
                    )));
                }
                if !prefix.is_empty() && value.is_empty() {
                    return Err(self.malformed(format!("prefix {prefix:?} bound to no namespace")));
                }
                self.bindings.push((prefix, value));
            } else {
                raw_attrs.push((key, value));
            }
        }
        Ok(raw_attrs)
    }
}

/// `NCName` of Namespaces in XML 1.0 (section 3): an XML 1.0 `Name` (fifth edition,
/// productions 4 and 4a) without colons.
fn is_ncname(name: &str) -> bool {
    fn start(c: char) -> bool {
        matches!(c,
            'A'..='Z' | '_' | 'a'..='z'
            | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
            | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
            | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
            | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
    }
    fn rest(c: char) -> bool {
        start(c)
            || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
    }
    let mut chars = name.chars();
    chars.next().is_some_and(start) && chars.all(rest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn an_undeclared_prefix_reports_where_it_is() {
        let err = parse(b"<a><b><p:c/></b></a>", &XmlLimits::default()).unwrap_err();
        assert!(
            matches!(err, Error::MalformedXml { position: 6, ref reason } if reason.contains("\"p\"")),
            "{err:?}"
        );
    }

    #[test]
    fn names_that_are_not_qnames_are_malformed() {
        // Found by the soap_core_envelope fuzz target: `:x:t` was read as an unprefixed
        // attribute named `x:t`, which could not be written back.
        for doc in [
            &b"<a :x:t=\"1\"/>"[..],
            b"<a x:=\"1\" xmlns:x=\"urn:x\"/>",
            b"<x:a:b xmlns:x=\"urn:x\"/>",
        ] {
            let err = parse(doc, &XmlLimits::default()).unwrap_err();
            assert!(matches!(err, Error::MalformedXml { .. }), "{err:?}");
        }
    }

    #[test]
    fn namespace_declarations_must_bind_an_ncname_prefix() {
        for doc in [
            // A prefix with a colon: `a` was written back as `p:q:a`.
            &b"<p:a xmlns:p=\"urn:x\" xmlns:p:q=\"urn:x\"/>"[..],
            b"<a xmlns:=\"urn:x\"/>",
            // A prefix that starts a processing instruction when written back.
            b"<a xmlns:?oap=\"urn:x\"/>",
            b"<a xmlns:1p=\"urn:x\"/>",
            b"<a xmlns:p^q=\"urn:x\"/>",
            b"<a xmlns:xml=\"urn:x\"/>",
            b"<a xmlns:x=\"http://www.w3.org/XML/1998/namespace\"/>",
        ] {
            let err = parse(doc, &XmlLimits::default()).unwrap_err();
            assert!(matches!(err, Error::MalformedXml { .. }), "{err:?}");
        }
        let declared = parse(
            b"<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\" xml:lang=\"en\"/>",
            &XmlLimits::default(),
        )
        .unwrap();
        assert_eq!(declared.attribute(Some(XML_NS), "lang"), Some("en"));
    }

    /// Found by the envelope fuzz target: an element in the `xml` namespace (`<xml:b>`)
    /// was written back with that namespace declared as the default one, which the
    /// parser rightly refuses.
    #[test]
    fn an_element_in_the_xml_namespace_is_written_with_its_prefix() {
        let root = parse(
            b"<a xmlns=\"urn:a\"><xml:b>1</xml:b><c/></a>",
            &XmlLimits::default(),
        )
        .unwrap();
        let written = root.to_xml();
        assert_eq!(written, r#"<a xmlns="urn:a"><xml:b>1</xml:b><c/></a>"#);
        let again = parse(written.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(again.to_xml(), written);
    }

    #[test]
    fn the_tokenizer_reads_what_xml_allows() {
        let limits = XmlLimits::default();
        let root = parse(
            "\u{FEFF}<?xml version=\"1.0\"?>\n<!-- a > b --><a x='1>2' y=\"'\"><b >t&amp;&lt;&#x41;&#66;</b ><c><![CDATA[<&>]]></c><d/><e\n/></a  >\n<!-- after -->\n"
                .as_bytes(),
            &limits,
        )
        .unwrap();
        assert_eq!(root.attribute(None, "x"), Some("1>2"));
        assert_eq!(root.attribute(None, "y"), Some("'"));
        let texts: Vec<&str> = root.children().iter().map(Element::text).collect();
        assert_eq!(texts, ["t&<AB", "<&>", "", ""]);
        // End-of-line normalization (XML 1.0 section 2.11) before references are resolved.
        let root = parse(b"<a>1\r\n2\r3&#13;</a>", &limits).unwrap();
        assert_eq!(root.text(), "1\n2\n3\r");
    }

    #[test]
    fn the_tokenizer_refuses_what_xml_does_not_allow() {
        let limits = XmlLimits::default();
        for doc in [
            &b"<a></b>"[..],
            b"<a><b></a></b>",
            b"<a></a x>",
            b"</a>",
            b"<a>",
            b"<a",
            b"<a x='1>",
            b"<a><!-- open</a>",
            b"<a><![CDATA[open</a>",
            b"<a><!ELEMENT a></a>",
            b"<a>&amp</a>",
            b"<a>&amp &lt;</a>",
            b"<a>&nbsp;</a>",
            b"<a>&#0;</a>",
            b"<a/>text",
            b"text<a/>",
            b"<a/><b/>",
            b"<a><?open</a>",
        ] {
            let err = parse(doc, &limits).unwrap_err();
            assert!(
                matches!(err, Error::MalformedXml { .. }),
                "{}: {err:?}",
                String::from_utf8_lossy(doc)
            );
        }
        for doc in [&b"<!doctype a><a/>"[..], b"<a/><!DOCTYPE a [", b"<!DOCTYPE"] {
            let err = parse(doc, &limits).unwrap_err();
            assert!(matches!(err, Error::DoctypeRefused), "{err:?}");
        }
        let err = parse(b"<a><?pi x?></a>", &limits).unwrap_err();
        assert!(
            matches!(err, Error::ProcessingInstructionRefused { position: 3 }),
            "{err:?}"
        );
        let err = parse(b"<a><b></c></a>", &limits).unwrap_err();
        assert!(
            matches!(err, Error::MalformedXml { position: 6, ref reason } if reason.contains("</b>")),
            "{err:?}"
        );
    }

    #[test]
    fn written_elements_parse_back_to_the_same_names() {
        let el = Element::new(Some("urn:a"), "a")
            .with_attribute(Some(XSI_NS), "nil", "true")
            .with_child(Element::new(None, "b").with_text("1 < 2 & \"q\""))
            .with_child(Element::new(Some("urn:c"), "c"));
        let back = parse(el.to_xml().as_bytes(), &XmlLimits::default()).unwrap();
        assert!(back.is("urn:a", "a") && back.is_nil());
        assert_eq!(back.children()[0].namespace(), None);
        assert_eq!(back.children()[0].text(), "1 < 2 & \"q\"");
        assert!(back.children()[1].is("urn:c", "c"));
    }
}
