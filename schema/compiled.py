"""Compiled execution of query operations: one plan per operation, run a level at a time.

graphql-core executes a query field by field: for every field of every object it builds a
`GraphQLResolveInfo` and a `Path`, coerces the arguments, calls the resolver through
strawberry's wrapper, checks the result for awaitables and completes it, with a coroutine and a
`gather` for every object that has an async field below it. A 20-member dashboard is ~700 such
fields, and that bookkeeping, not SQL, was most of its CPU.

Here an operation is compiled once (per document, and per value of the variables its
`@skip`/`@include` use) into a tree of plans that already knows, for every selected field, its
response key, whether it is a plain attribute or a resolver, and how to complete its type. A run
walks the source objects with that tree: plain attributes are read and serialized inline; a
resolver field's arguments and `Info` are built once per field *per request*, not per object;
the awaitables of a whole level are awaited with one `gather`, so a level's DataLoader keys still
go out in one batch. Semantics are graphql-core's: response keys in selection order (aliases,
fragments, `@include`/`@skip` as collected by graphql-core itself), leaf serialization by the
same scalar and enum types, a field error nulls the field or, for a non-null field, the nearest
nullable ancestor (up to `data: null`), errors carry message, locations and path.

Only what it knows is compiled: query operations whose every field is a strawberry field (no field
extensions, no exception handlers, no resolve middleware); introspection, mutations and anything
else run on the standard executor. `GATEWAY_GRAPHQL_EXECUTOR=verify` runs every query through both
and fails the request on any difference (the test suite runs that way).
"""

from __future__ import annotations

import asyncio
import inspect
import keyword
from collections.abc import Iterable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLID,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_object_type,
    located_error,
)
from graphql.execution.collect_fields import collect_subfields
from graphql.execution.executor import invalid_return_type_error
from graphql.execution.values import coerce_argument, get_argument_values
from graphql.language import DirectiveNode, VariableNode, Visitor, visit
from graphql.pyutils import Path, Undefined, is_iterable
from graphql.pyutils import inspect as describe
from orjson import Fragment
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryMaybe, StrawberryOptional
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.lazy_type import LazyType

from resolvers.pagination import JsonNodes
from schema.batch import batch_form
from schema.caches import SizedCache, text_size
from schema.projection import JsonField, json_nodes, offer_json_nodes

DEFINITION = "strawberry-definition"
PLAN_CACHE_SIZE = 256
# A plan keeps its operation, and with it the whole parsed document (~130 bytes per character
# of its text): plans are bounded by the characters of their documents' texts too.
PLAN_CACHE_CHARACTERS = 1 << 20

# Field kinds.
ATTRIBUTE, RESOLVER, TYPENAME = 0, 1, 2
# Value kinds.
LEAF, LIST, OBJECT, ABSTRACT = 0, 1, 2, 3


class Unsupported(Exception):
    """The operation uses something the compiler does not handle: use the standard executor."""


class ValuePlan:
    """How to complete a value of one output type (nullability included)."""

    __slots__ = ("item", "kind", "nullable", "objects", "passthrough", "serialize", "type")

    def __init__(self, kind: int, nullable: bool, type_: Any) -> None:
        self.kind = kind
        self.nullable = nullable
        self.type = type_
        self.serialize: Any = None
        self.passthrough = False  # String/ID: a str is its own serialization
        self.item: ValuePlan | None = None
        # OBJECT: the object's ObjectPlan; ABSTRACT: {type name: ObjectPlan}
        self.objects: Any = None


