"""Compilation of a query operation into plans (plans.py): once per document and per value of
the variables its `@skip`/`@include` use, kept in a cache bounded by count and by the
characters of the documents' texts. Only what the compiler knows is compiled (module docstring
of plans.py); anything else raises `Unsupported` and runs on graphql-core's executor.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInputType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
)
from graphql.execution import Executor
from graphql.language import DirectiveNode, VariableNode, Visitor, visit
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar

from schema.declare import ahead_form, batch_form, by_id_form
from schema.engine.internals import (
    DEFINITION,
    CustomGraphQLEnumType,
    FieldDetailsList,
    LazyType,
    StrawberryMaybe,
    StrawberryOptional,
    coerce_argument,
    collect_subfields,
    field_exception_handlers,
    is_default_resolver,
    strawberry_schema_of,
)
from schema.engine.json_sql import JsonNodes
from schema.engine.plans import (
    ABSTRACT,
    ATTRIBUTE,
    LEAF,
    LIST,
    OBJECT,
    RESOLVER,
    TYPENAME,
    ArgumentRecipe,
    EnumNames,
    FieldPlan,
    GroupedFields,
    ObjectPlan,
    Unsupported,
    ValuePlan,
    generate_fields,
)
from schema.engine.prepared import source_digest, text_size
from schema.engine.projection import JsonChild, JsonField, JsonPageChild, json_nodes
from schema.engine.sized_cache import SizedCache

if TYPE_CHECKING:
    from strawberry.types.field import StrawberryField

PLAN_CACHE_SIZE = 256
# A plan keeps its operation, and with it the whole parsed document (~130 bytes per character
# of its text): plans are bounded by the characters of their documents' texts too.
PLAN_CACHE_CHARACTERS = 1 << 20


# (schema id, the document's sha256, operation name, directive variables' values) -> (schema,
# operation, plan): the document's identity is the one prepared documents and persisted queries
# use (prepared.py `DigestedSource`), so a document parsed again finds its plan. A document
# that was not prepared there is known by its operation's id instead. The objects are kept so
# that their ids stay theirs.
_PLANS: SizedCache[
    tuple[int, str | int, str | None, tuple[object, ...]],
    tuple[GraphQLSchema, OperationDefinitionNode, ObjectPlan | None],
] = SizedCache(PLAN_CACHE_SIZE, PLAN_CACHE_CHARACTERS)
_DIRECTIVE_VARIABLES: SizedCache[int, tuple[OperationDefinitionNode, tuple[str, ...]]] = SizedCache(
    PLAN_CACHE_SIZE, PLAN_CACHE_CHARACTERS
)


def _directive_variables(executor: Executor) -> tuple[str, ...]:
    """Variables that `@skip`/`@include` of the operation or its fragments depend on."""
    operation = executor.operation
    found = _DIRECTIVE_VARIABLES.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    result = directive_variables(operation, executor.fragment_definitions.values())
    _DIRECTIVE_VARIABLES.put(id(operation), (operation, result), text_size(operation))
    return result


def directive_variables(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> tuple[str, ...]:
    """The variables that directives of the operation or of its fragments take, sorted."""
    names: set[str] = set()

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: object) -> None:
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.add(argument.value.name.value)

    visit(operation, Directives())
    for fragment in fragments:
        visit(fragment, Directives())
    return tuple(sorted(names))


def plan_for(
    executor: Executor, root_type: GraphQLObjectType, grouped: GroupedFields
) -> ObjectPlan | None:
    """The compiled plan of the executor's operation, or None when it cannot be compiled."""
    operation: OperationDefinitionNode = executor.operation
    if operation.operation is not OperationType.QUERY:
        return None
    schema = executor.schema
    coerced = executor.variable_values.coerced
    signature = tuple(coerced.get(name) for name in _directive_variables(executor))
    digest = source_digest(operation)
    name = operation.name.value if operation.name else None
    key = (id(schema), digest or id(operation), name, signature)
    found = _PLANS.get(key)
    if found is not None and found[0] is schema and (digest or found[1] is operation):
        return found[2]
    plan: ObjectPlan | None
    try:
        plan = _Compiler(executor).object_plan(root_type, grouped)
    except Unsupported:
        plan = None
    _PLANS.put(key, (schema, operation, plan), text_size(operation))
    return plan


