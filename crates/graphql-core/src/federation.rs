//! Apollo Federation subgraphs: the SDL of a subgraph (with `extend schema
//! @link(url: "https://specs.apollo.dev/federation/v2.x", import: [...])` and the federation
//! directives) is given the definitions it relies on, the `_service` and `_entities` root
//! fields and the types behind them (`_Service`, `_Any`, `_Entity`, the field-set scalar,
//! `link__Import`, `link__Purpose`), and `_entities` resolves each representation the
//! router sends with the reference resolver registered for its `__typename` (or, for a
//! type with a batch resolver, all of that type's representations in one call).
//! [`Subgraph::augment`] also applies the composer's rules that one subgraph's SDL decides
//! (field sets, `@override(label:)`, `@composeDirective`).
//!
//! The steps are a plain function of the SDL text ([`prepare`], [`Subgraph::augment`]); the
//! schema builder calls them before compiling, so the rest of the crate sees an ordinary
//! schema with two more root fields.
//!
//! ```text
//! extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
//! type Product @key(fields: "upc") { upc: String! name: String }
//!   ->  + directive @key(fields: federation__FieldSet!, resolvable: Boolean = true) ...
//!       + union _Entity = Product
//!       + extend type Query { _entities(representations: [_Any!]!): [_Entity]!  _service: _Service! }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use graphql_parser::query::{Definition as QueryDefinition, OperationDefinition, Selection};
use graphql_parser::schema::{
    self as ast, Definition, Directive, Document, InterfaceType, ObjectType, TypeDefinition,
    TypeExtension,
};
use serde_json::Value;

use crate::error::{Error, Location, SchemaError};
use crate::lexer::split_schema_extensions;
use crate::resolver::{Args, Context, FieldError, ItemResult, Resolver, ResolverInput};

/// How a schema serves as an Apollo Federation subgraph
/// ([`SchemaBuilder::federation`](crate::SchemaBuilder::federation)).
///
/// ```
/// use graphql_core::{Federation, Resolver, Schema};
/// use serde_json::json;
///
/// let schema = Schema::build(r#"
///     extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
///     type Query { topProducts: [Product!]! }
///     type Product @key(fields: "upc") { upc: String! name: String }
/// "#)
/// .federation(Federation::new().max_representations(100))
/// // Given the representation `{"__typename": "Product", "upc": "1"}`.
/// .entity_resolver("Product", Resolver::sync(|_ctx, representation, _| {
///     Ok(json!({"upc": representation["upc"], "name": "Table"}))
/// }))
/// .finish()?;
/// assert!(schema.type_by_name("_Entity").is_some());
/// # Ok::<(), graphql_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Federation {
    max_representations: usize,
}

impl Default for Federation {
    fn default() -> Self {
        Federation {
            max_representations: 1000,
        }
    }
}

impl Federation {
    /// The defaults: at most 1000 representations per `_entities` field.
    pub fn new() -> Self {
        Federation::default()
    }

    /// The most representations one `_entities` field accepts (default 1000); more make the
    /// whole field fail before any reference resolver runs. A router sends every entity of
    /// one fetch in one list, so this bounds the work of one request.
    #[must_use]
    pub fn max_representations(mut self, max: usize) -> Self {
        self.max_representations = max;
        self
    }
}

/// The federation directives: name, the minor version of federation v2 that introduced it,
/// and its definition (`NAME` is replaced by the name it has in the subgraph, `FIELD_SET`,
/// `SCOPE`, `POLICY` and `CONTEXT_FIELD_VALUE` by those of the spec's scalars).
const DIRECTIVES: &[(&str, u32, &str)] = &[
    (
        "key",
        0,
        "directive @NAME(fields: FIELD_SET!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE",
    ),
    (
        "requires",
        0,
        "directive @NAME(fields: FIELD_SET!) on FIELD_DEFINITION",
    ),
    (
        "provides",
        0,
        "directive @NAME(fields: FIELD_SET!) on FIELD_DEFINITION",
    ),
    (
        "external",
        0,
        "directive @NAME(reason: String) on OBJECT | FIELD_DEFINITION",
    ),
    (
        "tag",
        0,
        "directive @NAME(name: String!) repeatable on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION | SCHEMA",
    ),
    ("extends", 0, "directive @NAME on OBJECT | INTERFACE"),
    (
        "shareable",
        0,
        "directive @NAME repeatable on OBJECT | FIELD_DEFINITION",
    ),
    (
        "inaccessible",
        0,
        "directive @NAME on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION",
    ),
    (
        "override",
        0,
        "directive @NAME(from: String!) on FIELD_DEFINITION",
    ),
    (
        "composeDirective",
        1,
        "directive @NAME(name: String!) repeatable on SCHEMA",
    ),
    ("interfaceObject", 3, "directive @NAME on OBJECT"),
    (
        "authenticated",
        5,
        "directive @NAME on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "requiresScopes",
        5,
        "directive @NAME(scopes: [[SCOPE!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "policy",
        6,
        "directive @NAME(policies: [[POLICY!]!]!) on FIELD_DEFINITION | OBJECT | INTERFACE | SCALAR | ENUM",
    ),
    (
        "context",
        8,
        "directive @NAME(name: String!) repeatable on INTERFACE | OBJECT | UNION",
    ),
    (
        "fromContext",
        8,
        "directive @NAME(field: CONTEXT_FIELD_VALUE) on ARGUMENT_DEFINITION",
    ),
    (
        "cost",
        9,
        "directive @NAME(weight: Int!) on ARGUMENT_DEFINITION | ENUM | FIELD_DEFINITION | INPUT_FIELD_DEFINITION | OBJECT | SCALAR",
    ),
    (
        "listSize",
        9,
        "directive @NAME(assumedSize: Int, slicingArguments: [String!], sizedFields: [String!], requireOneSlicingArgument: Boolean = true) on FIELD_DEFINITION",
    ),
];

/// The directives of Federation 1 (a subgraph SDL without a federation `@link`).
const FEDERATION_1: &[&str] = &["key", "requires", "provides", "external", "extends", "tag"];

/// The scalars the directives' arguments use: spec name, minor version, placeholder.
const SCALARS: &[(&str, u32, &str)] = &[
    ("FieldSet", 0, "FIELD_SET"),
    ("Scope", 5, "SCOPE"),
    ("Policy", 6, "POLICY"),
    ("ContextFieldValue", 8, "CONTEXT_FIELD_VALUE"),
];

const FEDERATION_URL: &str = "https://specs.apollo.dev/federation/v";

