"""Projection push-down: the columns a connection's rows need, from what the query selects.

A dashboard's `usages(first: 5) { nodes { modelName createdAt } }` shows 2 of a usage record's
17 columns, yet reading every column costs per row: asyncpg decodes each value (a timestamp is
~6,000 instructions, the JSON metadata a call into Python), and the row and the GraphQL object
carry them all. A node type that declares how its GraphQL fields map to its model's
attributes (schema/declare.py `node_type`) lets `node_selection` read, from the connection
field's selection, the attributes its rows must have; `page_args` puts them in `PageArgs.columns`, and the page
statement selects only those. A type may also name fields that read a relation its page
loader can join (`related`: a members page that shows the users reads them in the same
statement, instead of one more for the users).

It errs on the side of reading more: fields under `@skip`/`@include` count whatever the
variables say, every fragment counts whatever its type condition, and a field the type did not
register (or anything else unexpected) means every column.

One step further (`json_nodes`): a type declared with its `model` says which attributes are
a column's value as it is (or an enum of it), and which to-one object fields are a plain join
(`ToOne`); a selection of nodes made only of those (objects of such columns inside), as the
compiled executor collected it, can be written as JSON by PostgreSQL itself (json_sql.py),
exactly as the objects would have been. So may a node's connection field declared a plain page
(`ToMany`), selected with a literal `first` alone and only `nodes` (and `__typename`) of such
columns: its page is written inside the node's JSON, where the page's loader decided the
field's rule for the viewer (`PageArgs.deciding`; undecided, the objects).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from operator import is_
from typing import NamedTuple

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
    SelectionSetNode,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper
from strawberry import Info

from schema.declare import EVERYTHING, NODE_TYPES, NodeSelection, NodeType
from schema.engine.internals import raw_info, to_camel_case
from schema.engine.json_sql import (
    JSON_LEAVES,
    SQL_NAME,
    JsonNodes,
    JsonObject,
    JsonPage,
    sql_kind,
)


@dataclass(frozen=True)
class RowColumns:
    """A node type's rows: the attributes each GraphQL field reads (None: the whole row),
    those always read (its id, keys that resolvers or loaders use), and the fields that read
    a relation a page loader may join (field -> relation name, for `PageArgs.related`)."""

    fields: Mapping[str, tuple[str, ...] | None]
    always: tuple[str, ...]
    related: Mapping[str, str]


@dataclass(frozen=True)
class JsonColumn:
    column: str  # the model attribute
    kind: str  # a key of JSON_LEAVES
    nullable: bool
    enum: type | None = None  # the attribute is `enum_of(enum, the column's value)`


# type name -> (its declaration, what the engine makes of it); made at first use.
_DERIVED: dict[str, tuple[NodeType, RowColumns, dict[str, JsonColumn] | None]] = {}
# id of the field nodes -> (the nodes, the columns); the nodes are kept so ids stay theirs.
_CACHE: dict[tuple[int, ...], tuple[tuple[FieldNode, ...], NodeSelection]] = {}
_CACHE_SIZE = 1024


def _derived(type_name: str) -> tuple[NodeType, RowColumns, dict[str, JsonColumn] | None] | None:
    declared = NODE_TYPES.get(type_name)
    if declared is None:
        return None
    found = _DERIVED.get(type_name)
    if found is None or found[0] is not declared:
        found = _DERIVED[type_name] = (declared, row_columns(declared), json_columns(declared))
    return found


def row_columns(declared: NodeType) -> RowColumns:
    """The columns each GraphQL field of a declared node type reads (schema/declare.py)."""
    fields: dict[str, tuple[str, ...] | None] = {}
    for attribute, column, _ in declared.readers.fields:
        name = to_camel_case(attribute)
        fields[name] = (*(fields.get(name) or ()), column)
    fields.update(declared.others)
    return RowColumns(fields, declared.always, declared.related)


def json_columns(declared: NodeType) -> dict[str, JsonColumn] | None:
    """The attributes of a node type declared with its model that are a column's value
    unconverted, of a kind in `JSON_LEAVES`, or an enum of a text column's value."""
    if declared.model is None:
        return None
    mapper: Mapper[object] = sa_inspect(declared.model)
    table_columns = {prop.key: prop.columns[0] for prop in mapper.column_attrs}
    found: dict[str, JsonColumn] = {}
    for attribute, source, convert in declared.readers.fields:
        column = table_columns.get(source)
        kind = sql_kind(column.type) if column is not None else None
        if column is None or kind is None:
            continue
        if convert is None:
            found[attribute] = JsonColumn(source, kind, bool(column.nullable))
        enum = declared.enums.get(attribute)
        if enum is not None and kind == "text":
            found[attribute] = JsonColumn(source, kind, bool(column.nullable), enum)
    return found


def registered(type_name: str) -> RowColumns | None:
    derived = _derived(type_name)
    return derived[1] if derived is not None else None