class _Compiler:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.schema = executor.schema
        strawberry_schema = strawberry_schema_of(self.schema)
        if strawberry_schema is None:
            raise Unsupported("not a strawberry schema")
        self.converter = strawberry_schema.schema_converter
        manager = executor.middleware_manager
        if manager is not None and manager.middlewares:
            raise Unsupported("resolve middleware")

    def object_plan(self, object_type: GraphQLObjectType, grouped: GroupedFields) -> ObjectPlan:
        plan = ObjectPlan(object_type)
        for key, details in grouped.items():
            plan.fields.append(self.field_plan(object_type, key, details))
        plan.execute = generate_fields(plan)
        return plan

    def field_plan(
        self, parent_type: GraphQLObjectType, key: str, details: FieldDetailsList
    ) -> FieldPlan:
        node = details[0].node
        name = node.name.value
        plan = FieldPlan(key, name, parent_type)
        plan.details = details
        plan.nodes = [d.node for d in details]
        if name == "__typename":
            plan.kind = TYPENAME
            return plan
        if any(d.fragment_variable_values is not None for d in details):
            raise Unsupported("fragment arguments")
        field_def = self.schema.get_field(parent_type, name)
        if field_def is None:
            raise Unsupported(f"unknown field {parent_type.name}.{name}")
        field = (field_def.extensions or {}).get(DEFINITION)
        if field is None:  # introspection (`__schema`, `__type`) and non-strawberry fields
            raise Unsupported(f"{parent_type.name}.{name} is not a strawberry field")
        if field.extensions or field_exception_handlers(self.converter, field):
            raise Unsupported(f"{parent_type.name}.{name} has field extensions or handlers")
        plan.field_def = field_def
        plan.strawberry_field = field
        resolver = field.base_resolver
        if resolver is None:
            if not is_default_resolver(field_def.resolve):
                raise Unsupported(f"{parent_type.name}.{name} has a custom resolve")
            if self.converter.config.default_resolver is not getattr:
                raise Unsupported("custom default resolver")
            plan.kind = ATTRIBUTE
            plan.python_name = field.python_name
        else:
            plan.kind = RESOLVER
            plan.wrapped = resolver.wrapped_func
            if not callable(plan.wrapped):
                raise Unsupported("uncallable resolver")
            plan.self_arg = resolver.self_parameter is not None
            plan.root_names = tuple(
                p.name for p in (resolver.parent_parameter, resolver.root_parameter) if p
            )
            plan.info_name = resolver.info_parameter.name if resolver.info_parameter else None
            plan.args = bool(field_def.args or node.arguments)
            if plan.args and all(_leaf(arg.type) for arg in field_def.args.values()):
                plan.converted = {}
                plan.arguments = self.arguments(field_def, node, field)
            plan.batch = batch_form(plan.wrapped)
            plan.by_id = by_id_form(plan.wrapped)
            plan.ahead = ahead_form(plan.wrapped)
        plan.value = value = self.value_plan(field_def.type, details)
        if plan.kind == RESOLVER:
            plan.json_nodes = _json_nodes(value)
        if value.kind == LEAF:
            plan.leaf = value.serialize
            plan.leaf_identity = (
                str if value.passthrough else (int if value.serialize is int else None)
            )
            if isinstance(value.type, CustomGraphQLEnumType):
                plan.leaf_enum = _enum_names(value.type)
        return plan

    def arguments(
        self, field_def: GraphQLField, node: FieldNode, field: StrawberryField
    ) -> ArgumentRecipe | None:
        """How to read a field's arguments when every one is a scalar that strawberry passes
        as it is (not an enum, a global id or a `Maybe`): a literal or a default is coerced
        here, once; a variable's value is the operation's coerced value. None (the general
        way, every request) for anything else, or a literal or default that fails (its error
        is reported there)."""
        names = self.converter.config.name_converter
        by_name = {names.from_argument(argument): argument for argument in field.arguments}
        given = {argument.name.value: argument for argument in node.arguments or ()}
        recipe: list[tuple[str, str | None, object, bool]] = []
        for name, arg_def in field_def.args.items():
            argument = by_name.get(name)
            if (
                argument is None
                or getattr(arg_def, "out_name", None)
                or not self.plain_scalar(argument.type)
            ):
                return None
            value_node = given[name].value if name in given else None
            if isinstance(value_node, VariableNode):
                required = isinstance(arg_def.type, GraphQLNonNull)
                recipe.append((argument.python_name, value_node.name.value, None, required))
                continue
            coerced: dict[str, object] = {}
            try:
                coerce_argument(coerced, node, name, arg_def, given.get(name), None, None)
            except GraphQLError:
                return None
            if name in coerced:
                recipe.append((argument.python_name, None, coerced[name], False))
        return tuple(recipe)

    def plain_scalar(self, type_: object) -> bool:
        """A scalar argument type that strawberry's `convert_argument` returns as it is."""
        if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
            type_ = type_.of_type
        return (
            type_ is not GlobalID
            and not isinstance(type_, StrawberryMaybe | LazyType)
            and is_scalar(type_, self.converter.scalar_registry)
        )

    def value_plan(self, type_: GraphQLOutputType, details: FieldDetailsList) -> ValuePlan:
        inner: GraphQLOutputType
        if isinstance(type_, GraphQLNonNull):
            nullable, inner = False, type_.of_type
        else:
            nullable, inner = True, type_
        if is_leaf_type(inner):
            plan = ValuePlan(LEAF, nullable, inner)
            plan.serialize = inner.coerce_output_value
            plan.passthrough = inner is GraphQLString or inner is GraphQLID
            return plan
        if is_list_type(inner):
            plan = ValuePlan(LIST, nullable, inner)
            plan.item = self.value_plan(inner.of_type, details)
            return plan
        if is_object_type(inner):
            plan = ValuePlan(OBJECT, nullable, inner)
            plan.objects = self.object_plan(inner, self.subfields(inner, details))
            return plan
        if is_abstract_type(inner):
            plan = ValuePlan(ABSTRACT, nullable, inner)
            plan.possible = (
                inner,
                {
                    possible.name: self.object_plan(possible, self.subfields(possible, details))
                    for possible in self.schema.get_possible_types(inner)
                },
            )
            return plan
        raise Unsupported(f"output type {inner}")

    def subfields(self, object_type: GraphQLObjectType, details: FieldDetailsList) -> GroupedFields:
        executor = self.executor
        collected = collect_subfields(
            self.schema,
            executor.fragments,
            executor.variable_values,
            executor.operation,
            object_type,
            details,
            executor.hide_suggestions,
        )
        grouped, new_defer_usages, _forbidden = collected
        if new_defer_usages:
            raise Unsupported("@defer")
        return grouped


