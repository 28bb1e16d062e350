//! Validation of executable documents against a schema (spec section 5, September 2025).
//!
//! Each of the spec's 30 rules is its own function (see [`Rule`]); [`validate`] runs them
//! all, [`validate_with`] a chosen subset. The rules work on graphql-parser's AST; the
//! information that AST loses is worked around here where possible (see the crate README).

mod duplicate_keys;
mod incremental;
mod limits;
mod positions;
mod rules;
mod suggestions;

use std::collections::HashMap;

use graphql_parser::query::{
    Definition, Directive, FragmentDefinition, OperationDefinition, Selection, SelectionSet,
    Type as AstType, VariableDefinition,
};

use crate::document::Document;
use crate::error::Location;
use crate::response::GraphQLError;
use crate::schema::{Schema, SchemaInner};
use crate::types::{TypeId, TypeRef};

/// The validation rules of the GraphQL specification, September 2025 edition, section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// 5.1.1 Executable Definitions.
    ExecutableDefinitions,
    /// 5.2.1.1 Operation Type Existence.
    OperationTypeExistence,
    /// 5.2.2.1 Operation Name Uniqueness.
    OperationNameUniqueness,
    /// 5.2.3.1 Lone Anonymous Operation.
    LoneAnonymousOperation,
    /// 5.2.4.1 Single Root Field (subscriptions).
    SubscriptionSingleRootField,
    /// 5.3.1 Field Selections.
    FieldSelections,
    /// 5.3.2 Field Selection Merging.
    FieldSelectionMerging,
    /// 5.3.3 Leaf Field Selections.
    LeafFieldSelections,
    /// 5.4.1 Argument Names.
    ArgumentNames,
    /// 5.4.2 Argument Uniqueness.
    ArgumentUniqueness,
    /// 5.4.2.1 Required Arguments.
    RequiredArguments,
    /// 5.5.1.1 Fragment Name Uniqueness.
    FragmentNameUniqueness,
    /// 5.5.1.2 Fragment Spread Type Existence.
    FragmentSpreadTypeExistence,
    /// 5.5.1.3 Fragments on Object, Interface or Union Types.
    FragmentsOnCompositeTypes,
    /// 5.5.1.4 Fragments Must Be Used.
    FragmentsMustBeUsed,
    /// 5.5.2.1 Fragment Spread Target Defined.
    FragmentSpreadTargetDefined,
    /// 5.5.2.2 Fragment Spreads Must Not Form Cycles.
    FragmentSpreadsMustNotFormCycles,
    /// 5.5.2.3 Fragment Spread Is Possible.
    FragmentSpreadIsPossible,
    /// 5.6.1 Values of Correct Type.
    ValuesOfCorrectType,
    /// 5.6.2 Input Object Field Names.
    InputObjectFieldNames,
    /// 5.6.3 Input Object Field Uniqueness.
    InputObjectFieldUniqueness,
    /// 5.6.4 Input Object Required Fields.
    InputObjectRequiredFields,
    /// 5.7.1 Directives Are Defined.
    DirectivesAreDefined,
    /// 5.7.2 Directives Are in Valid Locations.
    DirectivesAreInValidLocations,
    /// 5.7.3 Directives Are Unique per Location.
    DirectivesAreUniquePerLocation,
    /// 5.8.1 Variable Uniqueness.
    VariableUniqueness,
    /// 5.8.2 Variables Are Input Types.
    VariablesAreInputTypes,
    /// 5.8.3 All Variable Uses Defined.
    AllVariableUsesDefined,
    /// 5.8.4 All Variables Used.
    AllVariablesUsed,
    /// 5.8.5 All Variable Usages Are Allowed.
    AllVariableUsagesAreAllowed,
}

