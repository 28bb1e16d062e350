//! SOAP 1.1 and 1.2 envelopes: the version from the namespace and the content type, the
//! structural rules, and header blocks with `mustUnderstand` and `actor`/`role`.
//!
//! Elements are matched by namespace and local name, never by prefix.
//!
//! ```
//! use soap_core::{Envelope, SoapVersion, XmlLimits};
//!
//! let xml = br#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope">
//!   <e:Body><m:ping xmlns:m="urn:example"/></e:Body></e:Envelope>"#;
//! let envelope = Envelope::parse(xml, &XmlLimits::default())?;
//! assert_eq!(envelope.version, SoapVersion::V12);
//! assert_eq!(envelope.body[0].name(), "ping");
//! # Ok::<(), soap_core::Error>(())
//! ```

use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::error::{Error, Result};
use crate::xml::{self, Element, XmlLimits};

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The SOAP 1.2 envelope namespace.
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// SOAP 1.1 `actor` for "the next node" (section 4.2.2).
pub const SOAP11_ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";
/// SOAP 1.2 roles (part 1 section 2.2).
pub const SOAP12_ROLE_NEXT: &str = "http://www.w3.org/2003/05/soap-envelope/role/next";
/// SOAP 1.2 `ultimateReceiver` role.
pub const SOAP12_ROLE_ULTIMATE: &str =
    "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver";
/// SOAP 1.2 `none` role: blocks aimed at no one.
pub const SOAP12_ROLE_NONE: &str = "http://www.w3.org/2003/05/soap-envelope/role/none";

/// SOAP 1.2 `encodingStyle` "no claims about the encoding" (part 1 section 5.1.1).
pub const SOAP12_ENCODING_NONE: &str = "http://www.w3.org/2003/05/soap-envelope/encoding/none";

/// The SOAP version of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoapVersion {
    /// SOAP 1.1 (W3C note, 2000): `text/xml`, `SOAPAction` header.
    V11,
    /// SOAP 1.2 (W3C recommendation): `application/soap+xml; action=...`.
    V12,
}

impl SoapVersion {
    /// The envelope namespace.
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    /// The media type with charset.
    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    fn from_namespace(ns: Option<&str>) -> Option<SoapVersion> {
        match ns {
            Some(SOAP11_NS) => Some(SoapVersion::V11),
            Some(SOAP12_NS) => Some(SoapVersion::V12),
            _ => None,
        }
    }
}

/// What the HTTP headers say about a SOAP request: its version and action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// From the media type.
    pub version: SoapVersion,
    /// `SOAPAction` (1.1, quotes removed) or the `action` parameter (1.2); `None` when absent
    /// or empty.
    pub action: Option<String>,
}

impl MessageInfo {
    /// Reads the content type and action: `text/xml` with `SOAPAction` for 1.1 (SOAP 1.1
    /// section 6.1.1), `application/soap+xml` with an optional `action` parameter for 1.2
    /// (RFC 3902). Anything else is [`Error::UnsupportedContentType`].
    pub fn from_headers(headers: &HeaderMap) -> Result<MessageInfo> {
        let raw = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let unsupported = || Error::UnsupportedContentType {
            found: raw.map(str::to_owned),
        };
        let raw_ct = raw.ok_or_else(unsupported)?;
        let mut params = raw_ct.split(';');
        let media = params.next().unwrap_or("").trim();
        // Parameter names and the media type compare without regard to ASCII case (RFC 9110
        // section 8.3.1), checked in place rather than lowercased copies.
        let mut params = params.filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim(), unquote(v.trim())))
        });
        if let Some((_, charset)) = params
            .clone()
            .find(|(k, _)| k.eq_ignore_ascii_case("charset"))
            && !charset.eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported());
        }
        if media.eq_ignore_ascii_case("text/xml") {
            let action = headers
                .get("soapaction")
                .and_then(|v| v.to_str().ok())
                .map(|v| unquote(v.trim()))
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            Ok(MessageInfo {
                version: SoapVersion::V11,
                action,
            })
        } else if media.eq_ignore_ascii_case("application/soap+xml") {
            Ok(MessageInfo {
                version: SoapVersion::V12,
                action: params
                    .find(|(k, _)| k.eq_ignore_ascii_case("action"))
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
            })
        } else {
            Err(unsupported())
        }
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// A SOAP envelope: its version, header blocks and body entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// From the envelope's namespace.
    pub version: SoapVersion,
    /// Header blocks (children of `Header`).
    pub headers: Vec<Element>,
    /// Body entries (children of `Body`).
    pub body: Vec<Element>,
}