/// A subgraph SDL read for building: the text graphql-parser can read (`extend schema`
/// blanked, positions kept) and the federation `@link` found in it.
#[derive(Debug)]
pub(crate) struct Subgraph {
    /// The SDL with every `extend schema` blanked out.
    pub(crate) text: String,
    /// The user's SDL as given, which `_service { sdl }` returns.
    sdl: Arc<str>,
    /// `Some(minor)` for `federation/v2.minor`; `None` for Federation 1 (no `@link`).
    minor: Option<u32>,
    /// Federation name -> the name it has in this subgraph (directives without `@`).
    names: HashMap<&'static str, String>,
    /// The directives of the schema (definition and extensions) other than `@link`.
    schema_directives: Vec<Directive<'static, String>>,
    /// The `@link`s to specifications other than federation.
    other_links: Vec<OtherLink>,
}

/// Reads the `@link` of a subgraph SDL (on `extend schema` or on a schema definition) and
/// works out the name of each federation directive and type: imported ones under their
/// import name (`{name: "@key", as: "@primaryKey"}` renames), others as `federation__name`
/// (or the link's `as:` prefix).
pub(crate) fn prepare(sdl: &str) -> Result<Subgraph, Error> {
    let (text, extensions) = split_schema_extensions(sdl);
    let mut links = Vec::new();
    let mut other_links = Vec::new();
    let mut schema_directives = Vec::new();
    let mut errors = Vec::new();
    let mut collect = |directives: &[Directive<'static, String>]| {
        for d in directives {
            if d.name != "link" {
                schema_directives.push(d.clone());
                continue;
            }
            match read_link(d) {
                Ok(Some(link)) => links.push(link),
                Ok(None) => other_links.extend(read_other_link(d)),
                Err(message) => errors.push(SchemaError::new(message, vec![loc(d.position)])),
            }
        }
    };
    for ext in &extensions {
        let doc = parse_sdl(ext)?;
        for def in &doc.definitions {
            if let Definition::SchemaDefinition(s) = def {
                collect(&s.directives);
            }
        }
    }
    let main = parse_sdl(&text)?;
    for def in &main.definitions {
        if let Definition::SchemaDefinition(s) = def {
            collect(&s.directives);
        }
    }
    if links.len() > 1 {
        errors.push(SchemaError::new(
            "The schema links the federation specification more than once.",
            vec![],
        ));
    }
    if !errors.is_empty() {
        return Err(Error::InvalidSchema(errors));
    }
    let mut names = HashMap::new();
    let minor = match links.pop() {
        None => {
            for name in FEDERATION_1 {
                names.insert(*name, (*name).to_owned());
            }
            names.insert("FieldSet", "_FieldSet".to_owned());
            None
        }
        Some(link) => {
            let known = |n: &str, is_directive: bool| {
                if is_directive {
                    DIRECTIVES
                        .iter()
                        .any(|(d, since, _)| *d == n && *since <= link.minor)
                } else {
                    SCALARS
                        .iter()
                        .any(|(s, since, _)| *s == n && *since <= link.minor)
                }
            };
            for (name, alias) in &link.imports {
                let (is_directive, bare) = match name.strip_prefix('@') {
                    Some(bare) => (true, bare),
                    None => (false, name.as_str()),
                };
                if !known(bare, is_directive) {
                    errors.push(SchemaError::new(
                        format!(
                            "Cannot import unknown element \"{name}\": it is not part of federation v2.{}.",
                            link.minor
                        ),
                        vec![],
                    ));
                    continue;
                }
                let alias = alias.as_deref().unwrap_or(name);
                if alias.starts_with('@') != is_directive {
                    errors.push(SchemaError::new(
                        format!(
                            "Cannot import \"{name}\" as \"{alias}\": a directive is imported as a directive (with \"@\") and a type as a type."
                        ),
                        vec![],
                    ));
                    continue;
                }
                names.insert(static_name(bare), alias.trim_start_matches('@').to_owned());
            }
            let all = DIRECTIVES
                .iter()
                .filter(|(_, since, _)| *since <= link.minor)
                .map(|(n, _, _)| *n)
                .chain(
                    SCALARS
                        .iter()
                        .filter(|(_, since, _)| *since <= link.minor)
                        .map(|(n, _, _)| *n),
                );
            for name in all {
                names
                    .entry(name)
                    .or_insert_with(|| format!("{}__{name}", link.prefix));
            }
            Some(link.minor)
        }
    };
    if !errors.is_empty() {
        return Err(Error::InvalidSchema(errors));
    }
    Ok(Subgraph {
        text,
        sdl: sdl.into(),
        minor,
        names,
        schema_directives,
        other_links,
    })
}

/// A `@link` to a specification other than federation (a custom directive's, for
/// `@composeDirective`).
#[derive(Debug)]
struct OtherLink {
    /// The specification's name in this subgraph: `as:`, or the URL's name segment
    /// (`https://example.com/lowercase/v1.0` -> `lowercase`).
    name: String,
    /// The imported elements under their names in this subgraph (`@lowercase`).
    imports: Vec<String>,
}