impl Rule {
    /// Every rule, in the spec's order.
    pub const ALL: [Rule; 30] = [
        Rule::ExecutableDefinitions,
        Rule::OperationTypeExistence,
        Rule::OperationNameUniqueness,
        Rule::LoneAnonymousOperation,
        Rule::SubscriptionSingleRootField,
        Rule::FieldSelections,
        Rule::FieldSelectionMerging,
        Rule::LeafFieldSelections,
        Rule::ArgumentNames,
        Rule::ArgumentUniqueness,
        Rule::RequiredArguments,
        Rule::FragmentNameUniqueness,
        Rule::FragmentSpreadTypeExistence,
        Rule::FragmentsOnCompositeTypes,
        Rule::FragmentsMustBeUsed,
        Rule::FragmentSpreadTargetDefined,
        Rule::FragmentSpreadsMustNotFormCycles,
        Rule::FragmentSpreadIsPossible,
        Rule::ValuesOfCorrectType,
        Rule::InputObjectFieldNames,
        Rule::InputObjectFieldUniqueness,
        Rule::InputObjectRequiredFields,
        Rule::DirectivesAreDefined,
        Rule::DirectivesAreInValidLocations,
        Rule::DirectivesAreUniquePerLocation,
        Rule::VariableUniqueness,
        Rule::VariablesAreInputTypes,
        Rule::AllVariableUsesDefined,
        Rule::AllVariablesUsed,
        Rule::AllVariableUsagesAreAllowed,
    ];

    fn run(self, cx: &mut Cx<'_, '_>) {
        use rules::*;
        match self {
            Rule::ExecutableDefinitions => executable_definitions(cx),
            Rule::OperationTypeExistence => operation_type_existence(cx),
            Rule::OperationNameUniqueness => operation_name_uniqueness(cx),
            Rule::LoneAnonymousOperation => lone_anonymous_operation(cx),
            Rule::SubscriptionSingleRootField => subscription_single_root_field(cx),
            Rule::FieldSelections => field_selections(cx),
            Rule::FieldSelectionMerging => field_selection_merging(cx),
            Rule::LeafFieldSelections => leaf_field_selections(cx),
            Rule::ArgumentNames => argument_names(cx),
            Rule::ArgumentUniqueness => argument_uniqueness(cx),
            Rule::RequiredArguments => required_arguments(cx),
            Rule::FragmentNameUniqueness => fragment_name_uniqueness(cx),
            Rule::FragmentSpreadTypeExistence => fragment_spread_type_existence(cx),
            Rule::FragmentsOnCompositeTypes => fragments_on_composite_types(cx),
            Rule::FragmentsMustBeUsed => fragments_must_be_used(cx),
            Rule::FragmentSpreadTargetDefined => fragment_spread_target_defined(cx),
            Rule::FragmentSpreadsMustNotFormCycles => fragment_spreads_must_not_form_cycles(cx),
            Rule::FragmentSpreadIsPossible => fragment_spread_is_possible(cx),
            Rule::ValuesOfCorrectType => values_of_correct_type(cx),
            Rule::InputObjectFieldNames => input_object_field_names(cx),
            Rule::InputObjectFieldUniqueness => input_object_field_uniqueness(cx),
            Rule::InputObjectRequiredFields => input_object_required_fields(cx),
            Rule::DirectivesAreDefined => directives_are_defined(cx),
            Rule::DirectivesAreInValidLocations => directives_are_in_valid_locations(cx),
            Rule::DirectivesAreUniquePerLocation => directives_are_unique_per_location(cx),
            Rule::VariableUniqueness => variable_uniqueness(cx),
            Rule::VariablesAreInputTypes => variables_are_input_types(cx),
            Rule::AllVariableUsesDefined => all_variable_uses_defined(cx),
            Rule::AllVariablesUsed => all_variables_used(cx),
            Rule::AllVariableUsagesAreAllowed => all_variable_usages_are_allowed(cx),
        }
    }
}