class FieldPlan:
    """One response key of an object: where its value comes from and how it is completed."""

    __slots__ = (
        "args",
        "arguments",
        "batch",
        "converted",
        "details",
        "field_def",
        "field_name",
        "info_name",
        "json_nodes",
        "key",
        "kind",
        "leaf",
        "leaf_enum",
        "leaf_identity",
        "nodes",
        "parent_type",
        "python_name",
        "root_names",
        "self_arg",
        "strawberry_field",
        "value",
        "wrapped",
    )

    def __init__(self, key: str, field_name: str, parent_type: GraphQLObjectType) -> None:
        self.key = key
        self.field_name = field_name
        self.parent_type = parent_type
        self.kind = ATTRIBUTE
        self.details: Any = None
        self.nodes: list[Any] = []
        self.field_def: Any = None
        self.strawberry_field: Any = None
        self.python_name = ""
        self.wrapped: Any = None
        self.self_arg = False
        self.root_names: tuple[str, ...] = ()
        self.info_name: str | None = None
        self.args = False
        # Scalar arguments only: each one's (Python name, variable or None, value, non-null),
        # read without graphql-core's coercion or strawberry's conversion (`_arguments`).
        self.arguments: tuple[tuple[str, str | None, Any, bool], ...] | None = None
        # Leaf arguments only (scalars, enums): their converted values, by the coerced ones.
        self.converted: dict[tuple[Any, ...], dict[str, Any]] | None = None
        self.batch: Any = None
        self.value: ValuePlan | None = None
        # A connection field whose nodes PostgreSQL may write as JSON (`_json_nodes`).
        self.json_nodes: JsonNodes | None = None
        # A leaf's serializer, applied inline to a present value (see `generate_fields`), and
        # the Python type that is its own serialization (str for String/ID, int for BigInt).
        self.leaf: Any = None
        self.leaf_identity: type | None = None
        # A strawberry enum's class and {member: GraphQL name}: its serialization, looked up.
        self.leaf_enum: tuple[type, dict[Any, str]] | None = None


class ObjectPlan:
    __slots__ = ("exact", "execute", "fields", "is_type_of", "type")

    def __init__(self, type_: GraphQLObjectType) -> None:
        self.type = type_
        self.fields: list[FieldPlan] = []
        # (run, source, data, pos) -> None: this object's fields, written by `generate_fields`.
        self.execute: Any = None
        self.is_type_of = type_.is_type_of
        # strawberry's generated `is_type_of` (types with interfaces) holds for an instance of
        # the type's own class that was not `strawberry.cast`: checked inline for those.
        definition = (type_.extensions or {}).get(DEFINITION)
        self.exact: type | None = (
            definition.origin if definition is not None and definition.is_type_of is None else None
        )


# Where a completed list or object sits, for null propagation and error paths: a plain tuple
# (parent position or None, key, container, nullable, typename), made for every object of a
# response; a tuple display costs no call, unlike a class's `__init__`.
Pos = tuple[Any, ...]
PARENT, KEY, CONTAINER, NULLABLE, TYPENAME_OF = range(5)


def path_of(pos: Pos | None, key: str | int | None = None, typename: str | None = None) -> Any:
    keys: list[tuple[str | int, Any]] = []
    while pos is not None:
        keys.append((pos[KEY], pos[TYPENAME_OF]))
        pos = pos[PARENT]
    path = None
    for k, t in reversed(keys):
        path = Path(path, k, t)
    if key is not None:
        path = Path(path, key, typename)
    return path


# ---------------------------------------------------------------------------------------------
# Compilation


_PLANS: SizedCache[tuple[Any, ...], tuple[Any, Any, ObjectPlan | None]] = SizedCache(
    PLAN_CACHE_SIZE, PLAN_CACHE_CHARACTERS
)
_DIRECTIVE_VARIABLES: SizedCache[int, tuple[Any, tuple[str, ...]]] = SizedCache(
    PLAN_CACHE_SIZE, PLAN_CACHE_CHARACTERS
)


def _directive_variables(executor: Any) -> tuple[str, ...]:
    """Variables that `@skip`/`@include` of the operation or its fragments depend on."""
    operation = executor.operation
    found = _DIRECTIVE_VARIABLES.get(id(operation))
    if found is not None and found[0] is operation:
        return found[1]
    names: set[str] = set()

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            for argument in node.arguments or ():
                if isinstance(argument.value, VariableNode):
                    names.add(argument.value.name.value)

    visit(operation, Directives())
    for fragment in executor.fragment_definitions.values():
        visit(fragment, Directives())
    result = tuple(sorted(names))
    _DIRECTIVE_VARIABLES.put(id(operation), (operation, result), text_size(operation))
    return result