/// Reads a `@link` to another specification; `None` when it has no usable URL.
fn read_other_link(d: &Directive<'static, String>) -> Option<OtherLink> {
    let arg = |name: &str| d.arguments.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let Some(ast::Value::String(url)) = arg("url") else {
        return None;
    };
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let last = segments.next().unwrap_or_default();
    // The name is the segment before the version (`.../name/v1.0`); a URL without a
    // version ends with the name.
    let url_name = if last.strip_prefix('v').is_some_and(|v| v.contains('.')) {
        segments.next().unwrap_or_default()
    } else {
        last
    };
    let name = match arg("as") {
        Some(ast::Value::String(s)) => s.clone(),
        _ => url_name.to_owned(),
    };
    let items = match arg("import") {
        Some(ast::Value::List(items)) => items.clone(),
        Some(other) => vec![other.clone()],
        None => Vec::new(),
    };
    let imports = items
        .into_iter()
        .filter_map(|item| match item {
            ast::Value::String(name) => Some(name),
            ast::Value::Object(fields) => match (fields.get("as"), fields.get("name")) {
                (Some(ast::Value::String(alias)), _) | (None, Some(ast::Value::String(alias))) => {
                    Some(alias.clone())
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    Some(OtherLink { name, imports })
}

/// Whether `label` is a label `@override(label:)` accepts: a name (a letter, then letters,
/// digits, `_`, `-`, `:`, `.`, `/`) or `percent(x)` with `x` from 0 to 100 (at most two
/// integer digits and eight decimals, or `100`), as the composer checks it.
fn valid_override_label(label: &str) -> bool {
    if let Some(percent) = label
        .strip_prefix("percent(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        if percent == "100" {
            return true;
        }
        let (integer, decimals) = match percent.split_once('.') {
            Some((integer, decimals)) => (integer, Some(decimals)),
            None => (percent, None),
        };
        let digits = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
        };
        return digits(integer, 2) && decimals.is_none_or(|d| digits(d, 8));
    }
    let mut chars = label.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_-:./".contains(c))
}

/// The federation link of one `@link` directive: version, prefix and imports.
#[derive(Debug)]
struct Link {
    minor: u32,
    prefix: String,
    /// (name, alias): `"@key"` or `"FieldSet"`, and the `as:` name when renamed.
    imports: Vec<(String, Option<String>)>,
}

/// `Ok(None)` for a link to another specification (`link/v1.0`, a custom one).
fn read_link(d: &Directive<'static, String>) -> Result<Option<Link>, String> {
    let arg = |name: &str| d.arguments.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let Some(ast::Value::String(url)) = arg("url") else {
        return Err("@link needs a \"url\" string argument.".to_owned());
    };
    let Some(version) = url.strip_prefix(FEDERATION_URL) else {
        return Ok(None);
    };
    let minor = match version.split_once('.') {
        Some(("2", minor)) => minor.parse::<u32>().ok(),
        _ => None,
    };
    let Some(minor) = minor else {
        return Err(format!(
            "Unsupported federation version in \"{url}\": this crate implements federation v2.x."
        ));
    };
    let prefix = match arg("as") {
        None => "federation".to_owned(),
        Some(ast::Value::String(s)) => s.clone(),
        Some(_) => return Err("@link(as:) must be a string.".to_owned()),
    };
    let mut imports = Vec::new();
    let items = match arg("import") {
        None => Vec::new(),
        Some(ast::Value::List(items)) => items.clone(),
        Some(other) => vec![other.clone()],
    };
    for item in items {
        match item {
            ast::Value::String(name) => imports.push((name, None)),
            ast::Value::Object(fields) => {
                let name = match fields.get("name") {
                    Some(ast::Value::String(s)) => s.clone(),
                    _ => return Err("An @link import object needs a \"name\" string.".to_owned()),
                };
                let alias = match fields.get("as") {
                    None => None,
                    Some(ast::Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err("An @link import's \"as\" must be a string.".to_owned()),
                };
                imports.push((name, alias));
            }
            _ => {
                return Err("@link(import:) lists strings or {name, as} objects.".to_owned());
            }
        }
    }
    Ok(Some(Link {
        minor,
        prefix,
        imports,
    }))
}

/// The `'static` spelling of a federation element's name (for the name map's keys).
fn static_name(name: &str) -> &'static str {
    DIRECTIVES
        .iter()
        .map(|(n, _, _)| *n)
        .chain(SCALARS.iter().map(|(n, _, _)| *n))
        .find(|n| *n == name)
        .unwrap_or("")
}

fn parse_sdl(text: &str) -> Result<Document<'static, String>, Error> {
    graphql_parser::parse_schema::<String>(text)
        .map(Document::into_static)
        .map_err(|e| Error::SdlSyntax(e.to_string()))
}

fn loc(pos: graphql_parser::Pos) -> Location {
    Location::from_pos(pos)
}

/// One field of a `@key` field set, with the fields selected below it.
#[derive(Debug, Clone, PartialEq)]
struct KeyField {
    name: String,
    children: Vec<KeyField>,
}

/// How `_entities` resolves the representations of one entity type.
#[derive(Debug)]
pub(crate) enum ReferenceResolver {
    /// One call per representation (`SchemaBuilder::entity_resolver`).
    One(Resolver),
    /// One call per request with all the type's representations
    /// (`SchemaBuilder::entity_batch_resolver`).
    Batch(Resolver),
}

/// An entity of the subgraph: a type with a resolvable `@key`.
#[derive(Debug)]
struct Entity {
    resolver: ReferenceResolver,
    /// Each `@key`'s fields, as written and parsed.
    keys: Vec<(String, Vec<KeyField>)>,
    /// For an interface entity: the object types implementing it (a resolved value names
    /// one of them); `None` for an object type.
    implementations: Option<Vec<String>>,
}

/// The entities by type name, and the bound on representations.
#[derive(Debug)]
struct Entities {
    by_name: HashMap<String, Entity>,
    max_representations: usize,
}

/// The named types by name, for checking field sets.
type FieldMap = HashMap<String, TypeFields>;

impl Subgraph {
    /// The name a federation directive or type has in this subgraph, if this version has it.
    fn name(&self, federation_name: &str) -> Option<&str> {
        self.names.get(federation_name).map(String::as_str)
    }

    /// `@override` on `type_name.field`: `label` needs federation v2.7 and a label the
    /// composer accepts.
    fn check_override(
        &self,
        type_name: &str,
        field: &ast::Field<'static, String>,
        minor: u32,
    ) -> Vec<SchemaError> {
        let Some(name) = self.name("override") else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for d in field.directives.iter().filter(|d| d.name == name) {
            let Some((_, label)) = d.arguments.iter().find(|(n, _)| n == "label") else {
                continue;
            };
            let message = match label {
                _ if minor < 7 => format!(
                    "@{name}(label:) on \"{type_name}.{}\" needs federation v2.7 or later, and the schema links v2.{minor}.",
                    field.name
                ),
                ast::Value::String(label) if valid_override_label(label) => continue,
                ast::Value::String(label) => format!(
                    "Invalid @{name} label \"{label}\" on \"{type_name}.{}\": a label starts with a letter followed by letters, digits, \"_\", \"-\", \":\", \".\" or \"/\", or is \"percent(x)\" with x a number from 0 to 100 (at most 8 decimals).",
                    field.name
                ),
                _ => format!(
                    "@{name}(label:) on \"{type_name}.{}\" must be a string.",
                    field.name
                ),
            };
            errors.push(SchemaError::new(message, vec![loc(d.position)]));
        }
        errors
    }

    /// `@composeDirective(name: "@custom")`: the name has its `@`, names a directive the
    /// SDL defines, that is not a federation directive, and that a `@link` to its
    /// specification imports (or names with the specification's prefix), as the composer
    /// requires. `defined` holds the SDL's type names and `@`-prefixed directive names.
    fn check_compose_directives(&self, defined: &HashSet<String>) -> Vec<SchemaError> {
        let Some(compose) = self.name("composeDirective") else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for d in self.schema_directives.iter().filter(|d| d.name == compose) {
            let Some(name) = string_arg(d, "name") else {
                continue;
            };
            let problem = match name.strip_prefix('@') {
                None => "the name must start with \"@\".".to_owned(),
                Some(bare) if self.names.values().any(|n| n == bare) || bare == "link" => {
                    "federation's own directives are not composed this way.".to_owned()
                }
                Some(_) if !defined.contains(&name) => {
                    "the SDL does not define that directive.".to_owned()
                }
                Some(bare)
                    if !self.other_links.iter().any(|link| {
                        link.imports.contains(&name)
                            || bare == link.name
                            || bare
                                .strip_prefix(link.name.as_str())
                                .is_some_and(|rest| rest.starts_with("__"))
                    }) =>
                {
                    "the directive must come from a specification the schema links (@link(url: \"https://.../name/v1.0\", import: [\"@name\"]))."
                        .to_owned()
                }
                Some(_) => continue,
            };
            errors.push(SchemaError::new(
                format!("@{compose}(name: \"{name}\"): {problem}"),
                vec![loc(d.position)],
            ));
        }
        errors
    }

    /// Adds the federation definitions, `_service`, `_entities` and their types to `doc`
    /// (the parsed [`Subgraph::text`]), turns an `extend type` of a type the subgraph does
    /// not define into its definition (as Federation allows), checks the field sets of
    /// `@key`, `@requires` and `@provides`, and returns the resolvers of the added root
    /// fields. `reference_resolvers` are the reference resolvers by type name.
    pub(crate) fn augment(
        &self,
        doc: &mut Document<'static, String>,
        config: &Federation,
        reference_resolvers: Vec<(String, ReferenceResolver)>,
    ) -> Result<Vec<(String, String, Resolver)>, Error> {
        let mut errors = Vec::new();
        promote_orphan_extensions(doc);
        let defined: HashSet<String> = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                Definition::TypeDefinition(t) => Some(type_name(t).to_owned()),
                Definition::DirectiveDefinition(d) => Some(format!("@{}", d.name)),
                _ => None,
            })
            .collect();
        let fields = field_map(doc, self.name("external"));
        // Federation 2 subgraphs get the composer's field-set rules; Federation 1 ones
        // (whose key fields in `extend type` are marked `@external`) only existence.
        let fed2 = self.minor.is_some();
        let rules = |directive: &'static str| {
            if !fed2 {
                return FieldSetRules::existence_only(directive);
            }
            FieldSetRules {
                directive,
                external_leaves: directive != "key",
                arguments: directive == "requires",
                abstract_fields: directive != "key",
            }
        };
        errors.extend(self.check_compose_directives(&defined));

        // The definitions the SDL uses without defining them.
        let mut added = String::new();
        let minor = self.minor.unwrap_or(0);
        let link_names: &[&str] = if self.minor.is_some() {
            &["link__Import", "link__Purpose", "@link"]
        } else {
            &[]
        };
        for (spec_name, since, _) in SCALARS {
            if *since > minor {
                continue;
            }
            let Some(name) = self.name(spec_name) else {
                continue;
            };
            if !defined.contains(name) {
                added.push_str(&format!("scalar {name}\n"));
            }
        }
        for (spec_name, since, definition) in DIRECTIVES {
            if *since > minor {
                continue;
            }
            let Some(name) = self.name(spec_name) else {
                continue;
            };
            if defined.contains(&format!("@{name}")) {
                continue;
            }
            let mut definition = definition.replace("NAME", name);
            for (scalar, _, placeholder) in SCALARS {
                if let Some(scalar_name) = self.name(scalar) {
                    definition = definition.replace(placeholder, scalar_name);
                }
            }
            if *spec_name == "override" && minor >= 7 {
                definition = definition.replace("from: String!", "from: String!, label: String");
            }
            added.push_str(&definition);
            added.push('\n');
        }
        for name in link_names {
            if defined.contains(*name) {
                continue;
            }
            added.push_str(match *name {
                "link__Import" => "scalar link__Import\n",
                "link__Purpose" => "enum link__Purpose { SECURITY EXECUTION }\n",
                _ => {
                    "directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA\n"
                }
            });
        }

        // Entities: types with a resolvable @key.
        let key = self.name("key").unwrap_or("key").to_owned();
        let mut entities: HashMap<String, Entity> = HashMap::new();
        let mut entity_objects = Vec::new();
        let mut implementations: HashMap<String, Vec<String>> = HashMap::new();
        for def in &doc.definitions {
            if let Some((name, _, interfaces, _, true)) = type_parts(def) {
                for iface in interfaces {
                    implementations
                        .entry(iface.clone())
                        .or_default()
                        .push(name.to_owned());
                }
            }
        }
        for def in &doc.definitions {
            let Some((name, directives, _, type_fields, is_object)) = type_parts(def) else {
                continue;
            };
            for d in directives.iter().filter(|d| d.name == key) {
                let Some(field_set) = string_arg(d, "fields") else {
                    continue;
                };
                let parsed = match check_field_set(&fields, name, &field_set, rules("key")) {
                    Ok(parsed) => parsed,
                    Err(message) => {
                        errors.push(SchemaError::new(
                            format!("@{key}(fields: \"{field_set}\") on \"{name}\": {message}"),
                            vec![loc(d.position)],
                        ));
                        continue;
                    }
                };
                let resolvable = !d
                    .arguments
                    .iter()
                    .any(|(n, v)| n == "resolvable" && matches!(v, ast::Value::Boolean(false)));
                if !resolvable {
                    continue;
                }
                let entity = entities.entry(name.to_owned()).or_insert_with(|| {
                    if is_object {
                        entity_objects.push(name.to_owned());
                    }
                    Entity {
                        resolver: ReferenceResolver::One(Resolver::Default),
                        keys: Vec::new(),
                        implementations: (!is_object)
                            .then(|| implementations.get(name).cloned().unwrap_or_default()),
                    }
                });
                entity.keys.push((field_set, parsed));
            }
            for f in type_fields {
                if fed2 {
                    errors.extend(self.check_override(name, f, minor));
                }
                for (directive, on_return_type) in [("requires", false), ("provides", true)] {
                    let Some(dname) = self.name(directive) else {
                        continue;
                    };
                    for d in f.directives.iter().filter(|d| d.name == dname) {
                        let Some(field_set) = string_arg(d, "fields") else {
                            continue;
                        };
                        let target = if on_return_type {
                            named_type(&f.field_type)
                        } else {
                            name
                        };
                        if on_return_type && fed2 {
                            let field = fields.get(name).and_then(|t| t.fields.get(&f.name));
                            let problem = if field.is_some_and(|field| field.external)
                                || fields.get(name).is_some_and(|t| t.external)
                            {
                                Some("a field cannot be both @provides and @external.".to_owned())
                            } else if !fields.get(target).is_some_and(|t| {
                                matches!(
                                    t.kind,
                                    TypeKind::Object | TypeKind::Interface | TypeKind::Union
                                )
                            }) {
                                Some(format!(
                                    "the field's type \"{target}\" is not an object, interface or union type."
                                ))
                            } else {
                                None
                            };
                            if let Some(message) = problem {
                                errors.push(SchemaError::new(
                                    format!("@{dname} on \"{name}.{}\": {message}", f.name),
                                    vec![loc(d.position)],
                                ));
                                continue;
                            }
                        }
                        if let Err(message) =
                            check_field_set(&fields, target, &field_set, rules(directive))
                        {
                            errors.push(SchemaError::new(
                                format!(
                                    "@{dname}(fields: \"{field_set}\") on \"{name}.{}\": {message}",
                                    f.name
                                ),
                                vec![loc(d.position)],
                            ));
                        }
                    }
                }
            }
        }
        for (type_name, resolver) in reference_resolvers {
            match entities.get_mut(&type_name) {
                Some(entity) => {
                    let message = match &resolver {
                        ReferenceResolver::One(
                            Resolver::SyncList(_)
                            | Resolver::AsyncList(_)
                            | Resolver::ItemStream(_)
                            | Resolver::TypedList(_),
                        ) => Some("The reference resolver of \"{type_name}\" must return one value (Resolver::sync or Resolver::asynchronous), not a list."),
                        ReferenceResolver::Batch(
                            Resolver::Default
                            | Resolver::Sync(_)
                            | Resolver::Async(_)
                            | Resolver::ItemStream(_)
                            | Resolver::TypedList(_),
                        ) => Some("The batch reference resolver of \"{type_name}\" must return one item per representation (Resolver::sync_list or Resolver::asynchronous_list)."),
                        _ => None,
                    };
                    if let Some(message) = message {
                        errors.push(SchemaError::new(
                            message.replace("{type_name}", &type_name),
                            vec![],
                        ));
                    }
                    entity.resolver = resolver;
                }
                None => errors.push(SchemaError::new(
                    format!(
                        "A reference resolver was registered for \"{type_name}\", which is not an entity of the subgraph (an object or interface type with a resolvable @{key})."
                    ),
                    vec![],
                )),
            }
        }
        if !errors.is_empty() {
            return Err(Error::InvalidSchema(errors));
        }

        // The root fields and their types.
        let query = query_root(doc);
        let query_defined = doc.definitions.iter().any(|d| {
            matches!(d, Definition::TypeDefinition(TypeDefinition::Object(o)) if o.name == query)
        });
        added.push_str("scalar _Any\ntype _Service { sdl: String! }\n");
        let mut root_fields = String::new();
        if !entity_objects.is_empty() {
            added.push_str(&format!("union _Entity = {}\n", entity_objects.join(" | ")));
            root_fields.push_str("_entities(representations: [_Any!]!): [_Entity]!\n");
        }
        root_fields.push_str("_service: _Service!\n");
        let extend = if query_defined { "extend " } else { "" };
        added.push_str(&format!("{extend}type {query} {{\n{root_fields}}}\n"));
        doc.definitions.extend(parse_sdl(&added)?.definitions);

        let sdl = Value::String(self.sdl.to_string());
        let service = serde_json::json!({ "sdl": sdl });
        let mut resolvers = vec![(
            query.clone(),
            "_service".to_owned(),
            Resolver::sync(move |_, _, _| Ok(service.clone())),
        )];
        if !entity_objects.is_empty() {
            let entities = Arc::new(Entities {
                by_name: entities,
                max_representations: config.max_representations,
            });
            resolvers.push((
                query,
                "_entities".to_owned(),
                Resolver::asynchronous_list(move |input| {
                    let entities = Arc::clone(&entities);
                    Box::pin(async move { entities.resolve_all(input).await })
                }),
            ));
        }
        Ok(resolvers)
    }
}