/// Validates `document` against `schema` with every rule of the spec.
///
/// On a schema with [`incremental_delivery`](crate::SchemaBuilder::incremental_delivery),
/// the rules of `@defer` and `@stream` run too (not on root mutation and subscription
/// fields nor in subscriptions, static unique labels, `@stream` only on lists).
pub fn validate(schema: &Schema, document: &Document<'_>) -> Vec<GraphQLError> {
    let mut cx = Cx::new(&schema.inner, document);
    for rule in Rule::ALL {
        rule.run(&mut cx);
    }
    if schema.inner.incremental_delivery {
        incremental::check(&mut cx);
    }
    cx.errors
}

/// Validates with the given rules only.
pub fn validate_with(
    schema: &Schema,
    document: &Document<'_>,
    rules: &[Rule],
) -> Vec<GraphQLError> {
    let mut cx = Cx::new(&schema.inner, document);
    for rule in rules {
        rule.run(&mut cx);
    }
    cx.errors
}

type Frag<'d, 'a> = &'d FragmentDefinition<'a, &'a str>;

/// An operation seen uniformly.
pub(crate) struct Op<'d, 'a> {
    pub(crate) kind: OpKind,
    pub(crate) name: Option<&'a str>,
    pub(crate) position: graphql_parser::Pos,
    pub(crate) variables: &'d [VariableDefinition<'a, &'a str>],
    pub(crate) directives: &'d [Directive<'a, &'a str>],
    pub(crate) selection_set: &'d SelectionSet<'a, &'a str>,
}

/// The three operation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Query,
    Mutation,
    Subscription,
}

impl OpKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OpKind::Query => "query",
            OpKind::Mutation => "mutation",
            OpKind::Subscription => "subscription",
        }
    }
}

pub(crate) fn op_of<'d, 'a>(def: &'d OperationDefinition<'a, &'a str>) -> Op<'d, 'a> {
    match def {
        OperationDefinition::SelectionSet(s) => Op {
            kind: OpKind::Query,
            name: None,
            position: s.span.0,
            variables: &[],
            directives: &[],
            selection_set: s,
        },
        OperationDefinition::Query(q) => Op {
            kind: OpKind::Query,
            name: q.name,
            position: q.position,
            variables: &q.variable_definitions,
            directives: &q.directives,
            selection_set: &q.selection_set,
        },
        OperationDefinition::Mutation(q) => Op {
            kind: OpKind::Mutation,
            name: q.name,
            position: q.position,
            variables: &q.variable_definitions,
            directives: &q.directives,
            selection_set: &q.selection_set,
        },
        OperationDefinition::Subscription(q) => Op {
            kind: OpKind::Subscription,
            name: q.name,
            position: q.position,
            variables: &q.variable_definitions,
            directives: &q.directives,
            selection_set: &q.selection_set,
        },
    }
}

/// The validation context: the schema, the document, and indexes built once.
pub(crate) struct Cx<'d, 'a> {
    pub(crate) schema: &'d SchemaInner,
    pub(crate) doc: &'d Document<'a>,
    pub(crate) ops: Vec<Op<'d, 'a>>,
    /// First definition of each fragment name.
    pub(crate) fragments: HashMap<&'a str, Frag<'d, 'a>>,
    /// Every selection set of the document (operations and fragment definitions, spreads not
    /// followed) with the type it selects on (`None` when that type is unknown).
    pub(crate) sets: Vec<(Option<TypeId>, &'d SelectionSet<'a, &'a str>)>,
    pub(crate) errors: Vec<GraphQLError>,
    cache: rules::Cache<'d, 'a>,
}

impl<'d, 'a> Cx<'d, 'a> {
    fn new(schema: &'d SchemaInner, doc: &'d Document<'a>) -> Self {
        let mut ops = Vec::new();
        let mut fragments = HashMap::new();
        for def in &doc.ast.definitions {
            match def {
                Definition::Operation(op) => ops.push(op_of(op)),
                Definition::Fragment(f) => {
                    fragments.entry(f.name).or_insert(f);
                }
            }
        }
        let mut cx = Cx {
            schema,
            doc,
            ops,
            fragments,
            sets: Vec::new(),
            errors: Vec::new(),
            cache: rules::Cache::default(),
        };
        let mut sets = Vec::new();
        for op in &cx.ops {
            let root = cx.root_type(op.kind);
            cx.collect_sets(root, op.selection_set, &mut sets);
        }
        for def in &doc.ast.definitions {
            if let Definition::Fragment(f) = def {
                let graphql_parser::query::TypeCondition::On(on) = &f.type_condition;
                let ty = schema.type_index.get(*on).copied();
                cx.collect_sets(ty, &f.selection_set, &mut sets);
            }
        }
        cx.sets = sets;
        cx
    }