def plan_for(executor: Any, root_type: GraphQLObjectType, grouped: Any) -> ObjectPlan | None:
    """The compiled plan of the executor's operation, or None when it cannot be compiled."""
    operation: OperationDefinitionNode = executor.operation
    if operation.operation is not OperationType.QUERY:
        return None
    schema = executor.schema
    coerced = executor.variable_values.coerced
    signature = tuple(coerced.get(name) for name in _directive_variables(executor))
    key = (id(schema), id(operation), signature)
    found = _PLANS.get(key)
    if found is not None and found[0] is schema and found[1] is operation:
        return found[2]
    plan: ObjectPlan | None
    try:
        plan = _Compiler(executor).object_plan(root_type, grouped)
    except Unsupported:
        plan = None
    _PLANS.put(key, (schema, operation, plan), text_size(operation))
    return plan


class _Compiler:
    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.schema = executor.schema
        strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        if strawberry_schema is None:
            raise Unsupported("not a strawberry schema")
        self.converter = strawberry_schema.schema_converter
        manager = executor.middleware_manager
        if manager is not None and manager.middlewares:
            raise Unsupported("resolve middleware")

    def object_plan(self, object_type: GraphQLObjectType, grouped: Any) -> ObjectPlan:
        plan = ObjectPlan(object_type)
        for key, details in grouped.items():
            plan.fields.append(self.field_plan(object_type, key, details))
        plan.execute = generate_fields(plan)
        return plan

    def field_plan(self, parent_type: GraphQLObjectType, key: str, details: Any) -> FieldPlan:
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
        if field.extensions or self.converter._get_field_exception_handlers(field):
            raise Unsupported(f"{parent_type.name}.{name} has field extensions or handlers")
        plan.field_def = field_def
        plan.strawberry_field = field
        resolver = field.base_resolver
        if resolver is None:
            if not getattr(field_def.resolve, "_is_default", False):
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
        self, field_def: Any, node: Any, field: Any
    ) -> tuple[tuple[str, str | None, Any, bool], ...] | None:
        """How to read a field's arguments when every one is a scalar that strawberry passes
        as it is (not an enum, a global id or a `Maybe`): a literal or a default is coerced
        here, once; a variable's value is the operation's coerced value. None (the general
        way, every request) for anything else, or a literal or default that fails (its error
        is reported there)."""
        names = self.converter.config.name_converter
        by_name = {names.from_argument(argument): argument for argument in field.arguments}
        given = {argument.name.value: argument for argument in node.arguments or ()}
        recipe = []
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
            coerced: dict[str, Any] = {}
            try:
                coerce_argument(coerced, node, name, arg_def, given.get(name), None, None)
            except GraphQLError:
                return None
            if name in coerced:
                recipe.append((argument.python_name, None, coerced[name], False))
        return tuple(recipe)

    def plain_scalar(self, type_: Any) -> bool:
        """A scalar argument type that strawberry's `convert_argument` returns as it is."""
        if isinstance(type_, StrawberryOptional) and not isinstance(type_, StrawberryMaybe):
            type_ = type_.of_type
        return (
            type_ is not GlobalID
            and not isinstance(type_, StrawberryMaybe | LazyType)
            and is_scalar(type_, self.converter.scalar_registry)
        )

    def value_plan(self, type_: Any, details: Any) -> ValuePlan:
        nullable = not isinstance(type_, GraphQLNonNull)
        inner = type_ if nullable else type_.of_type
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
            plan.objects = {
                possible.name: self.object_plan(possible, self.subfields(possible, details))
                for possible in self.schema.get_possible_types(inner)
            }
            return plan
        raise Unsupported(f"output type {inner}")

    def subfields(self, object_type: GraphQLObjectType, details: Any) -> Any:
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


