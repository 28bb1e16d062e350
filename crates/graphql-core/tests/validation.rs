#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! One test per validation rule of spec section 5 (September 2025), on the spec's example
//! schema (extended with a few fields), each rule run alone so a test sees only its rule.

use std::sync::OnceLock;

use graphql_core::{Document, Rule, Schema, validate, validate_with};

const SDL: &str = r#"
type Query {
  dog: Dog
  findDog(searchBy: FindDogInput): Dog
  findDogs(complex: ComplexInput, oneOf: OneOfInput): [Dog]
  booleanList(booleanListArg: [Boolean!]): Boolean
  arguments: Arguments
  human: Human
  pet: Pet
  catOrDog: CatOrDog
  dogOrHuman: DogOrHuman
  sentient: Sentient
}
type Mutation { mutateDog: Dog }
type Subscription { newMessage: Message disallowedSecondRootField: Boolean }
type Message { body: String sender: String }
enum DogCommand { SIT DOWN HEEL }
interface Sentient { name: String! }
interface Pet { name: String! }
type Dog implements Pet {
  name: String!
  nickname: String
  barkVolume: Int
  doesKnowCommand(dogCommand: DogCommand!): Boolean!
  isHouseTrained(atOtherHomes: Boolean): Boolean!
  owner: Human
}
type Alien implements Sentient { name: String! homePlanet: String }
type Human implements Sentient { name: String! pets: [Pet!] }
enum CatCommand { JUMP }
type Cat implements Pet {
  name: String!
  nickname: String
  doesKnowCommand(catCommand: CatCommand!): Boolean!
  meowVolume: Int
}
union CatOrDog = Cat | Dog
union DogOrHuman = Dog | Human
union HumanOrAlien = Human | Alien
input FindDogInput { name: String owner: String }
input ComplexInput { required: Int! optional: String nested: ComplexInput }
input OneOfInput @oneOf { a: String b: Int }
type Arguments {
  multipleRequirements(x: Int!, y: Int!): Int!
  booleanArgField(booleanArg: Boolean): Boolean
  floatArgField(floatArg: Float): Float
  intArgField(intArg: Int): Int
  nonNullBooleanArgField(nonNullBooleanArg: Boolean!): Boolean!
  booleanListArgField(booleanListArg: [Boolean]!): [Boolean]
  optionalNonNullBooleanArgField(optionalBooleanArg: Boolean! = false): Boolean!
}
directive @tag(name: String) repeatable on FIELD
"#;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::build(SDL).finish().unwrap())
}

fn messages(rule: Rule, doc: &str) -> Vec<String> {
    let doc = Document::parse(doc).unwrap_or_else(|e| panic!("parse: {e}"));
    validate_with(schema(), &doc, &[rule])
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

fn passes(rule: Rule, doc: &str) {
    let errors = messages(rule, doc);
    assert!(errors.is_empty(), "{rule:?} refused:\n{doc}\n{errors:#?}");
}

fn fails(rule: Rule, doc: &str, needle: &str) {
    let errors = messages(rule, doc);
    assert!(
        errors.iter().any(|e| e.contains(needle)),
        "{rule:?}: expected {needle:?} for\n{doc}\ngot {errors:#?}"
    );
}

#[test]
fn valid_document_passes_every_rule() {
    let doc = Document::parse(
        r#"
        query Q($cmd: DogCommand!, $withOwner: Boolean = true, $by: FindDogInput) {
          dog { ...dogFields owner @include(if: $withOwner) { name } }
          findDog(searchBy: $by) { name }
          catOrDog { __typename ... on Cat { meowVolume } ... on Dog { barkVolume } }
          pet { ... on Dog { doesKnowCommand(dogCommand: $cmd) } }
          findDogs(complex: {required: 1, nested: {required: 2}}, oneOf: {a: "x"}) { name @tag(name: "a") @tag(name: "b") }
        }
        fragment dogFields on Dog { name nickname }
        mutation M { mutateDog { name } }
        subscription S { newMessage { body } }
        "#,
    )
    .unwrap();
    let errors = validate(schema(), &doc);
    assert!(errors.is_empty(), "{errors:#?}");
}

// 5.1.1
#[test]
fn executable_definitions() {
    passes(Rule::ExecutableDefinitions, "{ dog { name } }");
    // graphql-parser cannot read type definitions in a query; Document::parse names the rule.
    let err = Document::parse("type Extra { a: Int }").unwrap_err();
    assert_eq!(err.message, "The \"Extra\" definition is not executable.");
    assert_eq!((err.locations[0].line, err.locations[0].column), (1, 1));
}

// 5.2.1.1
#[test]
fn operation_type_existence() {
    passes(
        Rule::OperationTypeExistence,
        "mutation { mutateDog { name } }",
    );
    let schema = Schema::build("type Query { a: Int }").finish().unwrap();
    let doc = Document::parse("mutation { a } subscription { a }").unwrap();
    let errors = validate_with(&schema, &doc, &[Rule::OperationTypeExistence]);
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].message,
        "The schema does not support mutation operations."
    );
    assert_eq!(
        errors[1].message,
        "The schema does not support subscription operations."
    );
}

