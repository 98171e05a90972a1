"""GraphQL objects from rows: a type's fields read from the attributes of the same name."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

if TYPE_CHECKING:
    from schema.declare import RecordReaders

T = TypeVar("T")
M = TypeVar("M")

# Per strawberry type: the names its constructor takes (resolver fields take none), and
# whether it keeps its row (`_model`).
_FIELDS: dict[type, tuple[tuple[str, ...], bool]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, ...], bool]:
    found = _FIELDS.get(cls)
    if found is None:
        fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
        found = _FIELDS[cls] = (tuple(n for n in fields if n != "_model"), "_model" in fields)
    return found


def stored_fields(cls: type) -> tuple[str, ...]:
    """The fields of the strawberry type `cls` that `from_row` reads from a row, in order."""
    return _fields_of(cls)[0]


def from_row(cls: type[T], row: object, /, **values: object) -> T:
    """An object of the strawberry type `cls`: each field the `values` do not give is `row`'s
    attribute of the same name (an id, a timestamp, a string: what GraphQL shows as stored),
    and a `_model` field keeps `row` itself. Give the values that convert (enums, an
    optional id that is empty, a nested object)."""
    names, keeps_row = _fields_of(cls)
    kwargs: dict[str, object] = {name: getattr(row, name) for name in names if name not in values}
    if keeps_row:
        kwargs["_model"] = row
    return cls(**kwargs, **values)


def from_readers(cls: type[T], readers: RecordReaders, record: object, /) -> T:
    """An object of the strawberry type `cls` from an ORM instance or a read-only row, which
    may hold only the columns the query selected (schema/declare.py): the fields those feed
    are set, the others left unset. Filled in one dict by `readers`, without the dataclass
    `__init__` and the identity calls of the NewTypes, since a page builds up to a hundred
    (tests/engine/test_graphql_execution.py holds it equal to the constructor)."""
    found = cls.__new__(cls)
    found.__dict__ = readers[type(record)](record)
    return found


class FromReaders(Generic[M]):
    """A node type on hot pages, built from an ORM instance or a read-only (possibly projected)
    row of `M` by its `readers`, declared below the type because they read its fields:
    `Member.readers = declare.RecordReaders([...])`."""

    readers: ClassVar[RecordReaders]

    @classmethod
    def from_model(cls, record: M | Any) -> Self:
        """From an ORM instance or a read-only row (`from_readers`)."""
        return from_readers(cls, cls.readers, record)