def recipe_arguments(
    recipe: ArgumentRecipe, variables: dict[str, object]
) -> dict[str, object] | None:
    """A field's scalar arguments by its recipe (`_Compiler.arguments`), or None when a
    variable is missing or null for a non-null argument: the general way then applies the
    default or reports the error, as graphql-core does."""
    kwargs: dict[str, object] = {}
    for python_name, variable, value, required in recipe:
        if variable is not None:
            if variable not in variables:
                return None
            value = variables[variable]
            if value is None and required:
                return None
        kwargs[python_name] = value
    return kwargs


def _leaf(type_: GraphQLInputType) -> bool:
    """A scalar or enum argument, nullable or not (lists and input objects are not)."""
    return is_leaf_type(type_.of_type if isinstance(type_, GraphQLNonNull) else type_)


def _json_nodes(value: ValuePlan) -> JsonNodes | None:
    """A connection whose `nodes` (selected once, and no `edges`) are objects of plain columns
    only, of to-one objects of plain columns, or of connections of those (`_json_page`),
    which its page may read as JSON that PostgreSQL writes (projection.py): the nodes'
    response keys and attributes, or None."""
    found = _json_connection(value, pages=True)
    if found is None:
        return None
    _, type_name, fields = found
    return json_nodes(type_name, fields)