# A wider selection (say, one field under a hundred aliases) keeps the objects: the statement's
# expression grows with it. Fields of objects inside count.
MAX_JSON_FIELDS = 64
JsonField = tuple[
    str,
    "str | JsonChild | JsonPageChild | None",
    str,
    bool,
    "tuple[type, Mapping[Enum, str]] | None",
]
Fragments = dict[str, FragmentDefinitionNode]


class JsonChild(NamedTuple):
    """A node's to-one object field in a `JsonField`: the field's GraphQL name on the node
    type, the object's type name, and its selection's fields."""

    field_name: str
    type_name: str
    fields: tuple[JsonField, ...]


class JsonPageChild(NamedTuple):
    """A node's connection field in a `JsonField`, selected as `first: <limit>` alone: the
    field's GraphQL name on the node type, the connection's type name and its selection
    ((response key, "nodes" or None for `__typename`)), the nodes' type name and their
    selection's fields."""

    field_name: str
    limit: int
    type_name: str
    fields: tuple[tuple[str, str | None], ...]
    node_type: str
    nodes: tuple[JsonField, ...]


def json_nodes(type_name: str, fields: Sequence[JsonField]) -> JsonNodes | None:
    """The `JsonNodes` of a node selection, or None when one of its fields cannot be read as
    JSON exactly: `fields` are (response key, attribute or None for `__typename` or a
    `JsonChild` for a to-one object, GraphQL leaf type name, whether the field is nullable,
    and for an enum its class and {member: GraphQL name}), in response order. A non-null
    field needs a NOT NULL column: a null would be a field error, which JSON built in SQL
    cannot report. An object needs its field declared as a plain join (`ToOne`) of its type,
    and to be nullable (a missing or hidden row is null)."""
    if _field_count(fields) > MAX_JSON_FIELDS:
        return None
    return _json_nodes(type_name, fields)


def _field_count(fields: Sequence[JsonField]) -> int:
    return sum(1 + _inner_count(f[1]) for f in fields)


def _inner_count(value: object) -> int:
    if isinstance(value, JsonChild):
        return _field_count(value.fields)
    if isinstance(value, JsonPageChild):
        return len(value.fields) + _field_count(value.nodes)
    return 0


def _json_nodes(type_name: str, fields: Sequence[JsonField]) -> JsonNodes | None:
    derived = _derived(type_name)
    columns = derived[2] if derived is not None else None
    if derived is None or columns is None or not fields:
        return None
    out: list[tuple[str, str | JsonObject | JsonPage | None]] = []
    enums: dict[str, tuple[tuple[str, str], ...]] = {}
    int32: set[str] = set()
    for key, attribute, leaf, nullable, enum_names in fields:
        if not SQL_NAME.fullmatch(key):  # a GraphQL name always is; anything else keeps objects
            return None
        if attribute is None:
            out.append((key, None))
            continue
        if isinstance(attribute, JsonChild | JsonPageChild):  # a to-one object or a page
            child = (
                _json_object(derived[0], attribute, nullable)
                if isinstance(attribute, JsonChild)
                else _json_page(derived[0], attribute, nullable)
            )
            if child is None:
                return None
            out.append((key, child))
            continue
        column = columns.get(attribute)
        if column is None or (column.nullable and not nullable):
            return None
        if column.enum is not None or enum_names is not None:
            if enum_names is None or enum_names[0] is not column.enum:
                return None
            table = tuple((member.value, name) for member, name in enum_names[1].items())
            if not all(isinstance(v, str) and SQL_NAME.fullmatch(v) for v, _ in table):
                return None
            enums[column.column] = table
        elif leaf not in JSON_LEAVES[column.kind]:
            return None
        elif leaf == "Int" and column.kind == "bigint":
            int32.add(column.column)
        out.append((key, column.column))
    return JsonNodes(type_name, tuple(out), tuple(sorted(enums.items())), tuple(sorted(int32)))


def _json_object(parent: NodeType, child: JsonChild, nullable: bool) -> JsonObject | None:
    """A to-one object of a node as JSON: its field declared as a plain join (`ToOne`) to its
    type, nullable, and its own selection written as JSON."""
    declared = parent.objects.get(child.field_name)
    if declared is None or declared.type_name != child.type_name or not nullable:
        return None
    target = _derived(child.type_name)
    if target is None or target[0].model is None:
        return None
    model = target[0].model
    missing = [
        *([] if hasattr(parent.model, declared.foreign_key) else [declared.foreign_key]),
        *(column for column in declared.unless if not hasattr(model, column)),
    ]
    if missing or not hasattr(model, "id"):
        raise ValueError(f"{child.field_name}: a ToOne of unknown attributes {missing}")
    nodes = _json_nodes(child.type_name, child.fields)
    if nodes is None:
        return None
    return JsonObject(model, declared.foreign_key, declared.unless, nodes)