impl Envelope {
    /// An empty envelope.
    pub fn new(version: SoapVersion) -> Self {
        Envelope {
            version,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Parses an envelope with the hardened reader. An unknown root namespace or a root
    /// that is not `Envelope` is [`Error::VersionMismatch`] (SOAP 1.2 part 1 section 5.4.7);
    /// structure errors are [`Error::InvalidEnvelope`].
    pub fn parse(body: &[u8], limits: &XmlLimits) -> Result<Envelope> {
        let root = xml::parse(body, limits)?;
        Envelope::from_element(root)
    }

    /// Parses an envelope and checks that its version is the one the content type said.
    pub fn parse_request(info: &MessageInfo, body: &[u8], limits: &XmlLimits) -> Result<Envelope> {
        let envelope = Envelope::parse(body, limits)?;
        if envelope.version != info.version {
            return Err(Error::VersionMismatch {
                reason: format!(
                    "a SOAP {} envelope sent as {}",
                    if envelope.version == SoapVersion::V11 {
                        "1.1"
                    } else {
                        "1.2"
                    },
                    info.version.content_type()
                ),
            });
        }
        Ok(envelope)
    }

    /// Checks the structure of a parsed root element.
    pub fn from_element(root: Element) -> Result<Envelope> {
        let version = match SoapVersion::from_namespace(root.namespace()) {
            Some(v) if root.name() == "Envelope" => v,
            _ => {
                return Err(Error::VersionMismatch {
                    reason: format!(
                        "root element {{{}}}{} is not a SOAP 1.1 or 1.2 envelope",
                        root.namespace().unwrap_or(""),
                        root.name()
                    ),
                });
            }
        };
        let ns = version.namespace();
        // SOAP 1.2 part 1 section 5.1.1: encodingStyle may appear on header blocks, body
        // entries and their descendants, never on Envelope, Header or Body. SOAP 1.1 allows
        // it anywhere (section 4.1.1); on Envelope or Body it scopes the body entries.
        let mut inherited_encoding = root.attribute(Some(ns), "encodingStyle").map(str::to_owned);
        if version == SoapVersion::V12 && inherited_encoding.is_some() {
            return Err(Error::InvalidEnvelope(
                "encodingStyle is not allowed on Envelope".into(),
            ));
        }
        if !root.text().trim().is_empty() {
            return Err(Error::InvalidEnvelope(
                "text directly inside Envelope".into(),
            ));
        }
        let mut headers = None;
        let mut body = None;
        for child in root.into_children() {
            match (child.namespace() == Some(ns), child.name()) {
                (true, "Header") if headers.is_none() && body.is_none() => {
                    if version == SoapVersion::V12
                        && child.attribute(Some(ns), "encodingStyle").is_some()
                    {
                        return Err(Error::InvalidEnvelope(
                            "encodingStyle is not allowed on Header".into(),
                        ));
                    }
                    let blocks = child.into_children();
                    for block in &blocks {
                        check_header_booleans(version, block)?;
                    }
                    headers = Some(blocks);
                }
                (true, "Header") => {
                    return Err(Error::InvalidEnvelope(
                        "Header must come once, before Body".into(),
                    ));
                }
                (true, "Body") if body.is_none() => {
                    if !child.text().trim().is_empty() {
                        return Err(Error::InvalidEnvelope("text directly inside Body".into()));
                    }
                    if let Some(style) = child.attribute(Some(ns), "encodingStyle") {
                        if version == SoapVersion::V12 {
                            return Err(Error::InvalidEnvelope(
                                "encodingStyle is not allowed on Body".into(),
                            ));
                        }
                        inherited_encoding = Some(style.to_owned());
                    }
                    let mut entries = child.into_children();
                    if let Some(style) = &inherited_encoding {
                        for entry in &mut entries {
                            if entry.attribute(Some(ns), "encodingStyle").is_none() {
                                entry.set_attribute(Some(ns), "encodingStyle", style);
                            }
                        }
                    }
                    body = Some(entries);
                }
                (true, "Body") => return Err(Error::InvalidEnvelope("two Body elements".into())),
                _ if body.is_some() => {
                    return Err(Error::InvalidEnvelope(format!(
                        "element {} after Body",
                        child.name()
                    )));
                }
                _ => {
                    return Err(Error::InvalidEnvelope(format!(
                        "unexpected element {} before Body",
                        child.name()
                    )));
                }
            }
        }
        let body = body.ok_or_else(|| Error::InvalidEnvelope("no Body".into()))?;
        Ok(Envelope {
            version,
            headers: headers.unwrap_or_default(),
            body,
        })
    }

    /// The header blocks aimed at this node (no actor/role, `next`, `ultimateReceiver`, or
    /// one of `roles`) that carry `mustUnderstand` true.
    pub fn mandatory_headers<'a>(
        &'a self,
        roles: &'a [String],
    ) -> impl Iterator<Item = &'a Element> + 'a {
        let version = self.version;
        self.headers
            .iter()
            .filter(move |h| must_understand(version, h) && targets_us(version, h, roles))
    }

    /// Serializes the envelope (`soap:` prefix for 1.1, `env:` for 1.2).
    pub fn to_xml(&self) -> String {
        self.write_xml(None)
    }

    /// [`Envelope::to_xml`] with `spliced` written after the body entries: a body entry
    /// already serialized by our own serializer (trusted, namespaces declared on its root).
    #[cfg(test)]
    pub(crate) fn to_xml_with_body(&self, spliced: &str) -> String {
        self.write_xml(Some(spliced))
    }

    fn write_xml(&self, spliced: Option<&str>) -> String {
        let ns = self.version.namespace();
        let prefix = version_prefix(self.version);
        // Written in place rather than as an Envelope element holding clones of the header
        // blocks and body entries: the clone and its drop were a tenth of a request's work.
        let mut out = String::with_capacity(512 + spliced.map_or(0, str::len));
        out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
        out.push('<');
        out.push_str(prefix);
        out.push_str(":Envelope xmlns:");
        out.push_str(prefix);
        out.push_str("=\"");
        out.push_str(ns);
        out.push_str("\">");
        // Nothing below looks the prefix up when there are no header blocks or body entries.
        let mut declared = if self.headers.is_empty() && self.body.is_empty() {
            Vec::new()
        } else {
            vec![(prefix.to_owned(), ns.to_owned())]
        };
        let tag = |out: &mut String, close: bool, name: &str, empty: bool| {
            out.push_str(if close { "</" } else { "<" });
            out.push_str(prefix);
            out.push(':');
            out.push_str(name);
            out.push_str(if empty { "/>" } else { ">" });
        };
        for (name, children) in [("Header", &self.headers), ("Body", &self.body)] {
            let extra = if name == "Body" { spliced } else { None };
            if children.is_empty() && extra.is_none() {
                if name == "Body" {
                    tag(&mut out, false, "Body", true);
                }
                continue;
            }
            tag(&mut out, false, name, false);
            for child in children {
                child.write(&mut out, &mut declared, None);
            }
            if let Some(extra) = extra {
                out.push_str(extra);
            }
            tag(&mut out, true, name, false);
        }
        tag(&mut out, true, "Envelope", false);
        out
    }
}

/// Writes what comes before the body entry of a response envelope with no header blocks,
/// the same bytes as [`Envelope::to_xml`]; the entry is then written in place and
/// [`write_response_tail`] closes the envelope (no copy of the entry).
pub(crate) fn write_response_head(out: &mut String, version: SoapVersion) {
    let prefix = version_prefix(version);
    out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    out.push('<');
    out.push_str(prefix);
    out.push_str(":Envelope xmlns:");
    out.push_str(prefix);
    out.push_str("=\"");
    out.push_str(version.namespace());
    out.push_str("\"><");
    out.push_str(prefix);
    out.push_str(":Body>");
}

/// Closes what [`write_response_head`] opened.
pub(crate) fn write_response_tail(out: &mut String, version: SoapVersion) {
    let prefix = version_prefix(version);
    out.push_str("</");
    out.push_str(prefix);
    out.push_str(":Body></");
    out.push_str(prefix);
    out.push_str(":Envelope>");
}

/// The prefix our envelopes are written with.
fn version_prefix(version: SoapVersion) -> &'static str {
    match version {
        SoapVersion::V11 => "soap",
        SoapVersion::V12 => "env",
    }
}