def _json_connection(
    value: ValuePlan, pages: bool
) -> tuple[tuple[tuple[str, str | None], ...], str, list[JsonField]] | None:
    """A connection's selection that may be JSON: its own fields ((response key, "nodes", or
    None for `__typename`; only with `pages`, a connection inside a node), its nodes' type
    name and their fields; or None."""
    if value.kind != OBJECT:
        return None
    nodes = None
    own: list[tuple[str, str | None]] = []
    for field in value.objects.fields:
        if field.field_name == "edges" or (field.field_name == "nodes" and nodes is not None):
            return None
        if field.field_name == "nodes":
            nodes = field
            own.append((field.key, "nodes"))
        elif field.kind == TYPENAME and not pages:
            own.append((field.key, None))
        elif not pages:  # pageInfo, totalCount: the objects
            return None
    if nodes is None or nodes.kind != ATTRIBUTE or nodes.value is None:
        return None
    items = nodes.value.item
    if nodes.value.kind != LIST or items is None or items.kind != OBJECT or items.nullable:
        return None
    fields = _json_fields(items.objects, objects=True, pages=pages)
    if fields is None:
        return None
    return tuple(own), items.objects.type.name, fields


def _json_fields(plan: ObjectPlan, objects: bool, pages: bool) -> list[JsonField] | None:
    """An object plan's fields as `JsonField`s: plain leaf attributes, `__typename` and, when
    `objects`, resolver fields of an object type without arguments (which the node type may
    have declared a plain join: projection.py decides), one level down, and when `pages`,
    connection fields given a literal `first` alone (`_json_page`); or None."""
    fields: list[JsonField] = []
    for field in plan.fields:
        if field.kind == TYPENAME:
            fields.append((field.key, None, "", True, None))
            continue
        value_plan = field.value
        if value_plan is None:
            return None
        if field.kind == RESOLVER and objects and value_plan.kind == OBJECT and not field.args:
            inner = _json_fields(value_plan.objects, objects=False, pages=False)
            if inner is None:
                return None
            child = JsonChild(field.field_name, value_plan.objects.type.name, tuple(inner))
            fields.append((field.key, child, "", value_plan.nullable, None))
            continue
        if field.kind == RESOLVER and pages and value_plan.kind == OBJECT:
            page = _json_page(field, value_plan)
            if page is None:
                return None
            fields.append((field.key, page, "", value_plan.nullable, None))
            continue
        if field.kind != ATTRIBUTE or value_plan.kind != LEAF:
            return None
        leaf_type = value_plan.type
        if not is_leaf_type(leaf_type):  # a LEAF plan's type always is
            return None
        leaf = leaf_type.name
        fields.append((field.key, field.python_name, leaf, value_plan.nullable, field.leaf_enum))
    return fields


def _json_page(field: FieldPlan, value: ValuePlan) -> JsonPageChild | None:
    """A connection field inside a node (`JsonPageChild`): given `first` as a literal and no
    other argument, its selection `nodes` (of plain columns or to-one objects) and
    `__typename` (which node type declared it a plain page: projection.py decides)."""
    limit = None
    for node in field.nodes:
        arguments = node.arguments or ()
        if len(arguments) != 1 or arguments[0].name.value != "first":
            return None
        literal = arguments[0].value
        if not isinstance(literal, IntValueNode):
            return None
        if limit is not None and int(literal.value) != limit:
            return None
        limit = int(literal.value)
    found = _json_connection(value, pages=False)
    if limit is None or found is None:
        return None
    own, node_type, nodes = found
    return JsonPageChild(
        field.field_name, limit, value.objects.type.name, own, node_type, tuple(nodes)
    )


def _enum_names(enum_type: CustomGraphQLEnumType) -> EnumNames:
    """What strawberry's `coerce_output_value` answers for each member of the enum (the name
    of the first GraphQL value equal to the member's), as a table."""
    names: dict[Enum, str] = {}
    members: list[Enum] = list(enum_type.wrapped_cls)
    for name, value in enum_type.values.items():
        for member in members:
            if member not in names and member.value == value.value:
                names[member] = name
    return enum_type.wrapped_cls, names