// 5.2.2.1
#[test]
fn operation_name_uniqueness() {
    passes(
        Rule::OperationNameUniqueness,
        "query A { dog { name } } query B { dog { name } }",
    );
    fails(
        Rule::OperationNameUniqueness,
        "query A { dog { name } } mutation A { mutateDog { name } }",
        "There can be only one operation named \"A\".",
    );
}

// 5.2.3.1
#[test]
fn lone_anonymous_operation() {
    passes(Rule::LoneAnonymousOperation, "{ dog { name } }");
    fails(
        Rule::LoneAnonymousOperation,
        "{ dog { name } } query B { dog { name } }",
        "This anonymous operation must be the only defined operation.",
    );
}

// 5.2.4.1
#[test]
fn subscription_single_root_field() {
    passes(
        Rule::SubscriptionSingleRootField,
        "subscription S { ...f } fragment f on Subscription { newMessage { body } }",
    );
    fails(
        Rule::SubscriptionSingleRootField,
        "subscription S { newMessage { body } disallowedSecondRootField }",
        "Subscription \"S\" must select only one top level field.",
    );
    fails(
        Rule::SubscriptionSingleRootField,
        "subscription S { ...f } fragment f on Subscription { newMessage { body } disallowedSecondRootField }",
        "must select only one top level field",
    );
    fails(
        Rule::SubscriptionSingleRootField,
        "subscription S { __typename }",
        "must not select an introspection top level field",
    );
    fails(
        Rule::SubscriptionSingleRootField,
        "subscription S($b: Boolean!) { newMessage @include(if: $b) { body } }",
        "The @include directive cannot be used on the root fields of a subscription.",
    );
}

// 5.3.1
#[test]
fn field_selections() {
    passes(
        Rule::FieldSelections,
        "{ dog { name __typename } pet { name } catOrDog { __typename } __schema { queryType { name } } }",
    );
    fails(
        Rule::FieldSelections,
        "{ dog { meowVolume } }",
        "Cannot query field \"meowVolume\" on type \"Dog\".",
    );
    fails(
        Rule::FieldSelections,
        "{ pet { nickname } }",
        "Cannot query field \"nickname\" on type \"Pet\".",
    );
    fails(
        Rule::FieldSelections,
        "{ catOrDog { name } }",
        "Cannot query field \"name\" on type \"CatOrDog\".",
    );
    fails(
        Rule::FieldSelections,
        "{ dog { __schema { queryType { name } } } }",
        "\"__schema\" on type \"Dog\"",
    );
}