def generate_fields(plan: ObjectPlan) -> Any:
    """The function that executes the plan's fields on one source object, as Python source
    compiled once per plan: per field, straight-line code with its response key, attribute
    name and serializer as constants, instead of a loop that reads them from the field plans
    for every object (graphql-jit's approach). The common case of a plain attribute, a value
    that is its own serialization or serializes without error, is written inline; anything
    else (errors, nulls, lists, objects, resolvers) calls the same `Run` methods as before.
    """
    name = f"<compiled plan {plan.type.name} {id(plan):x}>"
    namespace: dict[str, Any] = {"Undefined": Undefined}
    lines = ["def execute(run, source, data, pos):"]
    for i, field in enumerate(plan.fields):
        key = repr(field.key)
        if field.kind == TYPENAME:
            lines.append(f"    data[{key}] = {plan.type.name!r}")
            continue
        namespace[f"f{i}"] = field
        if field.kind == RESOLVER:
            lines.append(f"    run.resolver_field(f{i}, source, data, pos)")
            continue
        namespace[f"vp{i}"] = field.value
        attribute = field.python_name
        read = (
            f"source.{attribute}"
            if attribute.isidentifier() and not keyword.iskeyword(attribute)
            else f"getattr(source, {attribute!r})"
        )
        lines += [
            "    try:",
            f"        v = {read}",
            "    except Exception as error:",
            f"        run.field_error(error, f{i}, data, {key}, pos, vp{i})",
            "    else:",
        ]
        if field.leaf_identity is not None:
            namespace[f"t{i}"] = field.leaf_identity
            lines += [
                f"        if type(v) is t{i}:",
                f"            data[{key}] = v",
                "        else:",
                f"            run.attribute_value(f{i}, v, data, pos)",
            ]
        elif field.leaf is not None:
            namespace[f"s{i}"] = field.leaf
            lines.append("        c = None")
            if field.leaf_enum is not None:
                namespace[f"et{i}"], namespace[f"en{i}"] = field.leaf_enum
                lines += [f"        if type(v) is et{i}:", f"            c = en{i}.get(v)"]
            lines += [
                "        if c is None and v is not None and v is not Undefined:",
                "            try:",
                f"                c = s{i}(v)",
                "            except Exception:",
                "                c = None",
                "        if c is not None and c is not Undefined:",
                f"            data[{key}] = c",
                "        else:",
                f"            run.complete(vp{i}, v, f{i}, data, {key}, pos)",
            ]
        elif field.value is not None and field.value.kind == LIST:
            # A list is iterable and not a string: straight to `complete_list`.
            lines += [
                "        if type(v) is list:",
                "            try:",
                f"                run.complete_list(vp{i}, v, f{i}, data, {key}, pos)",
                "            except Exception as error:",
                f"                run.field_error(error, f{i}, data, {key}, pos, vp{i})",
                "        else:",
                f"            run.complete(vp{i}, v, f{i}, data, {key}, pos)",
            ]
        else:
            lines.append(f"        run.complete(vp{i}, v, f{i}, data, {key}, pos)")
    if len(lines) == 1:
        lines.append("    return None")
    # Only names and constants of our own go into the source: response keys and attribute
    # names are GraphQL and Python identifiers, written with repr().
    exec(compile("\n".join(lines) + "\n", name, "exec"), namespace)
    return namespace["execute"]


_CONVERTED_PER_FIELD = 64  # argument values remembered per field plan (ids vary per request)


def _arguments(
    recipe: tuple[tuple[str, str | None, Any, bool], ...], variables: dict[str, Any]
) -> dict[str, Any] | None:
    """A field's scalar arguments by its recipe (`_Compiler.arguments`), or None when a
    variable is missing or null for a non-null argument: the general way then applies the
    default or reports the error, as graphql-core does."""
    kwargs = {}
    for python_name, variable, value, required in recipe:
        if variable is not None:
            if variable not in variables:
                return None
            value = variables[variable]
            if value is None and required:
                return None
        kwargs[python_name] = value
    return kwargs


def _leaf(type_: Any) -> bool:
    """A scalar or enum argument, nullable or not (lists and input objects are not)."""
    return is_leaf_type(type_.of_type if isinstance(type_, GraphQLNonNull) else type_)


