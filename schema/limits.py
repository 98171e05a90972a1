"""What a GraphQL document may cost, checked before validation in time linear in its size.

A document is refused before any work that grows faster than its text:

- its length in characters and its lexical tokens (graphql-core's parser stops at the limits,
  so a megabyte of text is never parsed into a tree);
- its depth, its aliases and its cost, measured in one pass over the document in which each
  fragment is measured once, whatever the number of places that spread it. A document whose
  fragments spread each other twice per level (`...F1 ...F1` down twenty levels) is measured
  in as many steps as it has fragments, where a walk that follows every spread takes 2^20.

The cost is an upper bound of the objects and values a query can return, as GitHub and Shopify
publish theirs: every field counts one, and a field that returns many counts its children that
many times: a connection its `first`/`last` (the default page size when neither is given, the
maximum page size when it comes from a variable), `nodes(ids:)` the ids given, and any other
list a fixed estimate (`UNPAGED_LIST_ESTIMATE`). Introspection (`__schema`, `__type`) costs 1:
it reads the schema in memory, whose size is fixed (GraphiQL's own introspection query would
cost ~52,000 counted as data). `@skip`/`@include` are not read: what a document may select is
counted.

Depth counts as graphql-depth-limit does (and strawberry's depth rule did): the root fields are
at depth 0, `{ viewer { id } }` has depth 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    VariableNode,
    get_named_type,
    get_nullable_type,
    parse,
)
from graphql.error import GraphQLSyntaxError
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef

# The children of a list field with no page arguments (a user's memberships, an account's
# promotions, the plan catalog) count this many times.
UNPAGED_LIST_ESTIMATE = 10
# Measures stop growing here: far above any limit, and arithmetic stays small.
_CEILING = 10**15


@dataclass(frozen=True)
class QueryLimits:
    """The limits a document is checked against (settings `GATEWAY_GRAPHQL_MAX_*`)."""

    max_length: int = 65_536
    max_tokens: int = 3_000
    max_depth: int = 15
    max_aliases: int = 100
    max_cost: int = 50_000
    default_page_size: int = 50
    max_page_size: int = 100


def limit_error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def check_length(query: str, limits: QueryLimits) -> None:
    """`QUERY_TOO_LARGE` for a text past the length limit: checked before any work on it
    (hashing it included)."""
    if len(query) > limits.max_length:
        raise limit_error(
            "QUERY_TOO_LARGE",
            f"The query has {len(query)} characters; at most {limits.max_length} are accepted",
        )


def parse_limited(query: str | Source, limits: QueryLimits) -> DocumentNode:
    """The document of a query text within the length and token limits; a GraphQLError with
    `QUERY_TOO_LARGE` past them, graphql-core's syntax error for a text that does not parse."""
    check_length(query.body if isinstance(query, Source) else query, limits)
    try:
        return parse(
            query,
            max_lexical_tokens=limits.max_tokens,
            max_comments=limits.max_tokens,
            max_source_length=limits.max_length,
        )
    except GraphQLSyntaxError as error:
        if "Parsing aborted" in error.message:  # graphql-core's words for its limits
            raise limit_error(
                "QUERY_TOO_LARGE",
                f"The query has more than {limits.max_tokens} tokens or comments; "
                "split it or use fragments",
            ) from None
        raise


@dataclass(frozen=True, slots=True)
class _Measure:
    depth: int = 0
    aliases: int = 0
    cost: int = 0


_NOTHING = _Measure()


