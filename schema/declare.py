"""What domain modules declare for the GraphQL engine, and what they ask of it.

Domain modules (schema/user.py, usage.py, member.py, ...) never import the engine
(schema/engine/; an import-linter contract holds it). They declare here, in plain data, what
the engine may use to read less and do less, and the engine reads these declarations:

- `RecordReaders`: how a GraphQL object's attributes come from a record (an ORM instance, a
  whole row, or a row of only the columns a query selects), for the type's `from_model`.
- `node_type`: which columns each GraphQL field of a node type reads, which relation a field
  reads (a page loader may join it), the model, its enum attributes, and its to-one object
  fields that are a plain join (`ToOne`) and connection fields that are a plain page
  (`ToMany`). From these the engine projects a connection's page onto the columns the query
  selects, or has PostgreSQL write the nodes as JSON, their to-one objects and their pages
  inside (schema/engine/projection.py).
- `batched` / `resolve_one`: the batch form of a relation field under a list.
- `page_selection(info)`: what a connection field's page should read for this query, answered
  by the engine through the schema it built (a `SelectionSource`); any other schema reads
  whole rows.
- `by_id` / `reads_ahead`: reads started before access is decided. A field that shows an
  object found by an argument (`organization(id:)`, `node(id:)`) declares which type and id
  it shows (`by_id`); a field of that type whose read needs only the object's id declares
  that read (`reads_ahead`). The compiled executor starts the selected fields' reads when it
  calls the by-id field, so that on PostgreSQL they go in the statement of the caller's
  membership (gateway/db/coalesce.py) instead of a round trip after it. A read ahead shows
  nothing: the field still runs after its parent, decides access as always, and then finds
  the read in its loader's cache (`GATEWAY_READ_AHEAD`).

Batch forms: a relation field below a list (`Member.user` under `members`, `Member.usages`) is
resolved once per parent by graphql-core: a coroutine, a task, a DataLoader future and a
completion each, for each of the 20 members of a dashboard. Its batch form takes the level's
parents at once:

    async def users_of(members: Sequence[Member], info: Info) -> list[User | None]: ...

    @strawberry.field
    @batched(users_of)
    async def user(self, info: Info) -> User | None:
        return await resolve_one(users_of, self, info)

The batch form takes the parents as its first argument and the field's own arguments (and
`info`) by the names the resolver gives them; it returns one value per parent, in order, where
an `Exception` instance is that parent's error. The compiled executor calls it once with all
the parents of a level; the standard executor calls the resolver, which is the batch form on
one parent, so both run the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Never, TypeVar

from strawberry.types import Info

from resolvers.pagination import ExtraColumn

# -- records ------------------------------------------------------------------------------------

# A conversion of a record's attribute, whatever the column's type (`Never`: nothing here calls
# it but the generated reader).
Conversion = Callable[[Never], object] | None
# A record -> a GraphQL object's attributes.
Reader = Callable[[object], dict[str, object]]


class RecordReaders(dict[type, Reader]):
    """record type -> a function giving a GraphQL object's attributes from a record of that
    type, for `from_model`: every attribute from an ORM instance or a whole row, those its
    columns feed from a projected row. `fields` are (attribute, the record's attribute it
    comes from, conversion or None). Looked up by `readers[type(record)](record)`: the
    function is made the first time a type is seen."""

    def __init__(self, fields: Sequence[tuple[str, str, Conversion]]) -> None:
        super().__init__()
        self.fields = tuple(fields)

    def __missing__(self, record_type: type) -> Reader:
        columns = getattr(record_type, "_fields", None)  # a row (named tuple) or an ORM model
        kept = [f for f in self.fields if columns is None or f[1] in columns]
        # One dict display, generated once per record type (a third of the cost of
        # `dict(zip(names, attrgetter(...)(record)))` and a loop over the conversions). Only
        # our own identifiers go into the source: attribute and column names are checked to be
        # identifiers, conversions are referenced by name from the namespace.
        namespace: dict[str, Any] = {}  # the generated code's globals, as `exec` takes them
        items = []
        for i, (name, source, convert) in enumerate(kept):
            if not (name.isidentifier() and source.isidentifier()):
                raise ValueError(f"not an identifier: {name!r} or {source!r}")
            value = f"record.{source}"
            if convert is not None:
                namespace[f"c{i}"] = convert
                value = f"c{i}({value})"
            items.append(f"{name!r}: {value}")
        items.append("'_model': record")
        source_code = "def read(record):\n    return {" + ", ".join(items) + "}\n"
        exec(compile(source_code, f"<record reader {record_type.__name__}>", "exec"), namespace)
        read: Reader = namespace["read"]
        self[record_type] = read
        return read


# -- node types ---------------------------------------------------------------------------------


class ToOne(NamedTuple):
    """A to-one object field that is nothing but a join (`node_type(objects=…)`): its value is
    the `type_name` object (a node type declared with its model) of the row whose `id` is this
    row's `foreign_key`, or null when there is no such row or when any of its `unless` columns
    is set (a soft-deleted row: `User.unless_deleted`). The declaration is a promise about the
    field's resolver: it checks no permission and shows nothing else, so PostgreSQL may write
    the object inside the node's JSON (a correlated subquery) instead of calling it. A field
    whose resolver decides who may see it must not be declared."""

    type_name: str
    foreign_key: str
    unless: tuple[str, ...] = ()


class ToMany(NamedTuple):
    """A connection field of a node type that is nothing but a keyset page of `type_name`
    nodes (a node type declared with its model) whose `keys` attributes equal the node's
    (pairs of (the page's row attribute, the node's row attribute)), by id, newest first or
    oldest first (`newest_first`), as the field's page loader reads it. Who may see the page
    is `rule`'s decision (None: anyone who sees the node), made for a page of nodes by the
    loader of that page, before its statement (`PageArgs.deciding`): the engine may then have
    PostgreSQL write the page inside the node's JSON, and keeps the objects where the rule is
    not decided. The declaration is a promise about the field's resolver: it shows that page,
    or null where the rule refuses it, and checks nothing else."""

    type_name: str
    keys: tuple[tuple[str, str], ...]
    newest_first: bool
    rule: str | None = None


@dataclass(frozen=True)
class NodeType:
    """A node type's declaration (`node_type`)."""

    readers: RecordReaders
    always: tuple[str, ...]
    others: Mapping[str, tuple[str, ...] | None]
    related: Mapping[str, str] = field(default_factory=dict)
    model: type | None = None
    enums: Mapping[str, type] = field(default_factory=dict)
    objects: Mapping[str, ToOne] = field(default_factory=dict)
    pages: Mapping[str, ToMany] = field(default_factory=dict)