// 5.3.2
#[test]
fn field_selection_merging() {
    passes(
        Rule::FieldSelectionMerging,
        "{ dog { name name otherName: name doesKnowCommand(dogCommand: SIT) doesKnowCommand(dogCommand: SIT) } }",
    );
    // Different fields on mutually exclusive object types may share a response name...
    passes(
        Rule::FieldSelectionMerging,
        "{ pet { ... on Dog { volume: barkVolume } ... on Cat { volume: meowVolume } } }",
    );
    fails(
        Rule::FieldSelectionMerging,
        "{ dog { name: nickname name } }",
        "Fields \"name\" conflict because \"nickname\" and \"name\" are different fields.",
    );
    fails(
        Rule::FieldSelectionMerging,
        "{ dog { doesKnowCommand(dogCommand: SIT) doesKnowCommand(dogCommand: HEEL) } }",
        "conflict because they have differing arguments",
    );
    fails(
        Rule::FieldSelectionMerging,
        "query($c: DogCommand) { dog { doesKnowCommand(dogCommand: SIT) doesKnowCommand(dogCommand: $c) } }",
        "differing arguments",
    );
    // ...but not if their shapes differ.
    fails(
        Rule::FieldSelectionMerging,
        "{ pet { ... on Dog { someValue: nickname } ... on Cat { someValue: meowVolume } } }",
        "Fields \"someValue\" conflict because they return conflicting types \"String\" and \"Int\".",
    );
    // Through fragments and in sub-selections: the pair of fields that holds the conflict
    // is named, with the subfields that conflict.
    fails(
        Rule::FieldSelectionMerging,
        "{ dog { ...a owner { n: name } } } fragment a on Dog { owner { n: __typename } }",
        "Fields \"owner\" conflict because subfields \"n\" conflict because \"name\" and \"__typename\" are different fields.",
    );
}

// 5.3.3
#[test]
fn leaf_field_selections() {
    passes(Rule::LeafFieldSelections, "{ dog { barkVolume } }");
    fails(
        Rule::LeafFieldSelections,
        "{ dog { barkVolume { sinceWhen } } }",
        "Field \"barkVolume\" must not have a selection since type \"Int\" has no subfields.",
    );
    fails(
        Rule::LeafFieldSelections,
        "{ human }",
        "Field \"human\" of type \"Human\" must have a selection of subfields.",
    );
    fails(
        Rule::LeafFieldSelections,
        "{ catOrDog }",
        "must have a selection of subfields",
    );
}

// 5.4.1
#[test]
fn argument_names() {
    passes(
        Rule::ArgumentNames,
        "{ dog { doesKnowCommand(dogCommand: SIT) @include(if: true) } }",
    );
    fails(
        Rule::ArgumentNames,
        "{ dog { doesKnowCommand(command: CLEAN_UP_HOUSE) } }",
        "Unknown argument \"command\" on field \"Dog.doesKnowCommand\".",
    );
    fails(
        Rule::ArgumentNames,
        "{ dog { name @include(unless: false) } }",
        "Unknown argument \"unless\" on directive \"@include\".",
    );
}

// 5.4.2
#[test]
fn argument_uniqueness() {
    passes(
        Rule::ArgumentUniqueness,
        "{ arguments { multipleRequirements(x: 1, y: 2) } }",
    );
    fails(
        Rule::ArgumentUniqueness,
        "{ arguments { multipleRequirements(x: 1, x: 2, y: 3) } }",
        "There can be only one argument named \"x\"",
    );
}

// 5.4.2.1
#[test]
fn required_arguments() {
    passes(
        Rule::RequiredArguments,
        "{ arguments { booleanArgField optionalNonNullBooleanArgField } }",
    );
    fails(
        Rule::RequiredArguments,
        "{ arguments { nonNullBooleanArgField } }",
        "Field \"nonNullBooleanArgField\" argument \"nonNullBooleanArg\" of type \"Boolean!\" is required, but it was not provided.",
    );
    fails(
        Rule::RequiredArguments,
        "{ arguments { nonNullBooleanArgField(nonNullBooleanArg: null) } }",
        "must not be null",
    );
    fails(
        Rule::RequiredArguments,
        "{ dog { name @skip } }",
        "Directive \"@skip\" argument \"if\" of type \"Boolean!\" is required, but it was not provided.",
    );
}

