#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! graphql-js's validation cases, as a table (`tests/data/graphql-js-validation.json`): each
//! case names a graphql-js rule, a schema, a document and the errors graphql-js reports, with
//! their locations. Every case runs the rules of this crate that cover that graphql-js rule
//! and compares the errors as a set (graphql-js reports in visiting order, this crate rule by
//! rule): message and locations.
//!
//! Where this crate still differs, the case is listed in [`DIFFERENCES`] with the reason and a
//! weaker check that must still hold; a listed case that starts to match exactly fails the
//! test, so the list stays true.

use std::collections::HashMap;
use std::sync::OnceLock;

use graphql_core::{Document, GraphQLError, Rule, Schema, validate, validate_with};
use serde_json::Value;

const DATA: &str = include_str!("data/graphql-js-validation.json");

/// How a case still differs from graphql-js, and what is checked instead.
#[derive(Debug, Clone, Copy)]
enum Difference {
    /// graphql-parser 0.4 cannot read the document (the syntax is newer than it): checked
    /// that parsing fails.
    Unparsable(&'static str),
    /// This crate reports more, from a rule that covers more than graphql-js's rule (checked:
    /// without the errors whose message contains the given text, the errors are
    /// graphql-js's).
    Extra(&'static str, &'static str),
}

impl Difference {
    fn reason(self) -> &'static str {
        match self {
            Difference::Unparsable(why) | Difference::Extra(_, why) => why,
        }
    }
}

fn data() -> &'static Value {
    static DATA_JSON: OnceLock<Value> = OnceLock::new();
    DATA_JSON.get_or_init(|| serde_json::from_str(DATA).unwrap())
}

fn schema(key: &str) -> &'static Schema {
    static SCHEMAS: OnceLock<HashMap<String, Schema>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        let mut out = HashMap::new();
        for (key, sdl) in data()["schemas"].as_object().unwrap() {
            let sdl = sdl.as_str().unwrap();
            // graphql-js's harness declares `@onField` and (on the `next` branch) builds the
            // schema with @defer and @stream; here they come from `incremental_delivery`.
            let incremental = key == "harness-next" || key.starts_with("DeferStream");
            let schema = Schema::build(sdl)
                .incremental_delivery(incremental)
                .finish()
                .unwrap_or_else(|e| panic!("schema {key}: {e}"));
            out.insert(key.clone(), schema);
        }
        out
    });
    &all[key]
}

/// The rules of this crate that cover a graphql-js rule (`None`: the @defer/@stream rules,
/// which run with [`validate`] on a schema that enables them).
fn rules_for(js_rule: &str) -> Option<&'static [Rule]> {
    Some(match js_rule {
        "ExecutableDefinitionsRule" => &[Rule::ExecutableDefinitions],
        "FieldsOnCorrectTypeRule" => &[Rule::FieldSelections],
        "FragmentsOnCompositeTypesRule" => &[Rule::FragmentsOnCompositeTypes],
        "KnownArgumentNamesRule" => &[Rule::ArgumentNames],
        "KnownDirectivesRule" => &[
            Rule::DirectivesAreDefined,
            Rule::DirectivesAreInValidLocations,
        ],
        "KnownFragmentNamesRule" => &[Rule::FragmentSpreadTargetDefined],
        "KnownTypeNamesRule" => &[
            Rule::FragmentSpreadTypeExistence,
            Rule::VariablesAreInputTypes,
        ],
        "LoneAnonymousOperationRule" => &[Rule::LoneAnonymousOperation],
        "NoFragmentCyclesRule" => &[Rule::FragmentSpreadsMustNotFormCycles],
        "NoUndefinedVariablesRule" => &[Rule::AllVariableUsesDefined],
        "NoUnusedFragmentsRule" => &[Rule::FragmentsMustBeUsed],
        "NoUnusedVariablesRule" => &[Rule::AllVariablesUsed],
        "OverlappingFieldsCanBeMergedRule" => &[Rule::FieldSelectionMerging],
        "PossibleFragmentSpreadsRule" => &[Rule::FragmentSpreadIsPossible],
        "ProvidedRequiredArgumentsRule" => &[Rule::RequiredArguments],
        "ScalarLeafsRule" => &[Rule::LeafFieldSelections],
        "SingleFieldSubscriptionsRule" => &[Rule::SubscriptionSingleRootField],
        "UniqueArgumentNamesRule" => &[Rule::ArgumentUniqueness],
        "UniqueDirectivesPerLocationRule" => &[Rule::DirectivesAreUniquePerLocation],
        "UniqueFragmentNamesRule" => &[Rule::FragmentNameUniqueness],
        "UniqueInputFieldNamesRule" => &[Rule::InputObjectFieldUniqueness],
        "UniqueOperationNamesRule" => &[Rule::OperationNameUniqueness],
        "UniqueVariableNamesRule" => &[Rule::VariableUniqueness],
        "ValuesOfCorrectTypeRule" => &[
            Rule::ValuesOfCorrectType,
            Rule::InputObjectFieldNames,
            Rule::InputObjectRequiredFields,
        ],
        "VariablesAreInputTypesRule" => &[Rule::VariablesAreInputTypes],
        "VariablesInAllowedPositionRule" => &[Rule::AllVariableUsagesAreAllowed],
        _ => return None,
    })
}

