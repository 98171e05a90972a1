"""A GraphQL node's response object written as JSON text by PostgreSQL, in the page statement.

`JsonNodes` is what a page hands over as its extra column (resolvers/pagination.py,
`ExtraColumn`): the page selects each row's keys and this expression instead of the node's
columns, and the connection puts the text in the response as it is (`orjson.Fragment`). The
text is the bytes orjson writes for the objects, built by the cheapest exact expression per
value (`JSON_LEAVES`), with a node's to-one objects (`JsonObject`) LEFT JOINed to the page and
written inside, and its connections (`JsonPage`) as a correlated LATERAL page aggregated inside
(null where the page's loader decided its rule against the viewer); which selections qualify
is decided by schema/engine/projection.py.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from typing import NamedTuple, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Label,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import aliased
from sqlalchemy.sql import FromClause

from gateway.db.models import UTCDateTime

# An SQL expression of the statement, whatever the Python type of its values.
Sql: TypeAlias = ColumnElement[object]


class JsonNodes(NamedTuple):
    """A connection's nodes as JSON that PostgreSQL builds (`PageArgs.extra`): the node type's
    name, and per response key, in response order, the model attribute whose column gives its
    value (None: the key is `__typename`, the type's name; a `JsonObject`: a to-one object
    written inside). Made from a compiled plan (compiler.py) by `projection.json_nodes`, only
    for a selection whose every field is a plain column that serializes in SQL exactly as in
    Python, or such an object: no node can have an error. Two kinds of field hold only for
    some values, and are checked row by row: `enums` (attribute -> (column value, GraphQL
    name) pairs) are written by a CASE, and `int32` attributes are 64-bit columns shown as
    GraphQL `Int`s; a row with a value outside them (its own or its objects') has no JSON, and
    its page is read again as objects, which report the field's error as before
    (`pages_by_parent`)."""

    type_name: str
    fields: tuple[tuple[str, str | JsonObject | JsonPage | None], ...]
    enums: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    int32: tuple[str, ...] = ()
    # The rules of the pages inside (`JsonPage.rule`) decided for every node: (rule, allowed).
    decisions: tuple[tuple[str, bool], ...] = ()

    @property
    def dialect(self) -> str:
        """The SQL is PostgreSQL's (`to_json`, `to_char`, `isfinite`)."""
        return "postgresql"

    @property
    def ready(self) -> bool:
        """Every rule of the pages inside is decided (resolvers/pagination.py `ExtraColumn`)."""
        decided = {rule for rule, _ in self.decisions}
        return all(rule in decided for rule in _rules(self))

    def decide(self, rule: str, allowed: bool) -> JsonNodes:
        return _decided(self, rule, allowed)

    @property
    def limits(self) -> tuple[int, ...]:
        """The page sizes (`first`) of the pages inside, checked against the page-size limits
        before they are offered (run.py)."""
        return tuple(page.limit for page in _pages(self))

    def column(self, model: type) -> Label[object]:
        """The page's extra column (resolvers/pagination.py `ExtraColumn`)."""
        return json_page(model, self)[1]

    def source(self, model: type) -> FromClause:
        """What the page reads from: `model`'s table, its objects' rows LEFT JOINed."""
        return json_page(model, self)[0]


def _pages(nodes: JsonNodes) -> Iterator[JsonPage]:
    for _, value in nodes.fields:
        if isinstance(value, JsonObject):
            yield from _pages(value.nodes)
        elif isinstance(value, JsonPage):
            yield value
            yield from _pages(value.nodes)


@functools.lru_cache(maxsize=256)
def _rules(nodes: JsonNodes) -> frozenset[str]:
    return frozenset(page.rule for page in _pages(nodes) if page.rule is not None)


@functools.lru_cache(maxsize=256)
def _decided(nodes: JsonNodes, rule: str, allowed: bool) -> JsonNodes:
    """`JsonNodes.decide`, once per plan and decision (a page's loader decides per request)."""
    if rule not in _rules(nodes):
        return nodes
    kept = tuple((r, a) for r, a in nodes.decisions if r != rule)
    return nodes._replace(decisions=tuple(sorted((*kept, (rule, allowed)))))


class JsonObject(NamedTuple):
    """A to-one object inside a node's JSON (schema/declare.py `ToOne`): the `model` row whose
    `id` is the node's `foreign_key` attribute, written as `nodes`; null when there is none,
    or when one of its `unless` columns is set."""

    model: type
    foreign_key: str
    unless: tuple[str, ...]
    nodes: JsonNodes


class JsonPage(NamedTuple):
    """A connection inside a node's JSON (schema/declare.py `ToMany`): the first `limit` rows
    of `model` whose `keys` attributes equal the node's ((row attribute, node attribute)
    pairs), by id (`newest_first` or oldest first), written as the connection object
    `fields` (response key, "nodes" or None for `__typename`, the connection's `type_name`),
    its nodes as `nodes`; null where its `rule` is decided against (`JsonNodes.decisions`).
    NULL when a node's checked value is out of range."""

    model: type
    keys: tuple[tuple[str, str], ...]
    newest_first: bool
    limit: int
    rule: str | None
    type_name: str
    fields: tuple[tuple[str, str | None], ...]
    nodes: JsonNodes


# SQL kinds of the columns a node's JSON may read, and the GraphQL leaf types each gives
# exactly: text for String and ID, 32-bit integers for Int, any integer for BigInt (and for Int
# within 32 bits, `JsonNodes.int32`), booleans, and UTC timestamps for DateTime (formatted as
# `format_datetime` does, gateway/timestamps.py); enums from text, `JsonNodes.enums`.
JSON_LEAVES: dict[str, frozenset[str]] = {
    "text": frozenset({"String", "ID"}),
    "integer": frozenset({"Int", "BigInt"}),
    "bigint": frozenset({"BigInt", "Int"}),
    "boolean": frozenset({"Boolean"}),
    "timestamp": frozenset({"DateTime"}),
}


def sql_kind(type_: object) -> str | None:
    """The `JSON_LEAVES` kind of a column type, or None."""
    if isinstance(type_, UTCDateTime):
        return "timestamp"
    if isinstance(type_, BigInteger):
        return "bigint"
    if isinstance(type_, Integer):  # not SmallInteger's subclasses alone: any 32-bit integer
        return "integer"
    if isinstance(type_, Boolean):
        return "boolean"
    if isinstance(type_, String) and not isinstance(type_, SAEnum):  # AutoString, Text, …
        return "text"
    return None


NODE_JSON = "node_json"


@functools.lru_cache(maxsize=256)
def json_page(model: type, nodes: JsonNodes) -> tuple[FromClause, Label[object]]:
    """What a page of `model` rows reads `nodes` from (the model's table, with a LEFT JOIN per
    to-one object), and their response objects as JSON text built by PostgreSQL, labelled
    `node_json`: the keys in order, each value by `to_json`, the text as compact as orjson's
    (the same bytes as the objects' response). Values as their GraphQL types serialize them
    (`JSON_LEAVES`): text, numbers and booleans as they are, enums by name, timestamps as
    `format_datetime` writes them (infinite ones as Python's largest and smallest datetimes,
    which is what they are read as); to-one objects as their own JSON, or null."""
    joins: list[tuple[object, ColumnElement[bool]]] = []
    written = _object_json(model, nodes, itertools.count(1), joins, dict(nodes.decisions))
    source: FromClause = sa_inspect(model).local_table
    for alias, condition in joins:
        source = source.outerjoin(sa_inspect(alias).selectable, condition)
    return source, written.label(NODE_JSON)


def json_column(model: type, nodes: JsonNodes) -> Label[object]:
    """`json_page`'s column (it reads from `json_page`'s source)."""
    return json_page(model, nodes)[1]


def _object_json(
    source: object,
    nodes: JsonNodes,
    aliases: Iterator[int],
    joins: list[tuple[object, ColumnElement[bool]]],
    decisions: dict[str, bool],
) -> Sql:
    """The JSON text of `nodes` on `source` (the page's model, or an alias of a related
    model joined to it: `joins` gets those); NULL when a checked value is outside its range.
    `decisions`: the rules of the pages inside (`JsonNodes.decisions`)."""
    parts: list[Sql] = []
    enums = dict(nodes.enums)
    for i, (key, attribute) in enumerate(nodes.fields):
        opening = "{" if i == 0 else ","
        parts.append(_sql_text(f'{opening}"{_checked(key)}":'))
        if attribute is None:
            parts.append(_sql_text(f'"{_checked(nodes.type_name)}"'))
        elif isinstance(attribute, JsonObject):
            parts.append(_related_json(source, attribute, aliases, joins, decisions))
        elif isinstance(attribute, JsonPage):
            parts.append(_page_json(source, attribute, aliases, decisions))
        else:
            parts.append(_json_value(getattr(source, attribute), enums.get(attribute)))
    parts.append(_sql_text("}"))
    written: Sql = functools.reduce(lambda a, b: a.op("||")(b), parts)
    guards = [
        *(
            _or_null(getattr(source, a), getattr(source, a).in_([_sql_name(v) for v, _ in t]))
            for a, t in nodes.enums
        ),
        *(
            _or_null(
                getattr(source, a),
                getattr(source, a).between(
                    literal_column(str(-(2**31))), literal_column(str(2**31 - 1))
                ),
            )
            for a in nodes.int32
        ),
    ]
    if guards:
        written = case((and_(*guards), written))
    return written


def _related_json(
    source: object,
    related: JsonObject,
    aliases: Iterator[int],
    joins: list[tuple[object, ColumnElement[bool]]],
    decisions: dict[str, bool],
) -> Sql:
    """A to-one object's JSON, from its row LEFT JOINed to the node's (by primary key, and
    only while its `unless` columns are NULL): `null` when no row joined. An object whose
    checked value is out of range is NULL, and so is the node's JSON."""
    # The related model's attributes, on an alias of its table (read by name: `getattr`).
    alias: object = aliased(related.model, name=f"_json_{next(aliases)}")
    key = _column(alias, "id")
    condition = and_(
        key == _column(source, related.foreign_key),
        *(_column(alias, column).is_(None) for column in related.unless),
    )
    joins.append((alias, condition))
    inner = _object_json(alias, related.nodes, aliases, joins, decisions)
    return case((key.is_(None), _sql_text("null")), else_=inner)


def _page_json(
    source: object, page: JsonPage, aliases: Iterator[int], decisions: dict[str, bool]
) -> Sql:
    """A connection's JSON inside its node's: its rows' JSON (their own objects LEFT JOINed)
    in a LATERAL subquery correlated to the node's row, ordered and limited as the page
    loader reads them, aggregated in that order; `null` where its rule is decided against,
    NULL when a row's JSON is NULL (a checked value out of range)."""
    if page.rule is not None and not decisions[page.rule]:
        return _sql_text("null")
    alias: object = aliased(page.model, name=f"_json_{next(aliases)}")
    joins: list[tuple[object, ColumnElement[bool]]] = []
    node = _object_json(alias, page.nodes, aliases, joins, decisions)
    rows: FromClause = sa_inspect(alias).selectable
    for joined, condition in joins:
        rows = rows.outerjoin(sa_inspect(joined).selectable, condition)
    ids = _column(alias, "id")
    order = ids.desc() if page.newest_first else ids.asc()
    listed = (
        select(node.label("node"), ids.label("id"))
        .select_from(rows)
        .where(*(_column(alias, row) == _column(source, parent) for row, parent in page.keys))
        .order_by(order)
        .limit(page.limit)
        # The node's row is the enclosing page's (two levels up: not correlated by default).
        .correlate(sa_inspect(source).selectable)
        .lateral(f"_json_{next(aliases)}")
    )
    listed_order = listed.c.id.desc() if page.newest_first else listed.c.id.asc()
    nodes: Sql = func.coalesce(
        func.string_agg(listed.c.node, aggregate_order_by(literal_column("','"), listed_order)),
        _sql_text(""),
    )
    parts: list[Sql] = []
    for i, (key, field) in enumerate(page.fields):
        parts.append(_sql_text(f'{"{" if i == 0 else ","}"{_checked(key)}":'))
        if field is None:
            parts.append(_sql_text(f'"{_checked(page.type_name)}"'))
        else:
            parts.extend((_sql_text("["), nodes, _sql_text("]")))
    parts.append(_sql_text("}"))
    written: Sql = functools.reduce(lambda a, b: a.op("||")(b), parts)
    # A NULL node (out of range) is skipped by string_agg: the count tells.
    whole = case((func.count() == func.count(listed.c.node), written))
    found: Sql = select(whole).select_from(listed).scalar_subquery()
    return found


def _column(source: object, attribute: str) -> Sql:
    """A model's (or alias's) attribute as SQL."""
    found: Sql = getattr(source, attribute)
    return found


def _or_null(column: Sql, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return or_(column.is_(None), condition) if column.nullable else condition


def _sql_name(name: str) -> Sql:
    """A GraphQL name or an enum's value (checked: letters, digits, underscores) as an SQL
    string literal."""
    return _sql_text(_checked(name))


def _checked(name: str) -> str:
    if not SQL_NAME.fullmatch(name):
        raise ValueError(f"not a name: {name!r}")
    return name


def _sql_text(text: str) -> Sql:
    """A text literal of our own: names checked by `_checked` and JSON punctuation."""
    assert "'" not in text and "\\" not in text
    return literal_column(f"'{text}'", Text)


SQL_NAME = re.compile(r"[_A-Za-z0-9]+")


def _json_value(column: Sql, enum: tuple[tuple[str, str], ...] | None) -> Sql:
    """A column's value as JSON text, by the cheapest expression that writes it exactly (text
    through `to_json` for its escapes; numbers and booleans as their text; enum names and
    timestamps as literals or formatted, which need no escapes); a NULL as `null`."""
    kind = sql_kind(column.type)
    value: Sql
    if enum is not None:
        value = case(*[(column == _sql_name(v), _sql_text(f'"{_checked(n)}"')) for v, n in enum])
    elif kind == "timestamp":
        value = _rfc3339(column)
    elif kind == "text":
        value = cast(func.to_json(column), Text)
    else:  # integers, booleans: their text is their JSON
        value = cast(column, Text)
    return func.coalesce(value, _sql_text("null")) if column.nullable else value


def _rfc3339(column: Sql) -> Sql:
    """`format_datetime` in SQL, quoted; infinite timestamps as asyncpg reads them."""
    utc = column.op("AT TIME ZONE")(literal_column("'UTC'"))
    epoch: Sql = literal_column("'epoch'::timestamptz")
    return case(
        (
            func.isfinite(column),
            # `\"` is a double quote in to_char's output, `"T"` a literal T.
            func.to_char(utc, literal_column("""'\\"YYYY-MM-DD"T"HH24:MI:SS.US"Z\\"'""")),
        ),
        (column > epoch, _sql_text('"9999-12-31T23:59:59.999999Z"')),
        (column < epoch, _sql_text('"0001-01-01T00:00:00.000000Z"')),
    )
