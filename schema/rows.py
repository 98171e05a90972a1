"""GraphQL objects from rows: a type's fields read from the attributes of the same name."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

T = TypeVar("T")

# Per strawberry type: the names its constructor takes (resolver fields take none), and
# whether it keeps its row (`_model`).
_FIELDS: dict[type, tuple[tuple[str, ...], bool]] = {}


def from_row(cls: type[T], row: object, /, **values: object) -> T:
    """An object of the strawberry type `cls`: each field the `values` do not give is `row`'s
    attribute of the same name (an id, a timestamp, a string: what GraphQL shows as stored),
    and a `_model` field keeps `row` itself. Give the values that convert (enums, an
    optional id that is empty, a nested object)."""
    found = _FIELDS.get(cls)
    if found is None:
        fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
        found = _FIELDS[cls] = (tuple(n for n in fields if n != "_model"), "_model" in fields)
    names, keeps_row = found
    kwargs: dict[str, object] = {name: getattr(row, name) for name in names if name not in values}
    if keeps_row:
        kwargs["_model"] = row
    return cls(**kwargs, **values)