# GraphQL type name -> its declaration; read by schema/engine/projection.py.
NODE_TYPES: dict[str, NodeType] = {}


def node_type(
    type_name: str,
    readers: RecordReaders,
    always: Iterable[str],
    others: Mapping[str, tuple[str, ...] | None],
    related: Mapping[str, str] | None = None,
    model: type | None = None,
    enums: Mapping[str, type] | None = None,
    objects: Mapping[str, ToOne] | None = None,
    pages: Mapping[str, ToMany] | None = None,
) -> None:
    """Declare how the GraphQL type's fields map to its rows' attributes: each field its
    `readers` fill reads the columns they fill it from; `others` (by GraphQL name) are the
    fields with resolvers, with the columns they read (None: the whole row); `always` are read
    whatever the query selects (the id, keys that resolvers or loaders use); `related` maps a
    field to the relation it reads for every node (`PageArgs.related`). With the `model`, the
    attributes that are a column's value unconverted may be written as JSON by PostgreSQL; so
    may the attributes in `enums`, which their readers convert to that enum by value
    (`scalars.enum_of`), the to-one object fields in `objects` (by GraphQL name,
    `ToOne`), and the connection fields in `pages` (`ToMany`)."""
    NODE_TYPES[type_name] = NodeType(
        readers,
        tuple(always),
        dict(others),
        dict(related or {}),
        model,
        dict(enums or {}),
        dict(objects or {}),
        dict(pages or {}),
    )


# -- what a connection's page reads -----------------------------------------------------------