impl Entities {
    /// `_entities(representations:)`: each representation through its type's reference
    /// resolver, or with the other representations of its type through the type's batch
    /// resolver, all at once; a failing one is null with its own error. The results keep
    /// the representations' order.
    async fn resolve_all(&self, input: ResolverInput<'_>) -> crate::resolver::ListResult {
        let representations = input
            .args
            .get("representations")
            .and_then(Value::as_array)
            .ok_or_else(|| FieldError::new("\"representations\" must be a list."))?;
        if representations.len() > self.max_representations {
            return Err(FieldError::new(format!(
                "Too many representations: {}, at most {} are resolved in one request.",
                representations.len(),
                self.max_representations
            ))
            .with_extension("code", Value::from("LIMIT_EXCEEDED")));
        }
        let args = Args::new();
        let mut results: Vec<Option<ItemResult>> = Vec::with_capacity(representations.len());
        let mut singles = Vec::new();
        // (type name, entity, the indices of its representations), in order of first use.
        let mut batches: Vec<(&str, &Entity, Vec<usize>)> = Vec::new();
        for (index, representation) in representations.iter().enumerate() {
            match self.check(representation) {
                Err(e) => results.push(Some(Err(e))),
                Ok((typename, entity)) => {
                    results.push(None);
                    match &entity.resolver {
                        ReferenceResolver::One(resolver) => singles.push(self.resolve_one(
                            input.ctx,
                            typename,
                            entity,
                            resolver,
                            representation,
                            &args,
                            index,
                        )),
                        ReferenceResolver::Batch(_) => {
                            match batches.iter_mut().find(|(t, _, _)| *t == typename) {
                                Some((_, _, indices)) => indices.push(index),
                                None => batches.push((typename, entity, vec![index])),
                            }
                        }
                    }
                }
            }
        }
        let batched = batches.into_iter().map(|(typename, entity, indices)| {
            self.resolve_batch(input.ctx, typename, entity, representations, indices, &args)
        });
        let (singles, batched) = futures_util::future::join(
            futures_util::future::join_all(singles),
            futures_util::future::join_all(batched),
        )
        .await;
        for (index, result) in singles.into_iter().chain(batched.into_iter().flatten()) {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some(result);
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Ok(Value::Null)))
            .collect())
    }

    /// The representation's entity, if it names one and carries one of its keys.
    fn check<'e>(&'e self, representation: &'e Value) -> Result<(&'e str, &'e Entity), FieldError> {
        let Some(typename) = representation.get("__typename").and_then(Value::as_str) else {
            return Err(FieldError::new(
                "A representation must be an object with a \"__typename\" string.",
            ));
        };
        let Some(entity) = self.by_name.get(typename) else {
            return Err(FieldError::new(format!(
                "\"{typename}\" is not an entity of this subgraph (no type of that name has a resolvable @key)."
            )));
        };
        if !entity
            .keys
            .iter()
            .any(|(_, fields)| has_fields(representation, fields))
        {
            let keys: Vec<String> = entity
                .keys
                .iter()
                .map(|(text, _)| format!("\"{text}\""))
                .collect();
            return Err(FieldError::new(format!(
                "The representation of \"{typename}\" has the fields of none of its keys ({}).",
                keys.join(", ")
            )));
        }
        Ok((typename, entity))
    }

    #[allow(clippy::too_many_arguments)]
    async fn resolve_one(
        &self,
        ctx: &Context,
        typename: &str,
        entity: &Entity,
        resolver: &Resolver,
        representation: &Value,
        args: &Args,
        index: usize,
    ) -> (usize, ItemResult) {
        let value = match resolver {
            Resolver::Default => return (index, Ok(representation.clone())),
            Resolver::Sync(f) => f(ctx, representation, args),
            Resolver::Async(f) => {
                f(ResolverInput {
                    ctx,
                    parent: representation,
                    args,
                })
                .await
            }
            // Refused when the schema was built.
            Resolver::SyncList(_)
            | Resolver::AsyncList(_)
            | Resolver::ItemStream(_)
            | Resolver::TypedList(_) => Ok(Value::Null),
        };
        (
            index,
            value.and_then(|value| complete(typename, entity, representation, value)),
        )
    }

    /// The representations of one type at `indices`, through its batch resolver in one
    /// call; each result is paired with its representation's index.
    async fn resolve_batch(
        &self,
        ctx: &Context,
        typename: &str,
        entity: &Entity,
        representations: &[Value],
        indices: Vec<usize>,
        args: &Args,
    ) -> Vec<(usize, ItemResult)> {
        let batch = Value::Array(
            indices
                .iter()
                .filter_map(|i| representations.get(*i).cloned())
                .collect(),
        );
        let result = match &entity.resolver {
            ReferenceResolver::Batch(Resolver::SyncList(f)) => f(ctx, &batch, args),
            ReferenceResolver::Batch(Resolver::AsyncList(f)) => {
                f(ResolverInput {
                    ctx,
                    parent: &batch,
                    args,
                })
                .await
            }
            // Refused when the schema was built.
            _ => Ok(Vec::new()),
        };
        let items = match result {
            Ok(items) if items.len() == indices.len() => items,
            Ok(items) => {
                let error = FieldError::new(format!(
                    "The batch reference resolver of \"{typename}\" returned {} results for {} representations.",
                    items.len(),
                    indices.len()
                ));
                return indices
                    .into_iter()
                    .map(|i| (i, Err(error.clone())))
                    .collect();
            }
            Err(error) => {
                return indices
                    .into_iter()
                    .map(|i| (i, Err(error.clone())))
                    .collect();
            }
        };
        let batch = match batch {
            Value::Array(batch) => batch,
            _ => Vec::new(),
        };
        indices
            .into_iter()
            .zip(items)
            .zip(batch)
            .map(|((index, item), representation)| {
                (
                    index,
                    item.and_then(|value| complete(typename, entity, &representation, value)),
                )
            })
            .collect()
    }
}