// 5.5.1.1
#[test]
fn fragment_name_uniqueness() {
    passes(
        Rule::FragmentNameUniqueness,
        "{ dog { ...a ...b } } fragment a on Dog { name } fragment b on Dog { name }",
    );
    fails(
        Rule::FragmentNameUniqueness,
        "{ dog { ...a } } fragment a on Dog { name } fragment a on Dog { nickname }",
        "There can be only one fragment named \"a\".",
    );
}

// 5.5.1.2
#[test]
fn fragment_spread_type_existence() {
    passes(
        Rule::FragmentSpreadTypeExistence,
        "{ dog { ... on Dog { name } ... { name } } }",
    );
    fails(
        Rule::FragmentSpreadTypeExistence,
        "{ dog { ...f } } fragment f on NotInSchema { name }",
        "Unknown type \"NotInSchema\".",
    );
    fails(
        Rule::FragmentSpreadTypeExistence,
        "{ dog { ... on NotInSchema { name } } }",
        "Unknown type \"NotInSchema\".",
    );
}

// 5.5.1.3
#[test]
fn fragments_on_composite_types() {
    passes(
        Rule::FragmentsOnCompositeTypes,
        "{ dog { ...f } } fragment f on Pet { name }",
    );
    fails(
        Rule::FragmentsOnCompositeTypes,
        "{ dog { ...f } } fragment f on Int { something }",
        "Fragment \"f\" cannot condition on non composite type \"Int\".",
    );
    fails(
        Rule::FragmentsOnCompositeTypes,
        "{ dog { ... on Boolean { somethingElse } } }",
        "Fragment cannot condition on non composite type \"Boolean\".",
    );
}

// 5.5.1.4
#[test]
fn fragments_must_be_used() {
    passes(
        Rule::FragmentsMustBeUsed,
        "{ dog { ...a } } fragment a on Dog { ...b } fragment b on Dog { name }",
    );
    fails(
        Rule::FragmentsMustBeUsed,
        "{ dog { name } } fragment unused on Dog { name }",
        "Fragment \"unused\" is never used.",
    );
}

// 5.5.2.1
#[test]
fn fragment_spread_target_defined() {
    passes(
        Rule::FragmentSpreadTargetDefined,
        "{ dog { ...a } } fragment a on Dog { name }",
    );
    fails(
        Rule::FragmentSpreadTargetDefined,
        "{ dog { ...undefinedFragment } }",
        "Unknown fragment \"undefinedFragment\".",
    );
}

// 5.5.2.2
#[test]
fn fragment_spreads_must_not_form_cycles() {
    passes(
        Rule::FragmentSpreadsMustNotFormCycles,
        "{ dog { ...a ...a } } fragment a on Dog { ...b } fragment b on Dog { name }",
    );
    fails(
        Rule::FragmentSpreadsMustNotFormCycles,
        "{ dog { ...a } } fragment a on Dog { ...a }",
        "Cannot spread fragment \"a\" within itself.",
    );
    let errors = messages(
        Rule::FragmentSpreadsMustNotFormCycles,
        "{ dog { ...nameFragment } }\nfragment nameFragment on Dog { name ...barkVolumeFragment }\nfragment barkVolumeFragment on Dog { barkVolume ...nameFragment }",
    );
    assert_eq!(errors.len(), 1, "one cycle, one error: {errors:#?}");
    assert!(
        errors[0].contains(
            "Cannot spread fragment \"nameFragment\" within itself via \"barkVolumeFragment\"."
        ),
        "{errors:#?}"
    );
}

// 5.5.2.3
#[test]
fn fragment_spread_is_possible() {
    passes(
        Rule::FragmentSpreadIsPossible,
        "{ dog { ... on Pet { name } ... on CatOrDog { __typename } } pet { ... on Dog { barkVolume } } catOrDog { ... on Pet { name } } }",
    );
    fails(
        Rule::FragmentSpreadIsPossible,
        "{ dog { ...catFragment } } fragment catFragment on Cat { meowVolume }",
        "Fragment \"catFragment\" cannot be spread here as objects of type \"Dog\" can never be of type \"Cat\".",
    );
    fails(
        Rule::FragmentSpreadIsPossible,
        "{ pet { ... on Human { name } } }",
        "objects of type \"Pet\" can never be of type \"Human\"",
    );
    fails(
        Rule::FragmentSpreadIsPossible,
        "{ sentient { ... on CatOrDog { __typename } } }",
        "\"Sentient\" can never be of type \"CatOrDog\"",
    );
}

