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

This module holds what a plan is, and the straight-line code of each object plan's fields
(`generate_fields`); compiler.py builds plans, run.py runs them.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from enum import Enum, EnumMeta
from typing import TYPE_CHECKING, Any, Final, TypeAlias, overload

from graphql import (
    FieldNode,
    GraphQLAbstractType,
    GraphQLField,
    GraphQLObjectType,
    GraphQLOutputType,
)
from graphql.pyutils import Path, Undefined

from schema.declare import Ahead, Batch, Target
from schema.engine.internals import DEFINITION, FieldDetailsList
from schema.engine.json_sql import JsonNodes

if TYPE_CHECKING:
    from strawberry.types.field import StrawberryField

    from schema.engine.completion import Completion

# Field kinds.
ATTRIBUTE, RESOLVER, TYPENAME = 0, 1, 2
# Value kinds.
LEAF, LIST, OBJECT, ABSTRACT = 0, 1, 2, 3


# A response object as the run writes it: response key -> completed value.
Data: TypeAlias = dict[str, object]
# Where a completed value is written: a response object (by key) or list (by index). Which
# one goes with the key's type (str or int), which no static type can say: `container[key]`.
Container: TypeAlias = Any
# A leaf type's `coerce_output_value`, which takes and returns any value.
Serializer: TypeAlias = Callable[[object], object]
# A strawberry enum's class and {member: GraphQL name}.
EnumNames: TypeAlias = tuple[EnumMeta, dict[Enum, str]]
# A selection's fields by response key, as graphql-core collects them (its `GroupedFieldSet`).
GroupedFields: TypeAlias = dict[str, FieldDetailsList]
# Scalar arguments read without coercion or conversion (compiler.py `recipe_arguments`):
# each one's (Python name, variable or None, value, non-null).
ArgumentRecipe: TypeAlias = tuple[tuple[str, str | None, object, bool], ...]


class Unsupported(Exception):
    """The operation uses something the compiler does not handle: use the standard executor."""


class ValuePlan:
    """How to complete a value of one output type (nullability included)."""

    __slots__ = (
        "item",
        "kind",
        "nullable",
        "objects",
        "passthrough",
        "possible",
        "serialize",
        "type",
    )

    def __init__(self, kind: int, nullable: bool, type_: GraphQLOutputType) -> None:
        self.kind = kind
        self.nullable = nullable
        self.type = type_
        # What the kind needs, set by the compiler right after (None until then, and for the
        # other kinds, which never read it): LEAF its serializer, LIST its item's plan, OBJECT
        # the object's plan, ABSTRACT the abstract type and {type name: ObjectPlan}.
        self.serialize: Serializer = None  # type: ignore[assignment]
        self.passthrough = False  # String/ID: a str is its own serialization
        self.item: ValuePlan = None  # type: ignore[assignment]
        self.objects: ObjectPlan = None  # type: ignore[assignment]
        self.possible: tuple[GraphQLAbstractType, dict[str, ObjectPlan]] = None  # type: ignore[assignment]


class FieldPlan:
    """One response key of an object: where its value comes from and how it is completed."""

    __slots__ = (
        "ahead",
        "args",
        "arguments",
        "batch",
        "by_id",
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
        self.details: FieldDetailsList = []
        self.nodes: list[FieldNode] = []
        # Set by the compiler for every field but `__typename`, which never reads them.
        self.field_def: GraphQLField = None  # type: ignore[assignment]
        self.strawberry_field: StrawberryField = None  # type: ignore[assignment]
        self.python_name = ""
        self.wrapped: Callable[..., object] = None  # type: ignore[assignment]  # RESOLVER
        self.self_arg = False
        self.root_names: tuple[str, ...] = ()
        self.info_name: str | None = None
        self.args = False
        # Scalar arguments only, read by their recipe.
        self.arguments: ArgumentRecipe | None = None
        # Leaf arguments only (scalars, enums): their converted values, by the coerced ones.
        self.converted: dict[tuple[object, ...], dict[str, object]] | None = None
        self.batch: Batch | None = None
        # A by-id field's target (what it shows) and a field's read ahead (schema/declare.py).
        self.by_id: Target | None = None
        self.ahead: Ahead | None = None
        self.value: ValuePlan | None = None
        # A connection field whose nodes PostgreSQL may write as JSON (`_json_nodes`).
        self.json_nodes: JsonNodes | None = None
        # A leaf's serializer, applied inline to a present value (see `generate_fields`), and
        # the Python type that is its own serialization (str for String/ID, int for BigInt).
        self.leaf: Serializer | None = None
        self.leaf_identity: type | None = None
        # A strawberry enum's serialization, looked up.
        self.leaf_enum: EnumNames | None = None


class ObjectPlan:
    __slots__ = ("exact", "execute", "fields", "is_type_of", "type")

    def __init__(self, type_: GraphQLObjectType) -> None:
        self.type = type_
        self.fields: list[FieldPlan] = []
        # This object's fields on a source object, written by `generate_fields`.
        self.execute: ExecuteFields = None  # type: ignore[assignment]  # right after
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
Pos: TypeAlias = "tuple[Pos | None, str | int, Container, bool, str | None]"
PARENT: Final = 0
KEY: Final = 1
CONTAINER: Final = 2
NULLABLE: Final = 3
TYPENAME_OF: Final = 4

# (run, source object, its data, its position) -> None.
ExecuteFields: TypeAlias = "Callable[[Completion, object, Data, Pos | None], None]"


@overload
def path_of(pos: Pos | None, key: str | int, typename: str | None) -> Path: ...
@overload
def path_of(pos: Pos | None) -> Path | None: ...
def path_of(
    pos: Pos | None, key: str | int | None = None, typename: str | None = None
) -> Path | None:
    keys: list[tuple[str | int, str | None]] = []
    while pos is not None:
        keys.append((pos[KEY], pos[TYPENAME_OF]))
        pos = pos[PARENT]
    path: Path | None = None
    for k, t in reversed(keys):
        path = Path(path, k, t)
    if key is not None:
        path = Path(path, key, typename)
    return path


def generate_fields(plan: ObjectPlan) -> ExecuteFields:
    """The function that executes the plan's fields on one source object, as Python source
    compiled once per plan: per field, straight-line code with its response key, attribute
    name and serializer as constants, instead of a loop that reads them from the field plans
    for every object (graphql-jit's approach). The common case of a plain attribute, a value
    that is its own serialization or serializes without error, is written inline; anything
    else (errors, nulls, lists, objects, resolvers) calls the same run methods as before (completion.py, run.py).
    """
    name = f"<compiled plan {plan.type.name} {id(plan):x}>"
    namespace: dict[str, object] = {"Undefined": Undefined}
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
    execute: ExecuteFields = namespace["execute"]  # type: ignore[assignment]  # defined above
    return execute