/// A reference resolver's value made the entity: null stays null, an object gets the
/// representation's fields it lacks, an interface entity's must name its object type.
fn complete(typename: &str, entity: &Entity, representation: &Value, value: Value) -> ItemResult {
    let mut object = match value {
        Value::Null => return Ok(Value::Null),
        Value::Object(object) => object,
        _ => {
            return Err(FieldError::new(format!(
                "The reference resolver of \"{typename}\" returned a value that is not an object."
            )));
        }
    };
    // The representation's fields (keys, @external fields a @requires asked for) stay
    // available to the entity's field resolvers.
    if let Value::Object(fields) = representation {
        for (name, value) in fields {
            if !object.contains_key(name) {
                object.insert(name.clone(), value.clone());
            }
        }
    }
    if let Some(implementations) = &entity.implementations {
        // An interface entity: the resolver names the object type; `__typename` copied
        // from the representation is the interface's and is not enough.
        let named = object.get("__typename").and_then(Value::as_str);
        if !named.is_some_and(|n| implementations.iter().any(|i| i == n)) {
            return Err(FieldError::new(format!(
                "The reference resolver of interface \"{typename}\" must return an object whose \"__typename\" names a type implementing it."
            )));
        }
    }
    Ok(Value::Object(object))
}

/// Whether a representation carries every field of a key (nested ones inside objects, or
/// inside each object of a list).
fn has_fields(value: &Value, fields: &[KeyField]) -> bool {
    fields.iter().all(|f| match value.get(&f.name) {
        None => false,
        Some(_) if f.children.is_empty() => true,
        Some(Value::Array(items)) => items.iter().all(|i| has_fields(i, &f.children)),
        Some(v @ Value::Object(_)) => has_fields(v, &f.children),
        Some(_) => true,
    })
}