/// Whether a header block has `mustUnderstand` set (1.1: `1`; 1.2: `true` or `1`; both
/// spellings are accepted in either version). [`Envelope::parse`] has already refused a
/// value that is not a boolean.
pub fn must_understand(version: SoapVersion, block: &Element) -> bool {
    must_understand_value(block.attribute(Some(version.namespace()), "mustUnderstand"))
}

/// [`must_understand`] from the attribute's value.
pub(crate) fn must_understand_value(value: Option<&str>) -> bool {
    value.and_then(parse_boolean).unwrap_or(false)
}

/// An `xs:boolean` (XML Schema part 2 section 3.2.2, whitespace collapsed).
fn parse_boolean(value: &str) -> Option<bool> {
    match value.trim_matches([' ', '\t', '\n', '\r']) {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The header attributes that must be booleans in `version`.
fn boolean_attributes(version: SoapVersion) -> &'static [&'static str] {
    match version {
        SoapVersion::V11 => &["mustUnderstand"],
        SoapVersion::V12 => &["mustUnderstand", "relay"],
    }
}

/// `mustUnderstand` (and 1.2 `relay`) must be booleans: SOAP 1.2 part 1 sections 5.2.3 and
/// 5.2.4, SOAP 1.1 section 4.2.3 (`0` or `1`; `true`/`false` are accepted too). Anything
/// else is a Sender (1.1 Client) fault rather than a silent "not mandatory".
pub(crate) fn check_header_booleans(version: SoapVersion, block: &Element) -> Result<()> {
    for name in boolean_attributes(version) {
        if let Some(value) = block.attribute(Some(version.namespace()), name)
            && parse_boolean(value).is_none()
        {
            return Err(Error::InvalidEnvelope(format!(
                "{name}={value:?} on header block {} is not a boolean",
                block.name()
            )));
        }
    }
    Ok(())
}

/// [`check_header_booleans`] over a lookup of the block's attributes in the envelope
/// namespace, without the error's words.
pub(crate) fn header_booleans_are_valid<'v>(
    version: SoapVersion,
    attribute: impl Fn(&str) -> Option<&'v str>,
) -> bool {
    boolean_attributes(version)
        .iter()
        .all(|name| attribute(name).is_none_or(|value| parse_boolean(value).is_some()))
}

