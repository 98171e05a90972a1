"""Projection push-down: the columns a connection's rows need, from what the query selects.

A dashboard's `usages(first: 5) { nodes { modelName createdAt } }` shows 2 of a usage record's
17 columns, yet reading every column costs per row: asyncpg decodes each value (a timestamp is
~6,000 instructions, the JSON metadata a call into Python), and the row and the GraphQL object
carry them all. A node type that registers how its GraphQL fields map to its model's
attributes (`register`) lets `node_columns` read, from the connection field's selection, the
attributes its rows must have; `page_args` puts them in `PageArgs.columns`, and the page
statement selects only those.

It errs on the side of reading more: fields under `@skip`/`@include` count whatever the
variables say, every fragment counts whatever its type condition, and a field the type did not
register (or anything else unexpected) means every column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    SelectionSetNode,
)


@dataclass(frozen=True)
class RowColumns:
    """A node type's rows: the attributes each GraphQL field reads, and those always read
    (its id, keys that resolvers or loaders use)."""

    fields: Mapping[str, tuple[str, ...]]
    always: tuple[str, ...]


_TYPES: dict[str, RowColumns] = {}
# id of the field nodes -> (the nodes, the columns); the nodes are kept so ids stay theirs.
_CACHE: dict[tuple[int, ...], tuple[tuple[Any, ...], tuple[str, ...] | None]] = {}
_CACHE_SIZE = 1024


def register(type_name: str, fields: Mapping[str, tuple[str, ...]], always: Iterable[str]) -> None:
    """Declare how the GraphQL type's fields (by GraphQL name) map to its rows' attributes."""
    _TYPES[type_name] = RowColumns(dict(fields), tuple(always))


def registered(type_name: str) -> RowColumns | None:
    return _TYPES.get(type_name)


def node_columns(info: Any) -> tuple[str, ...] | None:
    """The attributes the rows of this connection field's nodes need, or None for all of them
    (a node type that did not register, or a selection it cannot account for)."""
    raw = info._raw_info
    field_nodes = raw.field_nodes
    key = tuple(map(id, field_nodes))
    found = _CACHE.get(key)
    if found is not None and all(a is b for a, b in zip(found[0], field_nodes, strict=True)):
        return found[1]
    columns = _columns(raw.return_type, field_nodes, raw.fragments)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = (tuple(field_nodes), columns)
    return columns


def _columns(return_type: Any, field_nodes: Any, fragments: Any) -> tuple[str, ...] | None:
    connection = _named(return_type)
    if not isinstance(connection, GraphQLObjectType) or "nodes" not in connection.fields:
        return None
    node_type = _named(connection.fields["nodes"].type)
    spec = _TYPES.get(getattr(node_type, "name", ""))
    if spec is None:
        return None
    selected: set[str] = set()
    try:
        for node in field_nodes:
            _connection_fields(node.selection_set, fragments, selected)
    except LookupError:  # a fragment that is not there: let execution report it
        return None
    wanted = set(spec.always)
    for name in selected:
        if name == "__typename":
            continue
        columns = spec.fields.get(name)
        if columns is None:
            return None
        wanted.update(columns)
    return tuple(sorted(wanted))


def _connection_fields(
    selection_set: SelectionSetNode | None, fragments: Any, out: set[str]
) -> None:
    """Node fields selected under `nodes { … }` and `edges { node { … } }`."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name == "nodes":
                _node_fields(selection.selection_set, fragments, out)
            elif name == "edges":
                _edge_fields(selection.selection_set, fragments, out)
        else:
            _connection_fields(_fragment(selection, fragments), fragments, out)


def _edge_fields(selection_set: SelectionSetNode | None, fragments: Any, out: set[str]) -> None:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            if selection.name.value == "node":
                _node_fields(selection.selection_set, fragments, out)
        else:
            _edge_fields(_fragment(selection, fragments), fragments, out)


def _node_fields(selection_set: SelectionSetNode | None, fragments: Any, out: set[str]) -> None:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            out.add(selection.name.value)
        else:
            _node_fields(_fragment(selection, fragments), fragments, out)


def _fragment(selection: Any, fragments: Any) -> SelectionSetNode | None:
    if isinstance(selection, InlineFragmentNode):
        return selection.selection_set
    if isinstance(selection, FragmentSpreadNode):
        return fragments[selection.name.value].selection_set  # type: ignore[no-any-return]
    raise LookupError(type(selection).__name__)


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_