/// What a field set may select besides existing fields (the composer's rules for each
/// directive in a federation v2 subgraph; Federation 1 subgraphs are only checked for
/// fields that exist).
#[derive(Debug, Clone, Copy)]
struct FieldSetRules {
    /// `@key`, `@requires` or `@provides` (without `@`), for messages.
    directive: &'static str,
    /// Leaf fields must be `@external` unless a field above them in the set is
    /// (`@requires`, `@provides`: fields this subgraph resolves itself are not required
    /// from, or provided by, another one).
    external_leaves: bool,
    /// Fields with arguments may be selected (`@requires` only).
    arguments: bool,
    /// Fields of an interface or union type may be selected (not in `@key`).
    abstract_fields: bool,
}

impl FieldSetRules {
    fn existence_only(directive: &'static str) -> Self {
        FieldSetRules {
            directive,
            external_leaves: false,
            arguments: true,
            abstract_fields: true,
        }
    }
}

/// Parses a field set (`"id"`, `"sku package"`, `"id organization { id }"`) and checks its
/// fields against `type_name`'s; returns the fields, without inline fragments' contents.
fn check_field_set(
    fields: &FieldMap,
    type_name: &str,
    field_set: &str,
    rules: FieldSetRules,
) -> Result<Vec<KeyField>, String> {
    let text = format!("{{{field_set}}}");
    let doc = graphql_parser::parse_query::<String>(&text)
        .map_err(|e| format!("the field set does not parse: {e}"))?;
    let mut selections = None;
    for def in doc.definitions {
        if let QueryDefinition::Operation(OperationDefinition::SelectionSet(set)) = def {
            selections = Some(set.items);
        }
    }
    let items = selections.ok_or_else(|| "the field set does not parse.".to_owned())?;
    if items.is_empty() {
        return Err("the field set is empty.".to_owned());
    }
    check_selections(fields, type_name, &items, rules, false)
}