def _json_nodes(value: ValuePlan) -> JsonNodes | None:
    """A connection whose `nodes` (selected once, and no `edges`) are objects of plain columns
    only, which its page may read as JSON that PostgreSQL writes (schema/projection.py): the
    nodes' response keys and attributes, or None."""
    if value.kind != OBJECT:
        return None
    nodes = None
    for field in value.objects.fields:
        if field.field_name == "edges" or (field.field_name == "nodes" and nodes is not None):
            return None
        if field.field_name == "nodes":
            nodes = field
    if nodes is None or nodes.kind != ATTRIBUTE or nodes.value is None:
        return None
    items = nodes.value.item
    if nodes.value.kind != LIST or items is None or items.kind != OBJECT or items.nullable:
        return None
    plan: ObjectPlan = items.objects
    fields: list[JsonField] = []
    for field in plan.fields:
        if field.kind == TYPENAME:
            fields.append((field.key, None, "", True, None))
            continue
        value_plan = field.value
        if field.kind != ATTRIBUTE or value_plan is None or value_plan.kind != LEAF:
            return None
        leaf = value_plan.type.name
        fields.append((field.key, field.python_name, leaf, value_plan.nullable, field.leaf_enum))
    return json_nodes(plan.type.name, fields)


def _enum_names(enum_type: CustomGraphQLEnumType) -> tuple[type, dict[Any, str]]:
    """What strawberry's `coerce_output_value` answers for each member of the enum (the name
    of the first GraphQL value equal to the member's), as a table."""
    names: dict[Any, str] = {}
    members: list[Any] = list(enum_type.wrapped_cls)
    for name, value in enum_type.values.items():
        for member in members:
            if member not in names and member.value == value.value:
                names[member] = name
    return enum_type.wrapped_cls, names


# ---------------------------------------------------------------------------------------------
# Execution


class _Call:
    """A resolver field's per-request inputs: converted arguments and its `Info`."""

    __slots__ = ("error", "info", "kwargs")

    def __init__(self, kwargs: dict[str, Any], info: Any, error: Exception | None) -> None:
        self.kwargs = kwargs
        self.info = info
        self.error = error


_Parent = tuple[Any, dict[str, Any], "Pos | None"]  # source object, its data, its position
_BATCH: Any = object()  # marks a pending batch call (its "position" is its parents' list)