/// The messages of the @defer/@stream rules (graphql-js 17), to pick them out of
/// [`validate`]'s errors.
fn is_incremental_message(m: &str) -> bool {
    [
        "Defer directive ",
        "Stream directive ",
        "Directive \"@stream\" cannot be used on non-list field",
        "Argument \"@defer(label:)\"",
        "Argument \"@stream(label:)\"",
        "Value for arguments \"defer(label:)\"",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

type Found = Vec<(String, Vec<(u64, u64)>)>;

fn expected(case: &Value) -> Found {
    let mut out: Found = case["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let locations = e["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l[0].as_u64().unwrap(), l[1].as_u64().unwrap()))
                .collect();
            (e["message"].as_str().unwrap().to_owned(), locations)
        })
        .collect();
    out.sort();
    out
}

fn found(errors: Vec<GraphQLError>) -> Found {
    let mut out: Found = errors
        .into_iter()
        .map(|e| {
            let locations = e
                .locations
                .iter()
                .map(|l| (u64::from(l.line), u64::from(l.column)))
                .collect();
            (e.message, locations)
        })
        .collect();
    out.sort();
    out
}

/// Runs one case: `Err` with the parse error when the document does not parse.
fn run(case: &Value) -> Result<Found, GraphQLError> {
    let js_rule = case["rule"].as_str().unwrap();
    let source = case["document"].as_str().unwrap();
    let schema = schema(case["schema"].as_str().unwrap());
    if js_rule == "ExecutableDefinitionsRule" {
        // graphql-parser reads no type definitions in a query: `Document::parse` reports the
        // first as this rule's error, `Document::non_executable_definitions` every one.
        return Ok(match Document::parse(source) {
            Ok(doc) => found(validate_with(schema, &doc, &[Rule::ExecutableDefinitions])),
            Err(_) => found(Document::non_executable_definitions(source)),
        });
    }
    let doc = Document::parse(source)?;
    Ok(match rules_for(js_rule) {
        Some(rules) => found(validate_with(schema, &doc, rules)),
        None => found(
            validate(schema, &doc)
                .into_iter()
                .filter(|e| is_incremental_message(&e.message))
                .collect(),
        ),
    })
}