fn check_selections(
    fields: &FieldMap,
    type_name: &str,
    items: &[Selection<'_, String>],
    rules: FieldSetRules,
    external_above: bool,
) -> Result<Vec<KeyField>, String> {
    let mut out = Vec::new();
    let parent = fields.get(type_name);
    for item in items {
        match item {
            Selection::Field(f) => {
                if f.name == "__typename" {
                    continue;
                }
                let Some(field) = parent.and_then(|t| t.fields.get(&f.name)) else {
                    return Err(format!(
                        "field \"{}\" is not defined on type \"{type_name}\".",
                        f.name
                    ));
                };
                let external = field.external || parent.is_some_and(|t| t.external);
                if !rules.arguments && field.has_arguments {
                    return Err(format!(
                        "field \"{type_name}.{}\" has arguments, which @{} does not allow.",
                        f.name, rules.directive
                    ));
                }
                let field_kind = fields.get(&field.type_name).map(|t| t.kind);
                if !rules.abstract_fields
                    && matches!(field_kind, Some(TypeKind::Interface | TypeKind::Union))
                {
                    return Err(format!(
                        "field \"{type_name}.{}\" is of an interface or union type, which @{} does not allow.",
                        f.name, rules.directive
                    ));
                }
                // Below an interface, whether a field is external depends on the
                // implementations; left to the composer.
                let interface_parent = parent.is_some_and(|t| t.kind == TypeKind::Interface);
                if rules.external_leaves
                    && f.selection_set.items.is_empty()
                    && !external
                    && !external_above
                    && !interface_parent
                {
                    return Err(format!(
                        "field \"{type_name}.{}\" is resolved by this subgraph (it is not marked @external), so it cannot be part of a @{}.",
                        f.name, rules.directive
                    ));
                }
                let children = if f.selection_set.items.is_empty() {
                    Vec::new()
                } else {
                    check_selections(
                        fields,
                        &field.type_name,
                        &f.selection_set.items,
                        rules,
                        external_above || external || interface_parent,
                    )?
                };
                out.push(KeyField {
                    name: f.name.clone(),
                    children,
                });
            }
            Selection::InlineFragment(fragment) => {
                let target = match &fragment.type_condition {
                    Some(graphql_parser::query::TypeCondition::On(t)) => t.as_str(),
                    None => type_name,
                };
                // Checked, but not required of representations: which branch applies
                // depends on the runtime type.
                check_selections(
                    fields,
                    target,
                    &fragment.selection_set.items,
                    rules,
                    external_above,
                )?;
            }
            Selection::FragmentSpread(_) => {
                return Err("field sets cannot use named fragments.".to_owned());
            }
        }
    }
    Ok(out)
}

/// The kind of a named type, as field-set checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeKind {
    Object,
    Interface,
    Union,
    /// Scalars, enums and input objects.
    Other,
}

/// What field-set checks know of one field.
#[derive(Debug)]
struct FieldInfo {
    /// The named type (list and non-null wrappers removed).
    type_name: String,
    has_arguments: bool,
    /// Marked `@external` (the field itself).
    external: bool,
}

/// What field-set checks know of one named type (definitions and extensions together).
#[derive(Debug)]
struct TypeFields {
    kind: TypeKind,
    /// The type is marked `@external` (every field is).
    external: bool,
    fields: HashMap<String, FieldInfo>,
}

/// Every named type with the fields of object and interface types; `external` is the
/// subgraph's name of `@external`.
fn field_map(doc: &Document<'static, String>, external: Option<&str>) -> FieldMap {
    let mut map: FieldMap = HashMap::new();
    let is_external = |ds: &[Directive<'static, String>]| {
        external.is_some_and(|e| ds.iter().any(|d| d.name == e))
    };
    for def in &doc.definitions {
        if let Some((name, directives, _, type_fields, is_object)) = type_parts(def) {
            let entry = map.entry(name.to_owned()).or_insert_with(|| TypeFields {
                kind: if is_object {
                    TypeKind::Object
                } else {
                    TypeKind::Interface
                },
                external: false,
                fields: HashMap::new(),
            });
            // Fields of an `@external` type (or type extension) are external.
            let type_external = is_external(directives);
            for f in type_fields {
                entry.fields.insert(
                    f.name.clone(),
                    FieldInfo {
                        type_name: named_type(&f.field_type).to_owned(),
                        has_arguments: !f.arguments.is_empty(),
                        external: type_external || is_external(&f.directives),
                    },
                );
            }
            continue;
        }
        let kind = match def {
            Definition::TypeDefinition(TypeDefinition::Union(t)) => {
                Some((t.name.as_str(), TypeKind::Union))
            }
            Definition::TypeExtension(TypeExtension::Union(t)) => {
                Some((t.name.as_str(), TypeKind::Union))
            }
            Definition::TypeDefinition(t) => Some((type_name(t), TypeKind::Other)),
            _ => None,
        };
        if let Some((name, kind)) = kind {
            map.entry(name.to_owned()).or_insert_with(|| TypeFields {
                kind,
                external: false,
                fields: HashMap::new(),
            });
        }
    }
    map
}

type TypeParts<'d> = (
    &'d str,
    &'d [Directive<'static, String>],
    &'d [String],
    &'d [ast::Field<'static, String>],
    bool,
);

/// An object or interface type's (or extension's) name, directives, interfaces, fields and
/// whether it is an object type.
fn type_parts<'d>(def: &'d Definition<'static, String>) -> Option<TypeParts<'d>> {
    Some(match def {
        Definition::TypeDefinition(TypeDefinition::Object(t)) => (
            &t.name,
            &t.directives,
            &t.implements_interfaces,
            &t.fields,
            true,
        ),
        Definition::TypeDefinition(TypeDefinition::Interface(t)) => (
            &t.name,
            &t.directives,
            &t.implements_interfaces,
            &t.fields,
            false,
        ),
        Definition::TypeExtension(TypeExtension::Object(t)) => (
            &t.name,
            &t.directives,
            &t.implements_interfaces,
            &t.fields,
            true,
        ),
        Definition::TypeExtension(TypeExtension::Interface(t)) => (
            &t.name,
            &t.directives,
            &t.implements_interfaces,
            &t.fields,
            false,
        ),
        _ => return None,
    })
}