// 5.6.1
#[test]
fn values_of_correct_type() {
    passes(
        Rule::ValuesOfCorrectType,
        "{ arguments { intArgField(intArg: 1) floatArgField(floatArg: 1) booleanListArgField(booleanListArg: true) } findDogs(oneOf: {b: 2}) { name } }",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ arguments { intArgField(intArg: 1.5) } }",
        "Int cannot represent non-integer value: 1.5 (at 1:35)",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ arguments { booleanArgField(booleanArg: \"true\") } }",
        "Boolean cannot represent a non boolean value: \"true\"",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ dog { doesKnowCommand(dogCommand: JUMP) } }",
        "Value \"JUMP\" does not exist in \"DogCommand\" enum.",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ findDog(searchBy: \"x\") { name } }",
        "Expected value of type \"FindDogInput\", found \"x\".",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ findDogs(complex: {required: null}) { name } }",
        "Expected value of type \"Int!\", found null. (at 1:32)",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ findDogs(oneOf: {a: \"x\", b: 1}) { name } }",
        "OneOf Input Object \"OneOfInput\" must specify exactly one key.",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "{ findDogs(oneOf: {a: null}) { name } }",
        "Field \"OneOfInput.a\" must be non-null.",
    );
    fails(
        Rule::ValuesOfCorrectType,
        "query($v: Int = \"one\") { arguments { intArgField(intArg: $v) } }",
        "Int cannot represent non-integer value: \"one\" (at 1:17)",
    );
}

// 5.6.2
#[test]
fn input_object_field_names() {
    passes(
        Rule::InputObjectFieldNames,
        "{ findDog(searchBy: { name: \"Fido\" }) { name } }",
    );
    fails(
        Rule::InputObjectFieldNames,
        "{ findDog(searchBy: { favoriteCookieFlavor: \"Bacon\" }) { name } }",
        "Field \"favoriteCookieFlavor\" is not defined by type \"FindDogInput\".",
    );
}

// 5.6.3
#[test]
fn input_object_field_uniqueness() {
    passes(
        Rule::InputObjectFieldUniqueness,
        "{ findDog(searchBy: { name: \"Fido\", owner: \"x\" }) { name: nickname name } }",
    );
    // One error per repeat, at the first occurrence and at the repeat.
    let doc =
        Document::parse("{\n  findDog(searchBy: { name: \"Fido\", name: \"Fido\" }) { name }\n}")
            .unwrap();
    let errors = validate_with(schema(), &doc, &[Rule::InputObjectFieldUniqueness]);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "There can be only one input field named \"name\"."
    );
    let at: Vec<_> = errors[0]
        .locations
        .iter()
        .map(|l| (l.line, l.column))
        .collect();
    assert_eq!(at, [(2, 23), (2, 37)]);
}

// 5.6.4
#[test]
fn input_object_required_fields() {
    passes(
        Rule::InputObjectRequiredFields,
        "{ findDogs(complex: {required: 1}) { name } }",
    );
    fails(
        Rule::InputObjectRequiredFields,
        "{ findDogs(complex: {optional: \"x\"}) { name } }",
        "Field \"ComplexInput.required\" of required type \"Int!\" was not provided.",
    );
    fails(
        Rule::InputObjectRequiredFields,
        "{ findDogs(complex: {required: 1, nested: {optional: \"y\"}}) { name } }",
        "ComplexInput.required",
    );
}

// 5.7.1
#[test]
fn directives_are_defined() {
    passes(
        Rule::DirectivesAreDefined,
        "{ dog { name @skip(if: false) @tag } }",
    );
    fails(
        Rule::DirectivesAreDefined,
        "{ dog { name @unknown } }",
        "Unknown directive \"@unknown\".",
    );
}

// 5.7.2
#[test]
fn directives_are_in_valid_locations() {
    passes(
        Rule::DirectivesAreInValidLocations,
        "{ dog { ... @include(if: true) { name } } }",
    );
    fails(
        Rule::DirectivesAreInValidLocations,
        "query @skip(if: true) { dog { name } }",
        "Directive \"@skip\" may not be used on QUERY.",
    );
    fails(
        Rule::DirectivesAreInValidLocations,
        "{ dog { name @deprecated } }",
        "Directive \"@deprecated\" may not be used on FIELD.",
    );
}

// 5.7.3
#[test]
fn directives_are_unique_per_location() {
    passes(
        Rule::DirectivesAreUniquePerLocation,
        "query($a: Boolean!) { dog { name @include(if: $a) @tag(name: \"x\") @tag(name: \"y\") } }",
    );
    fails(
        Rule::DirectivesAreUniquePerLocation,
        "query($a: Boolean!) { dog { name @skip(if: $a) @skip(if: $a) } }",
        "The directive \"@skip\" can only be used once at this location.",
    );
}

// 5.8.1
#[test]
fn variable_uniqueness() {
    passes(
        Rule::VariableUniqueness,
        "query A($a: Int) { dog { name } } query B($a: Int) { dog { name } }",
    );
    fails(
        Rule::VariableUniqueness,
        "query($a: Int, $a: String) { dog { name } }",
        "There can be only one variable named \"$a\".",
    );
}

// 5.8.2
#[test]
fn variables_are_input_types() {
    passes(
        Rule::VariablesAreInputTypes,
        "query($a: Boolean, $b: [Boolean!]!, $c: FindDogInput) { dog { name } }",
    );
    fails(
        Rule::VariablesAreInputTypes,
        "query($cat: Cat) { dog { name } }",
        "Variable \"$cat\" cannot be non-input type \"Cat\".",
    );
    fails(
        Rule::VariablesAreInputTypes,
        "query($p: [Pet!]) { dog { name } }",
        "cannot be non-input type \"[Pet!]\"",
    );
    fails(
        Rule::VariablesAreInputTypes,
        "query($x: Nope) { dog { name } }",
        "Unknown type \"Nope\".",
    );
}

// 5.8.3
#[test]
fn all_variable_uses_defined() {
    passes(
        Rule::AllVariableUsesDefined,
        "query Q($a: Boolean) { dog { ...f } } fragment f on Dog { isHouseTrained(atOtherHomes: $a) }",
    );
    fails(
        Rule::AllVariableUsesDefined,
        "query Q { dog { isHouseTrained(atOtherHomes: $atOtherHomes) } }",
        "Variable \"$atOtherHomes\" is not defined by operation \"Q\".",
    );
    fails(
        Rule::AllVariableUsesDefined,
        "query Q { dog { ...f } } fragment f on Dog { isHouseTrained(atOtherHomes: $x) }",
        "Variable \"$x\" is not defined by operation \"Q\".",
    );
    fails(
        Rule::AllVariableUsesDefined,
        "{ findDog(searchBy: {name: $n}) { name @include(if: $i) } }",
        "Variable \"$i\" is not defined.",
    );
}

// 5.8.4
#[test]
fn all_variables_used() {
    passes(
        Rule::AllVariablesUsed,
        "query Q($a: Boolean) { dog { ...f } } fragment f on Dog { isHouseTrained(atOtherHomes: $a) }",
    );
    fails(
        Rule::AllVariablesUsed,
        "query Q($atOtherHomes: Boolean) { dog { isHouseTrained } }",
        "Variable \"$atOtherHomes\" is never used in operation \"Q\".",
    );
}

// 5.8.5
#[test]
fn all_variable_usages_are_allowed() {
    passes(
        Rule::AllVariableUsagesAreAllowed,
        "query($b: Boolean!, $l: [Boolean!]!, $o: Boolean = true) { arguments { booleanArgField(booleanArg: $b) booleanListArgField(booleanListArg: $l) nonNullBooleanArgField(nonNullBooleanArg: $o) optionalNonNullBooleanArgField(optionalBooleanArg: $o) } }",
    );
    fails(
        Rule::AllVariableUsagesAreAllowed,
        "query($intArg: Int) { arguments { booleanArgField(booleanArg: $intArg) } }",
        "Variable \"$intArg\" of type \"Int\" used in position expecting type \"Boolean\".",
    );
    fails(
        Rule::AllVariableUsagesAreAllowed,
        "query($l: [Boolean]) { arguments { booleanArgField(booleanArg: $l) } }",
        "of type \"[Boolean]\" used in position expecting type \"Boolean\"",
    );
    fails(
        Rule::AllVariableUsagesAreAllowed,
        "query($b: Boolean) { arguments { nonNullBooleanArgField(nonNullBooleanArg: $b) } }",
        "of type \"Boolean\" used in position expecting type \"Boolean!\"",
    );
    fails(
        Rule::AllVariableUsagesAreAllowed,
        "query($b: Boolean) { booleanList(booleanListArg: [$b]) }",
        "expecting type \"Boolean!\"",
    );
    // A variable in a OneOf field must be non-null (IsNonNullPosition).
    fails(
        Rule::AllVariableUsagesAreAllowed,
        "query($s: String) { findDogs(oneOf: {a: $s}) { name } }",
        "Variable \"$s\" is of type \"String\" but must be non-nullable to be used for OneOf Input Object \"OneOfInput\".",
    );
    passes(
        Rule::AllVariableUsagesAreAllowed,
        "query($s: String!) { findDogs(oneOf: {a: $s}) { name } }",
    );
}

#[test]
fn rule_list_is_the_specs_thirty() {
    assert_eq!(Rule::ALL.len(), 30);
}

#[test]
fn syntax_errors_carry_their_location() {
    let err = Document::parse("{ dog { name }").unwrap_err();
    assert!(err.message.starts_with("Syntax Error:"), "{err:?}");
    assert_eq!(err.locations.len(), 1, "{err:?}");
}

#[test]
fn nesting_beyond_the_parser_cap_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "{ dog ".repeat(5_000), "}".repeat(5_000));
    let err = Document::parse(&deep).unwrap_err();
    assert!(
        err.message.contains("Recursion limit exceeded"),
        "{}",
        err.message
    );
}