class Run:
    """One execution of a plan against a root value."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.errors = executor.collected_errors
        self.pending: list[tuple[Any, FieldPlan, Any, Any]] = []
        # Batched resolver fields of the current level: field id -> (field, call, parents).
        self.batches: dict[int, tuple[FieldPlan, _Call, list[_Parent]]] = {}
        self.calls: dict[int, _Call] = {}
        self.root_error: GraphQLError | None = None
        strawberry_schema = executor.schema._strawberry_schema
        self.info_class = strawberry_schema.config.info_class
        self.config = strawberry_schema.config
        self.scalar_registry = strawberry_schema.schema_converter.scalar_registry
        # Connections may read their nodes as JSON (`_json_nodes`) when the response is
        # written by orjson, which embeds it (`orjson.Fragment`): an HTTP request's context.
        self.json_fragments = bool(getattr(executor.context_value, "json_fragments", False))

    def execute(self, plan: ObjectPlan, root_value: Any) -> Any:
        """The data dict, or an awaitable of it when a resolver returned an awaitable."""
        data: dict[str, Any] = {}
        plan.execute(self, root_value, data, None)
        if self.batches:
            self.flush_batches()
        if self.pending:
            return self.drain(data)
        if self.root_error is not None:
            raise self.root_error
        return data

    async def drain(self, data: dict[str, Any]) -> dict[str, Any]:
        """Await the pending resolvers a level at a time (together, so that a level's loader
        keys go out in one batch)."""
        while self.pending:
            batch, self.pending = self.pending, []
            if len(batch) == 1:
                try:
                    results: list[Any] = [await batch[0][0]]
                except Exception as error:
                    results = [error]
            else:
                results = await _settle([p[0] for p in batch])
            for (_, field, container, pos), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, Exception):
                    raise result
                if pos is _BATCH:
                    self.complete_batch(field, container, result)
                elif isinstance(result, Exception):
                    self.field_error(result, field, container, field.key, pos, field.value)
                else:
                    self.complete(field.value, result, field, container, field.key, pos)
            if self.batches:
                self.flush_batches()
        if self.root_error is not None:
            raise self.root_error
        return data

    # -- objects and fields ------------------------------------------------------------------

    def attribute_value(
        self, field: FieldPlan, value: Any, data: dict[str, Any], pos: Pos | None
    ) -> None:
        """A plain attribute's value that is not its own serialization (see `generate_fields`)."""
        serialize = field.leaf
        if serialize is not None and value is not None and value is not Undefined:
            try:
                completed = serialize(value)
            except Exception:
                completed = None
            if completed is not None and completed is not Undefined:
                data[field.key] = completed
                return
        self.complete(field.value, value, field, data, field.key, pos)  # type: ignore[arg-type]

    def resolver_field(
        self, field: FieldPlan, source: Any, data: dict[str, Any], pos: Pos | None
    ) -> None:
        """A field with a resolver: called now, or queued with its level's batch."""
        key = field.key
        value_plan = field.value
        call = self.calls.get(id(field))
        if call is None:
            call = self.prepare(field, pos)
        if call.error is not None:
            self.field_error(call.error, field, data, key, pos, value_plan)
            return
        if field.batch is not None:  # called once for the level's parents
            data[key] = None
            group = self.batches.get(id(field))
            if group is None:
                group = self.batches[id(field)] = (field, call, [])
            group[2].append((source, data, pos))
            return
        try:
            result = self.call(field, call, source)
        except Exception as error:
            self.field_error(error, field, data, key, pos, value_plan)
            return
        if inspect.isawaitable(result):
            data[key] = None  # keeps the key's place in the response
            self.pending.append((result, field, data, pos))
        else:
            self.complete(value_plan, result, field, data, key, pos)  # type: ignore[arg-type]

    def prepare(self, field: FieldPlan, pos: Pos | None) -> _Call:
        """Arguments and Info of a resolver field, once per request (they do not depend on
        the parent object; the Info's path is that of the first parent)."""
        executor = self.executor
        raw_info = executor.build_resolve_info(
            field.field_def,
            field.nodes,
            field.parent_type,
            path_of(pos, field.key, field.parent_type.name),
        )
        info = self.info_class(_raw_info=raw_info, _field=field.strawberry_field)
        error: Exception | None = None
        kwargs: dict[str, Any] | None = None if field.args else {}
        if field.arguments is not None:
            kwargs = _arguments(field.arguments, executor.variable_values.coerced)
        if kwargs is None:  # not read by `_arguments`: the general way
            kwargs = {}
            try:
                raw = get_argument_values(
                    field.field_def,
                    field.nodes[0],
                    executor.variable_values,
                    None,
                    executor.hide_suggestions,
                )
                kwargs = self.convert_arguments(field, raw, info)
            except Exception as exc:
                error = exc
        if field.info_name is not None:
            kwargs[field.info_name] = info
        if field.json_nodes is not None and self.json_fragments:
            offer_json_nodes(info, field.json_nodes)
        call = self.calls[id(field)] = _Call(kwargs, raw_info, error)
        return call

    def convert_arguments(self, field: FieldPlan, raw: dict[str, Any], info: Any) -> Any:
        """strawberry's conversion of the coerced arguments; for leaf arguments (which convert
        by value alone: no input types, which may use `info`) remembered per field plan,
        keyed by the values and their types (1, 1.0 and True are equal keys otherwise)."""
        converted = field.converted
        key: tuple[Any, ...] | None = None
        if converted is not None:
            try:
                key = tuple((name, type(value), value) for name, value in raw.items())
                found = converted.get(key)
            except TypeError:  # an unhashable value (a list)
                key = found = None
            if found is not None:
                return dict(found)
        kwargs = convert_arguments(
            raw,
            field.strawberry_field.arguments,
            scalar_registry=self.scalar_registry,
            config=self.config,
            info=info,
        )
        if key is not None and converted is not None and len(converted) < _CONVERTED_PER_FIELD:
            converted[key] = dict(kwargs)
        return kwargs

    @staticmethod
    def call(field: FieldPlan, call: _Call, source: Any) -> Any:
        kwargs = call.kwargs
        if field.root_names:
            kwargs = dict(kwargs)
            for name in field.root_names:
                kwargs[name] = source
        if field.self_arg:
            return field.wrapped(source, **kwargs)
        return field.wrapped(**kwargs)

    def flush_batches(self) -> None:
        """Call each batched field of the level once, with all its parents."""
        batches, self.batches = self.batches, {}
        for field, call, parents in batches.values():
            try:
                result = field.batch([parent[0] for parent in parents], **call.kwargs)
            except Exception as error:
                self.complete_batch(field, parents, error)
                continue
            if inspect.isawaitable(result):
                self.pending.append((result, field, parents, _BATCH))
            else:
                self.complete_batch(field, parents, result)

    def complete_batch(self, field: FieldPlan, parents: list[_Parent], result: Any) -> None:
        """A batch's values (or exceptions) in its parents' order; a failed or malformed batch
        is that field's error on every parent."""
        if not isinstance(result, Exception):
            if isinstance(result, list) and len(result) == len(parents):
                for (_, data, pos), value in zip(parents, result, strict=True):
                    if isinstance(value, Exception):
                        self.field_error(value, field, data, field.key, pos, field.value)
                    else:
                        self.complete(field.value, value, field, data, field.key, pos)
                return
            result = TypeError(
                f"The batch resolver of {field.parent_type.name}.{field.field_name} returned"
                f" {describe(result)} for {len(parents)} parents."
            )
        for _, data, pos in parents:
            self.field_error(result, field, data, field.key, pos, field.value)

    # -- completion --------------------------------------------------------------------------

    def complete(
        self,
        plan: ValuePlan,
        value: Any,
        field: FieldPlan,
        container: Any,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        """Write the completed `value` at `container[key]` (or handle its error there)."""
        if value is None or value is Undefined:
            if plan.nullable:
                container[key] = None
                return
            message = (
                "Cannot return null for non-nullable field"
                f" {field.parent_type.name}.{field.field_name}."
            )
            self.field_error(TypeError(message), field, container, key, pos, plan)
            return
        kind = plan.kind
        try:
            if kind == LEAF:
                if plan.passthrough and type(value) is str:
                    container[key] = value
                    return
                completed = plan.serialize(value)
                if completed is Undefined or completed is None:
                    raise TypeError(
                        f"Expected `{describe(plan.type)}.coerce_output_value("
                        f"{describe(value)})` to return non-nullable value, returned:"
                        f" {describe(completed)}"
                    )
                container[key] = completed
            elif kind == LIST:
                if isinstance(value, str | bytes) or not is_iterable(value):
                    raise GraphQLError(
                        "Expected Iterable, but did not find one for field"
                        f" '{field.parent_type.name}.{field.field_name}'."
                    )
                self.complete_list(plan, value, field, container, key, pos)
            elif kind == OBJECT:
                self.complete_object(plan.objects, plan, value, field, container, key, pos)
            else:
                self.complete_abstract(plan, value, field, container, key, pos)
        except Exception as error:
            self.field_error(error, field, container, key, pos, plan)

    def complete_list(
        self,
        plan: ValuePlan,
        value: Iterable[Any],
        field: FieldPlan,
        container: Any,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        if type(value) is list and value and type(value[0]) is Fragment:
            # A page read as JSON (`_json_nodes`): every node's object as PostgreSQL wrote it.
            container[key] = value
            return
        items: list[Any] = []
        container[key] = items
        list_pos = (pos, key, container, plan.nullable, _typename(pos, key, field))
        item_plan: ValuePlan = plan.item  # type: ignore[assignment]
        complete = self.complete
        if item_plan.kind == OBJECT:  # lists of objects: straight to `complete_object`
            complete_object = self.complete_object
            objects: ObjectPlan = item_plan.objects
            exact, execute, nullable = objects.exact, objects.execute, item_plan.nullable
            for index, item in enumerate(value):
                try:
                    # `complete_object` inline for an instance of the type's own class.
                    if type(item) is exact and TYPE_CAST_ATTRIBUTE not in getattr(
                        item, "__dict__", (TYPE_CAST_ATTRIBUTE,)
                    ):
                        data: dict[str, Any] = {}
                        items.append(data)
                        execute(self, item, data, (list_pos, index, items, nullable, None))
                        continue
                    items.append(None)
                    if item is None:
                        complete(item_plan, item, field, items, index, list_pos)
                        continue
                    complete_object(objects, item_plan, item, field, items, index, list_pos)
                except Exception as error:
                    self.field_error(error, field, items, index, list_pos, item_plan)
            return
        for index, item in enumerate(value):
            items.append(None)
            complete(item_plan, item, field, items, index, list_pos)

    def complete_object(
        self,
        object_plan: ObjectPlan,
        plan: ValuePlan,
        value: Any,
        field: FieldPlan,
        container: Any,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        is_type_of = object_plan.is_type_of
        if (
            is_type_of is not None
            and not (
                type(value) is object_plan.exact
                and TYPE_CAST_ATTRIBUTE not in getattr(value, "__dict__", (TYPE_CAST_ATTRIBUTE,))
            )
            and not is_type_of(value, None)
        ):
            raise invalid_return_type_error(object_plan.type, value, field.details)
        data: dict[str, Any] = {}
        container[key] = data
        typename = None if type(key) is int else field.parent_type.name  # as `_typename`
        object_plan.execute(self, value, data, (pos, key, container, plan.nullable, typename))

    def complete_abstract(
        self,
        plan: ValuePlan,
        value: Any,
        field: FieldPlan,
        container: Any,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        call = self.calls.get(id(field))
        if call is not None:
            info = call.info
        else:  # a plain attribute of an abstract type: resolve_type still gets an Info
            info = self.executor.build_resolve_info(
                field.field_def,
                field.nodes,
                field.parent_type,
                path_of(pos, key, _typename(pos, key, field)),
            )
        abstract = plan.type
        resolve_type = abstract.resolve_type or self.executor.type_resolver
        runtime_name = resolve_type(value, info, abstract)
        if inspect.isawaitable(runtime_name):
            if inspect.iscoroutine(runtime_name):
                runtime_name.close()
            raise GraphQLError(f"Asynchronous resolve_type of '{abstract}' is not supported.")
        runtime = self.executor.ensure_valid_runtime_type(
            runtime_name, abstract, field.details, info, value
        )
        self.complete_object(plan.objects[runtime.name], plan, value, field, container, key, pos)

    # -- errors ------------------------------------------------------------------------------

    def field_error(
        self,
        raw: Exception,
        field: FieldPlan,
        container: Any,
        key: str | int,
        pos: Pos | None,
        plan: ValuePlan | None,
    ) -> None:
        """A field error at `container[key]`: null it if nullable, else the nearest nullable
        ancestor (or the whole `data`), and record the error once, as graphql-core does."""
        path = path_of(pos, key, _typename(pos, key, field))
        error = located_error(raw, field.nodes, path.as_list())
        if plan is None or plan.nullable:
            container[key] = None
            self.errors.add(error, path)
            return
        target = pos
        while target is not None and not target[NULLABLE]:
            target = target[PARENT]
        if target is None:
            if self.root_error is None:
                self.root_error = error
            self.errors.add(error, None)
            return
        target[CONTAINER][target[KEY]] = None
        self.errors.add(error, path_of(target[PARENT], target[KEY], target[TYPENAME_OF]))


async def _settle(awaitables: list[Any]) -> list[Any]:
    """Each awaitable's result or exception, run concurrently: `gather(return_exceptions=True)`
    without its per-child bookkeeping (tasks are awaited in turn; all run meanwhile)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    results: list[Any] = []
    try:
        for task in tasks:
            try:
                results.append(await task)
            except Exception as error:
                results.append(error)
    except BaseException:  # cancelled: take the others down too
        for task in tasks:
            task.cancel()
        raise
    return results


def _typename(pos: Pos | None, key: str | int, field: FieldPlan) -> str | None:
    """graphql-core's Path typename: the parent type for a field key, None for a list index."""
    return None if isinstance(key, int) else field.parent_type.name