class _Measurer:
    """One pass over a document's operations and fragments (each fragment measured once)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode, limits: QueryLimits):
        self.schema = schema
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.measured: dict[str, _Measure] = {}
        self.opened: set[str] = set()  # fragments being measured

    def fragment(self, name: str) -> _Measure:
        """A fragment's measure. Fragments are measured leaves first (an explicit stack, so a
        chain of a thousand fragments needs no recursion); a cycle, which validation refuses
        later, counts as nothing here."""
        found = self.measured.get(name)
        if found is not None:
            return found
        opened = self.opened
        if name in opened:
            return _NOTHING  # a cycle
        pending: list[str] = [name]
        while pending:
            current = pending[-1]
            definition = self.fragments.get(current)
            if definition is None or current in self.measured:
                self.measured.setdefault(current, _NOTHING)
                pending.pop()
                continue
            if current not in opened:
                opened.add(current)
                for spread in _spreads(definition.selection_set):
                    if spread not in self.measured and spread not in opened:
                        pending.append(spread)
                continue
            pending.pop()
            type_ = self.schema.get_type(definition.type_condition.name.value)
            self.measured[current] = self.selection_set(definition.selection_set, type_)
            opened.discard(current)
        return self.measured[name]

    def selection_set(self, selection_set: SelectionSetNode, type_: object) -> _Measure:
        depth = aliases = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = _field(self.schema, type_, selection.name.value)
                child = _NOTHING
                if selection.selection_set is not None:
                    child_type = get_named_type(definition.type) if definition else None
                    inner = self.selection_set(selection.selection_set, child_type)
                    child = _Measure(inner.depth + 1, inner.aliases, inner.cost)
                depth = max(depth, child.depth)
                aliases += child.aliases + (selection.alias is not None)
                if definition is SchemaMetaFieldDef or definition is TypeMetaFieldDef:
                    cost += 1  # introspection reads the schema in memory: as large as it is
                    continue
                times = self.multiplier(definition, selection, type_) if definition else 1
                cost += 1 + times * child.cost
            else:
                if isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    inner_type = self.schema.get_type(condition.name.value) if condition else type_
                    child = self.selection_set(selection.selection_set, inner_type)
                else:
                    assert isinstance(selection, FragmentSpreadNode)
                    child = self.fragment(selection.name.value)
                depth = max(depth, child.depth)
                aliases += child.aliases
                cost += child.cost
        return _Measure(min(depth, _CEILING), min(aliases, _CEILING), min(cost, _CEILING))

    def multiplier(self, definition: GraphQLField, node: FieldNode, parent: object) -> int:
        """How many times a field's children may be returned (module docstring)."""
        limits = self.limits
        arguments = {a.name.value: a.value for a in node.arguments or ()}
        declared = definition.args
        if "first" in declared or "last" in declared:
            sizes = [_page_size(arguments.get(name), limits) for name in ("first", "last")]
            given = [size for size in sizes if size is not None]
            return max(given) if given else limits.default_page_size
        if not isinstance(get_nullable_type(definition.type), GraphQLList):
            return 1
        if isinstance(parent, GraphQLObjectType) and "pageInfo" in parent.fields:
            return 1  # a connection's nodes or edges: its page was counted on the connection
        for name, value in arguments.items():
            argument = declared.get(name)  # one it does not declare is validation's to report
            if argument is not None and isinstance(get_nullable_type(argument.type), GraphQLList):
                if isinstance(value, ListValueNode):
                    return len(value.values)
                if isinstance(value, VariableNode):
                    return limits.max_page_size
        return UNPAGED_LIST_ESTIMATE


def _page_size(value: object, limits: QueryLimits) -> int | None:
    if isinstance(value, IntValueNode):  # the lexer's digits: int() takes any of them
        return max(0, min(int(value.value), limits.max_page_size))
    if isinstance(value, VariableNode):
        return limits.max_page_size
    return None  # null: as if not given


def _field(schema: GraphQLSchema, type_: object, name: str) -> GraphQLField | None:
    if name == "__typename":
        return TypeNameMetaFieldDef
    if name == "__schema":
        return SchemaMetaFieldDef
    if name == "__type":
        return TypeMetaFieldDef
    fields: dict[str, GraphQLField] | None = getattr(type_, "fields", None)
    return fields.get(name) if fields is not None else None


def _spreads(selection_set: SelectionSetNode) -> list[str]:
    """Names of the fragments spread anywhere inside a selection set."""
    found: list[str] = []
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                found.append(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode):
                if selection.selection_set is not None:
                    stack.append(selection.selection_set)
    return found


def check_document(
    schema: GraphQLSchema, document: DocumentNode, limits: QueryLimits
) -> list[GraphQLError]:
    """Errors for each limit an operation of the document exceeds (none: within them)."""
    measurer = _Measurer(schema, document, limits)
    errors: list[GraphQLError] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        root: GraphQLNamedType | None = schema.get_root_type(definition.operation)
        measure = measurer.selection_set(definition.selection_set, root)
        name = f"Operation '{definition.name.value}'" if definition.name else "The operation"
        if measure.depth > limits.max_depth:
            errors.append(
                limit_error(
                    "QUERY_TOO_DEEP",
                    f"{name} has depth {measure.depth}; the maximum is {limits.max_depth}",
                )
            )
        if measure.aliases > limits.max_aliases:
            errors.append(
                limit_error(
                    "TOO_MANY_ALIASES",
                    f"{name} has {measure.aliases} aliases; the maximum is {limits.max_aliases}",
                )
            )
        if measure.cost > limits.max_cost:
            errors.append(
                limit_error(
                    "QUERY_TOO_COMPLEX",
                    f"{name} may cost {measure.cost}; the maximum is {limits.max_cost} (every "
                    "field counts 1, times the page size of the connections above it)",
                )
            )
    return errors