def _json_page(parent: NodeType, child: JsonPageChild, nullable: bool) -> JsonPage | None:
    """A connection of a node as JSON: its field declared as a plain page (`ToMany`) of its
    node type, nullable if a rule decides who sees it, and its nodes' selection written as
    JSON."""
    declared = parent.pages.get(child.field_name)
    if declared is None or declared.type_name != child.node_type:
        return None
    names = (child.type_name, *(key for key, _ in child.fields))
    if not all(SQL_NAME.fullmatch(name) for name in names):
        return None
    if declared.rule is not None and not nullable:
        return None
    target = _derived(child.node_type)
    if target is None or target[0].model is None:
        return None
    model = target[0].model
    missing = [
        *(row for row, _ in declared.keys if not hasattr(model, row)),
        *(node for _, node in declared.keys if not hasattr(parent.model, node)),
    ]
    if missing or not hasattr(model, "id") or not declared.keys:
        raise ValueError(f"{child.field_name}: a ToMany of unknown attributes {missing}")
    nodes = _json_nodes(child.node_type, child.nodes)
    if nodes is None:
        return None
    return JsonPage(
        model,
        declared.keys,
        declared.newest_first,
        child.limit,
        declared.rule,
        child.type_name,
        child.fields,
        nodes,
    )


def page_selection(info: Info) -> NodeSelection:
    """What the page of this connection field reads (schema/declare.py `page_selection`): the
    columns and relations its nodes' selection needs, and the nodes as JSON when the compiled
    run offered them for this field's path (run.py `Run.offer`)."""
    raw = raw_info(info)
    selection = node_selection(raw)
    notes = getattr(raw.context, "field_notes", None)
    if notes:
        # graphql-core's Path, a named tuple: hashed and compared by value, in C.
        offered = notes.get(raw.path)
        if isinstance(offered, JsonNodes):
            # A page read as JSON holds the relations the nodes show (`JsonObject`) and joins
            # none (its loader drops them); they serve a page that does not read the JSON (a
            # rule its loader left undecided: `ExtraColumn.ready`). (A page read again as
            # objects, for a value out of range, loads them by their loaders.)
            return selection._replace(extra=offered)
    return selection


def node_selection(raw: GraphQLResolveInfo) -> NodeSelection:
    """The attributes the rows of this connection field's nodes need (None for all of them: a
    node type that did not declare, or a selection it cannot account for), and the relations
    the selection reads; `raw` is the field's graphql-core resolve info."""
    field_nodes = raw.field_nodes
    key = tuple(map(id, field_nodes))
    found = _CACHE.get(key)
    if found is not None and all(map(is_, found[0], field_nodes)):  # same length: same key
        return found[1]
    selection = _selection(raw.return_type, field_nodes, raw.fragments)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = (tuple(field_nodes), selection)
    return selection


def _selection(
    return_type: GraphQLOutputType, field_nodes: list[FieldNode], fragments: Fragments
) -> NodeSelection:
    connection = _named(return_type)
    if not isinstance(connection, GraphQLObjectType) or "nodes" not in connection.fields:
        return EVERYTHING
    try:
        # `totalCount` anywhere in the selection, whatever its directives say (erring towards
        # more: a count that is not shown costs a part of the page's statement).
        counted = any(
            field.name.value == "totalCount"
            for node in field_nodes
            for field in _fields(node.selection_set, fragments)
        )
    except LookupError:  # a fragment that is not there: let execution report it
        return EVERYTHING
    everything = EVERYTHING._replace(counted=counted)
    node_type = _named(connection.fields["nodes"].type)
    spec = registered(getattr(node_type, "name", ""))
    if spec is None:
        return everything
    selected: set[str] = set()
    try:
        for node in field_nodes:
            _connection_fields(node.selection_set, fragments, selected)
    except LookupError:
        return EVERYTHING
    related = tuple(sorted({spec.related[name] for name in selected if name in spec.related}))
    wanted: set[str] = set(spec.always)
    for name in selected:
        if name == "__typename":
            continue
        columns = spec.fields.get(name)
        if columns is None:  # not registered, or reads the whole row
            return NodeSelection(None, related, counted=counted)
        wanted.update(columns)
    return NodeSelection(tuple(sorted(wanted)), related, counted=counted)


def _connection_fields(
    selection_set: SelectionSetNode | None, fragments: Fragments, out: set[str]
) -> None:
    """Node fields selected under `nodes { … }` and `edges { node { … } }`."""
    for field in _fields(selection_set, fragments):
        name = field.name.value
        if name == "nodes":
            out.update(node.name.value for node in _fields(field.selection_set, fragments))
        elif name == "edges":
            for edge_field in _fields(field.selection_set, fragments):
                if edge_field.name.value == "node":
                    nodes = _fields(edge_field.selection_set, fragments)
                    out.update(node.name.value for node in nodes)


def _fields(selection_set: SelectionSetNode | None, fragments: Fragments) -> Iterator[FieldNode]:
    """The fields of a selection set, with those of its fragments (inline or spread) in."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection
        else:
            yield from _fields(_fragment(selection, fragments), fragments)


def _fragment(selection: SelectionNode, fragments: Fragments) -> SelectionSetNode | None:
    if isinstance(selection, InlineFragmentNode):
        return selection.selection_set
    if isinstance(selection, FragmentSpreadNode):
        return fragments[selection.name.value].selection_set
    raise LookupError(type(selection).__name__)


def _named(type_: object) -> object:
    """The named type inside list and non-null wrappers."""
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_