fn type_name<'d>(t: &'d TypeDefinition<'static, String>) -> &'d str {
    match t {
        TypeDefinition::Scalar(t) => &t.name,
        TypeDefinition::Object(t) => &t.name,
        TypeDefinition::Interface(t) => &t.name,
        TypeDefinition::Union(t) => &t.name,
        TypeDefinition::Enum(t) => &t.name,
        TypeDefinition::InputObject(t) => &t.name,
    }
}

fn named_type<'d>(ty: &'d ast::Type<'static, String>) -> &'d str {
    match ty {
        ast::Type::NamedType(name) => name,
        ast::Type::ListType(inner) | ast::Type::NonNullType(inner) => named_type(inner),
    }
}

fn string_arg(d: &Directive<'static, String>, name: &str) -> Option<String> {
    d.arguments.iter().find_map(|(n, v)| match v {
        ast::Value::String(s) if n == name => Some(s.clone()),
        _ => None,
    })
}

/// The name of the query root type: the schema definition's, or `Query`.
fn query_root(doc: &Document<'static, String>) -> String {
    doc.definitions
        .iter()
        .find_map(|d| match d {
            Definition::SchemaDefinition(s) => s.query.clone(),
            _ => None,
        })
        .unwrap_or_else(|| "Query".to_owned())
}

/// A subgraph may `extend type Product @key(...)` without defining `Product` (it is
/// defined by another subgraph): the first such extension becomes the definition.
fn promote_orphan_extensions(doc: &mut Document<'static, String>) {
    let mut defined: HashSet<String> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::TypeDefinition(t) => Some(type_name(t).to_owned()),
            _ => None,
        })
        .collect();
    for def in &mut doc.definitions {
        let promoted = match def {
            Definition::TypeExtension(TypeExtension::Object(e)) if !defined.contains(&e.name) => {
                TypeDefinition::Object(ObjectType {
                    position: e.position,
                    description: None,
                    name: e.name.clone(),
                    implements_interfaces: std::mem::take(&mut e.implements_interfaces),
                    directives: std::mem::take(&mut e.directives),
                    fields: std::mem::take(&mut e.fields),
                })
            }
            Definition::TypeExtension(TypeExtension::Interface(e))
                if !defined.contains(&e.name) =>
            {
                TypeDefinition::Interface(InterfaceType {
                    position: e.position,
                    description: None,
                    name: e.name.clone(),
                    implements_interfaces: std::mem::take(&mut e.implements_interfaces),
                    directives: std::mem::take(&mut e.directives),
                    fields: std::mem::take(&mut e.fields),
                })
            }
            _ => continue,
        };
        defined.insert(type_name(&promoted).to_owned());
        *def = Definition::TypeDefinition(promoted);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn imports_keep_their_names_and_the_rest_is_namespaced() {
        let sg = prepare(
            r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.3",
                 import: ["@key", {name: "@shareable", as: "@sharable"}, "FieldSet"])
               type Query { a: Int }"#,
        )
        .unwrap();
        assert_eq!(sg.name("key"), Some("key"));
        assert_eq!(sg.name("shareable"), Some("sharable"));
        assert_eq!(sg.name("external"), Some("federation__external"));
        assert_eq!(sg.name("FieldSet"), Some("FieldSet"));
        assert_eq!(
            sg.name("interfaceObject"),
            Some("federation__interfaceObject")
        );
        // Introduced in v2.5: not in a v2.3 subgraph.
        assert_eq!(sg.name("authenticated"), None);
        assert!(!sg.text.contains("extend schema"));
    }

    #[test]
    fn link_prefix_and_unknown_imports() {
        let sg = prepare(
            r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", as: "fed")
               type Query { a: Int }"#,
        )
        .unwrap();
        assert_eq!(sg.name("key"), Some("fed__key"));
        let err = prepare(
            r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@interfaceObject"])
               type Query { a: Int }"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("@interfaceObject"), "{err}");
        let err = prepare(
            r#"extend schema @link(url: "https://specs.apollo.dev/federation/v3.0")
               type Query { a: Int }"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("v2.x"), "{err}");
    }

    #[test]
    fn override_labels_as_the_composer_reads_them() {
        for ok in [
            "percent(0)",
            "percent(50)",
            "percent(100)",
            "percent(99.12345678)",
            "percent(05)",
            "a",
            "beta",
            "Flag_1-x:y.z/w",
        ] {
            assert!(valid_override_label(ok), "{ok}");
        }
        for bad in [
            "",
            "percent(101)",
            "percent(100.0)",
            "percent(1.123456789)",
            "percent()",
            "percent(.5)",
            "percent(5.)",
            "percent(-1)",
            "percent(5",
            "1abc",
            "_a",
            "a b",
            "é",
            "a,b",
        ] {
            assert!(!valid_override_label(bad), "{bad}");
        }
    }

    #[test]
    fn other_links_name_and_imports() {
        let sg = prepare(
            r#"extend schema
                 @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@composeDirective"])
                 @link(url: "https://example.com/custom/v1.2", import: ["@a", {name: "@b", as: "@c"}])
                 @link(url: "https://example.com/other/v0.1", as: "o")
                 @composeDirective(name: "@a")
               type Query { a: Int }"#,
        )
        .unwrap();
        assert_eq!(sg.other_links.len(), 2);
        assert_eq!(sg.other_links[0].name, "custom");
        assert_eq!(sg.other_links[0].imports, ["@a", "@c"]);
        assert_eq!(sg.other_links[1].name, "o");
        assert_eq!(sg.schema_directives.len(), 1);
    }

    #[test]
    fn field_sets_are_checked_and_nested_keys_found() {
        let doc = graphql_parser::parse_schema::<String>(
            "type P { id: ID! org: O tags: [O] } type O { id: ID! name: String }",
        )
        .unwrap()
        .into_static();
        let fields = field_map(&doc, None);
        let any = FieldSetRules::existence_only("key");
        let parsed = check_field_set(&fields, "P", "id org { id }", any).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].children[0].name, "id");
        assert!(check_field_set(&fields, "P", "nope", any).is_err());
        assert!(check_field_set(&fields, "P", "org { nope }", any).is_err());
        assert!(check_field_set(&fields, "P", "id {", any).is_err());
        let rep = serde_json::json!({"id": 1, "org": {"id": 2}});
        assert!(has_fields(&rep, &parsed));
        let rep = serde_json::json!({"id": 1, "org": {"name": 2}});
        assert!(!has_fields(&rep, &parsed));
        let tags = check_field_set(&fields, "P", "tags { id }", any).unwrap();
        assert!(has_fields(&serde_json::json!({"tags": [{"id": 1}]}), &tags));
        assert!(!has_fields(&serde_json::json!({"tags": [{}]}), &tags));
    }
}