class NodeSelection(NamedTuple):
    """What a connection's nodes need: attributes (None: all), relations to join, and a column
    the page may read instead of the attributes (`PageArgs.extra`); and whether the query
    selects the connection's `totalCount` (False: not known to), whose count then starts with
    the page's read rather than after it."""

    columns: tuple[str, ...] | None
    related: tuple[str, ...]
    extra: ExtraColumn | None = None
    counted: bool = False


EVERYTHING = NodeSelection(None, ())


class SelectionSource:
    """A schema that knows what a connection field's page should read: the engine's
    (schema/engine/prepared.py `PreparedSchema`). This one reads everything."""

    def page_selection(self, info: Info) -> NodeSelection:
        return EVERYTHING


def page_selection(info: Info) -> NodeSelection:
    """What the page of this connection field should read for the query being executed."""
    source = info.schema
    return source.page_selection(info) if isinstance(source, SelectionSource) else EVERYTHING


# -- batch forms --------------------------------------------------------------------------------

BATCH_ATTRIBUTE = "__graphql_batch__"

F = TypeVar("F", bound=Callable[..., object])
V = TypeVar("V")
# A batch form: the parents (and the field's arguments) -> one value or error per parent.
Batch = Callable[..., Awaitable[Sequence[object]]]


def batched(batch: Batch) -> Callable[[F], F]:
    """Declare `batch` as the batch form of the decorated resolver."""

    def mark(resolver: F) -> F:
        setattr(resolver, BATCH_ATTRIBUTE, batch)
        return resolver

    return mark


def batch_form(resolver: object) -> Batch | None:
    found: Batch | None = getattr(resolver, BATCH_ATTRIBUTE, None)
    return found


async def resolve_one(
    batch: Callable[..., Awaitable[Sequence[V | Exception]]],
    parent: object,
    *args: object,
    **kwargs: object,
) -> V:
    """The batch form on one parent: its value, or its error raised."""
    values = await batch([parent], *args, **kwargs)
    if len(values) != 1:
        raise TypeError(f"{batch.__qualname__} returned {len(values)} values for one parent")
    value = values[0]
    if isinstance(value, Exception):
        raise value
    return value


# -- reads ahead --------------------------------------------------------------------------------

BY_ID_ATTRIBUTE = "__graphql_by_id__"
AHEAD_ATTRIBUTE = "__graphql_ahead__"

# What a by-id field shows when it is not null: its arguments (by the resolver's names) -> the
# object's GraphQL type name and id, or None when the arguments name none.
Target = Callable[[Mapping[str, object]], "tuple[str, str] | None"]
# A field's read ahead: (the id of the object it is a field of, the field's arguments and
# `info` by the resolver's names) -> the read, started (a loader's future), or None. It must
# decide nothing and raise nothing: whatever it reads is shown only by the field itself.
Ahead = Callable[..., "Awaitable[object] | None"]


def by_id(target: Target) -> Callable[[F], F]:
    """Declare that the decorated resolver shows, when not null, the object `target` names."""

    def mark(resolver: F) -> F:
        setattr(resolver, BY_ID_ATTRIBUTE, target)
        return resolver

    return mark


def argument_id(type_name: str, argument: str = "id") -> Target:
    """The target of a field that shows the `type_name` whose id is its argument."""

    def target(arguments: Mapping[str, object]) -> tuple[str, str] | None:
        value = arguments.get(argument)
        return (type_name, value) if isinstance(value, str) else None

    return target


def by_id_form(resolver: object) -> Target | None:
    found: Target | None = getattr(resolver, BY_ID_ATTRIBUTE, None)
    return found


def reads_ahead(ahead: Ahead) -> Callable[[F], F]:
    """Declare `ahead` as the read of the decorated resolver that may start from its parent's
    id alone, before its parent is shown."""

    def mark(resolver: F) -> F:
        setattr(resolver, AHEAD_ATTRIBUTE, ahead)
        return resolver

    return mark


def ahead_form(resolver: object) -> Ahead | None:
    found: Ahead | None = getattr(resolver, AHEAD_ATTRIBUTE, None)
    return found