/// Known directives and their locations in SDL documents (graphql-js's validateSDL rule).
#[test]
fn sdl_directives_are_known_and_well_placed() {
    use graphql_core::validate_sdl_directives;
    let schema = Schema::build("directive @tag on OBJECT | SCHEMA\ntype Query { a: String }")
        .finish()
        .unwrap();
    let sdl = "directive @local(reason: String @tag) on ENUM_VALUE\n\
               type A @tag { f(x: Int @deprecated): String @nope }\n\
               enum E { V @local W @tag }\n\
               extend schema @tag @local\n\
               extend schema @tag { mutation: A }\n\
               extend type A @tag";
    let errors = validate_sdl_directives(Some(&schema), sdl).unwrap();
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Directive \"@tag\" may not be used on ARGUMENT_DEFINITION.",
            "Unknown directive \"@nope\".",
            "Directive \"@tag\" may not be used on ENUM_VALUE.",
            "Directive \"@local\" may not be used on SCHEMA.",
        ],
        "{shown:?}"
    );
    let at = |i: usize| (errors[i].locations[0].line, errors[i].locations[0].column);
    assert_eq!(at(0), (1, 33));
    assert_eq!(at(1), (2, 45));
    assert_eq!(at(2), (3, 21));
    assert_eq!(at(3), (4, 20));
    // Without a schema only the built-ins (and the document's own) are known.
    let errors = validate_sdl_directives(None, "type A @tag { f: String @deprecated }").unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "Unknown directive \"@tag\".");
    // A syntax error is an error, not a panic.
    assert!(validate_sdl_directives(None, "type {").is_err());
}