/// The block's `actor` (1.1) or `role` (1.2), from a lookup of its attributes in the
/// envelope namespace.
pub(crate) fn block_target<'v>(
    version: SoapVersion,
    attribute: impl Fn(&str) -> Option<&'v str>,
) -> Option<&'v str> {
    attribute(match version {
        SoapVersion::V11 => "actor",
        SoapVersion::V12 => "role",
    })
}

/// Whether a header block is aimed at this node.
pub fn targets_us(version: SoapVersion, block: &Element, roles: &[String]) -> bool {
    targets_us_value(
        version,
        block_target(version, |name| {
            block.attribute(Some(version.namespace()), name)
        }),
        roles,
    )
}

/// [`targets_us`] from the block's `actor` (1.1) or `role` (1.2).
pub(crate) fn targets_us_value(
    version: SoapVersion,
    target: Option<&str>,
    roles: &[String],
) -> bool {
    match (version, target) {
        (_, None) => true,
        (SoapVersion::V11, Some(a)) => a == SOAP11_ACTOR_NEXT || roles.iter().any(|r| r == a),
        (SoapVersion::V12, Some(SOAP12_ROLE_NONE)) => false,
        (SoapVersion::V12, Some(r)) => {
            r == SOAP12_ROLE_NEXT || r == SOAP12_ROLE_ULTIMATE || roles.iter().any(|x| x == r)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_response_head_and_tail_are_the_envelope_written_around_its_body() {
        for version in [SoapVersion::V11, SoapVersion::V12] {
            let entry = r#"<r xmlns="urn:x"><a>1</a></r>"#;
            let mut out = String::new();
            write_response_head(&mut out, version);
            out.push_str(entry);
            write_response_tail(&mut out, version);
            assert_eq!(out, Envelope::new(version).to_xml_with_body(entry));
        }
    }

    #[test]
    fn to_xml_writes_header_and_body_under_the_version_prefix() {
        let mut envelope = Envelope::new(SoapVersion::V12);
        assert_eq!(
            envelope.to_xml(),
            r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body/></env:Envelope>"#
        );
        envelope
            .headers
            .push(Element::new(Some("urn:t"), "trace").with_text("1"));
        envelope.body.push(
            Element::new(Some(SOAP12_NS), "Fault")
                .with_child(Element::new(None, "x").with_attribute(Some("urn:a"), "b", "<")),
        );
        let written = envelope.to_xml();
        assert_eq!(
            written,
            r#"<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><trace xmlns="urn:t">1</trace></env:Header><env:Body><env:Fault><x xmlns:ns1="urn:a" ns1:b="&lt;"/></env:Fault></env:Body></env:Envelope>"#
        );
        let back = Envelope::parse(written.as_bytes(), &XmlLimits::default()).unwrap();
        assert!(back.headers[0].is("urn:t", "trace") && back.body[0].is(SOAP12_NS, "Fault"));
    }
}