#[test]
fn graphql_js_validation_cases() {
    let differences: HashMap<&str, Difference> = DIFFERENCES.iter().copied().collect();
    let cases = data()["cases"].as_array().unwrap();
    let (mut exact, mut known) = (0, 0);
    let mut failures = Vec::new();
    for case in cases {
        let id = case["source"].as_str().unwrap();
        let want = expected(case);
        let got = run(case);
        let difference = differences.get(id).copied();
        let verdict = match (&got, difference) {
            (Ok(got), None) if *got == want => Ok(()),
            (Ok(got), None) => Err(format!("differs from graphql-js: got {got:?}")),
            (Ok(got), Some(_)) if *got == want => {
                Err("matches graphql-js now: remove it from DIFFERENCES".to_owned())
            }
            (Err(_), Some(Difference::Unparsable(_))) => Ok(()),
            (Err(e), _) => Err(format!("does not parse: {}", e.message)),
            (Ok(_), Some(Difference::Unparsable(_))) => {
                Err("parses now: check it and update DIFFERENCES".to_owned())
            }
            (Ok(got), Some(Difference::Extra(text, _))) => {
                let rest: Found = got
                    .iter()
                    .filter(|(m, _)| !m.contains(text))
                    .cloned()
                    .collect();
                if rest == want && rest.len() < got.len() {
                    Ok(())
                } else {
                    Err(format!("differs beyond the extra errors: got {got:?}"))
                }
            }
        };
        match verdict {
            Ok(()) if difference.is_some() => known += 1,
            Ok(()) => exact += 1,
            Err(why) => failures.push(format!(
                "{id} ({}): {why}{}\n  document: {}\n  graphql-js: {want:?}",
                case["rule"].as_str().unwrap(),
                difference.map_or(String::new(), |d| format!(" (listed: {})", d.reason())),
                case["document"].as_str().unwrap()
            )),
        }
    }
    let listed_but_absent: Vec<_> = DIFFERENCES
        .iter()
        .filter(|(id, _)| !cases.iter().any(|c| c["source"] == *id))
        .collect();
    assert!(
        listed_but_absent.is_empty(),
        "DIFFERENCES names cases that do not exist: {listed_but_absent:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases fail ({exact} exact, {known} known differences):\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    eprintln!(
        "{} graphql-js cases: {exact} exactly as graphql-js, {known} with a known difference",
        cases.len()
    );
}

/// Cases where this crate still differs from graphql-js, by `source`, with the reason.
const DIFFERENCES: &[(&str, Difference)] = &[
    (
        "KnownDirectivesRule-test.ts:134",
        Difference::Unparsable("directives on variable definitions: graphql-parser 0.4 has none"),
    ),
    (
        "KnownDirectivesRule-test.ts:159",
        Difference::Unparsable("directives on variable definitions: graphql-parser 0.4 has none"),
    ),
    (
        "UniqueDirectivesPerLocationRule-test.ts:95",
        Difference::Unparsable(
            "type-system definitions in a query document: Document::parse refuses them (5.1.1)",
        ),
    ),
    (
        "ValuesOfCorrectTypeRule-test.ts:261",
        Difference::Unparsable("an integer beyond i64: graphql-parser 0.4 refuses it"),
    ),
    (
        "KnownTypeNamesRule-test.ts:36",
        Difference::Extra(
            "cannot be non-input type",
            "variable types are known and input types in one rule here (5.8.2, as the spec \
             has it), so the known but non-input `__EnumValue` is reported where graphql-js's \
             KnownTypeNames alone is silent",
        ),
    ),
    (
        "VariablesAreInputTypesRule-test.ts:16",
        Difference::Extra(
            "Unknown type",
            "unknown variable types are reported by 5.8.2 here; graphql-js reports them in \
             KnownTypeNames",
        ),
    ),
    (
        "DeferStreamDirectiveOnRootFieldRule-test.ts:123",
        Difference::Extra(
            "not supported on subscription operations",
            "the @defer/@stream rules run together here (with `validate`), so the \
             subscription-operation rule reports too",
        ),
    ),
    (
        "DeferStreamDirectiveOnRootFieldRule-test.ts:141",
        Difference::Extra(
            "not supported on subscription operations",
            "the @defer/@stream rules run together here",
        ),
    ),
    (
        "DeferStreamDirectiveOnRootFieldRule-test.ts:159",
        Difference::Extra(
            "not supported on subscription operations",
            "the @defer/@stream rules run together here",
        ),
    ),
    (
        "DeferStreamDirectiveOnRootFieldRule-test.ts:225",
        Difference::Extra(
            "not supported on subscription operations",
            "the @defer/@stream rules run together here",
        ),
    ),
    (
        "DeferStreamDirectiveOnRootFieldRule-test.ts:240",
        Difference::Extra(
            "not supported on subscription operations",
            "the @defer/@stream rules run together here",
        ),
    ),
];