    pub(crate) fn root_type(&self, kind: OpKind) -> Option<TypeId> {
        match kind {
            OpKind::Query => Some(self.schema.query),
            OpKind::Mutation => self.schema.mutation,
            OpKind::Subscription => self.schema.subscription,
        }
    }

    /// Every selection set as graphql-js visits them: definitions in document order, each
    /// set before the sets inside it. (Rules whose reports depend on what was compared
    /// before, like 5.3.2, walk in this order to report what graphql-js reports.)
    pub(crate) fn sets_in_document_order(
        &self,
    ) -> Vec<(Option<TypeId>, &'d SelectionSet<'a, &'a str>)> {
        let mut out = Vec::new();
        for def in &self.doc.ast.definitions {
            match def {
                Definition::Operation(op) => {
                    let op = op_of(op);
                    self.collect_sets(self.root_type(op.kind), op.selection_set, &mut out);
                }
                Definition::Fragment(f) => {
                    let graphql_parser::query::TypeCondition::On(on) = &f.type_condition;
                    let ty = self.schema.type_index.get(*on).copied();
                    self.collect_sets(ty, &f.selection_set, &mut out);
                }
            }
        }
        out
    }

    fn collect_sets(
        &self,
        parent: Option<TypeId>,
        set: &'d SelectionSet<'a, &'a str>,
        out: &mut Vec<(Option<TypeId>, &'d SelectionSet<'a, &'a str>)>,
    ) {
        out.push((parent, set));
        for sel in &set.items {
            match sel {
                Selection::Field(f) => {
                    if !f.selection_set.items.is_empty() {
                        let ty = parent
                            .and_then(|p| self.schema.field(p, f.name))
                            .map(|d| d.ty.named());
                        self.collect_sets(ty, &f.selection_set, out);
                    }
                }
                Selection::InlineFragment(i) => {
                    let ty = match &i.type_condition {
                        Some(graphql_parser::query::TypeCondition::On(on)) => {
                            self.schema.type_index.get(*on).copied()
                        }
                        None => parent,
                    };
                    self.collect_sets(ty, &i.selection_set, out);
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }

    pub(crate) fn error(&mut self, message: String, positions: &[graphql_parser::Pos]) {
        self.errors.push(GraphQLError::new(
            message,
            positions.iter().map(|p| Location::from_pos(*p)).collect(),
        ));
    }

    /// A type of the document as the schema's type reference (`None` if a name is unknown).
    pub(crate) fn type_ref(&self, ty: &AstType<'a, &'a str>) -> Option<TypeRef> {
        Some(match ty {
            AstType::NamedType(n) => TypeRef::Named(*self.schema.type_index.get(*n)?),
            AstType::ListType(inner) => TypeRef::List(Box::new(self.type_ref(inner)?)),
            AstType::NonNullType(inner) => TypeRef::NonNull(Box::new(self.type_ref(inner)?)),
        })
    }
}

/// The named type at the bottom of a document type.
pub(crate) fn ast_named<'a>(ty: &AstType<'a, &'a str>) -> &'a str {
    match ty {
        AstType::NamedType(n) => n,
        AstType::ListType(inner) | AstType::NonNullType(inner) => ast_named(inner),
    }
}
