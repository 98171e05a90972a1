"""Pages: Relay arguments (`PageArgs`, with the hard page-size cap), opaque cursors on ULID
ids, and the `Page` a resolver returns. The SQL that reads them is `resolvers/keyset.py`."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy import Label
from sqlalchemy.sql import FromClause
from sqlmodel import SQLModel

from gateway.errors import ValidationFailed

T = TypeVar("T")


# A column a `plain` page selects, labelled (with its model attribute's name): of any SQL type,
# as SQLAlchemy's mapper gives them.
PlainColumn = Label[Any]


_CURSOR_TAG = "c1:"


def encode_cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_TAG + item_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, field_name: str = "cursor") -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_CURSOR_TAG) or len(raw) > 64:
        raise ValidationFailed(f"Invalid {field_name}", field=field_name)
    return raw[len(_CURSOR_TAG) :]


class ExtraColumn(Hashable, Protocol):
    """A column the caller adds to a `plain` page's statement (`PageArgs.extra`), opaque here:
    the page selects the rows' keys and this column instead of the projected columns, and
    each item's last value is the column's (`Page.extra`). A row whose value is NULL means
    the caller cannot use it for that row: the page is read again without the extra column.
    Hashable: it is part of the page arguments and of the statement's cache key. The GraphQL
    engine's is a node's response object as JSON that the database writes
    (schema/engine/json_sql.py)."""

    @property
    def dialect(self) -> str:
        """The database dialect whose SQL the column is; on others it is not read."""
        ...

    def column(self, model: type[SQLModel]) -> PlainColumn:
        """The column for `model`'s rows (an SQL expression)."""
        ...

    def source(self, model: type[SQLModel]) -> FromClause:
        """What the page reads from for the column: `model`'s table, or it joined to what the
        column reads."""
        ...

    @property
    def ready(self) -> bool:
        """Whether the column may be read: every rule it shows things by is decided
        (`decide`); a page whose column is not ready reads its columns as usual."""
        ...

    def decide(self, rule: str, allowed: bool) -> ExtraColumn:
        """The column with `rule` decided for every row of this page: what it guards is shown
        (`allowed`) or null. A column that does not use the rule is itself."""
        ...


class PageArgs(NamedTuple):
    """Relay arguments, validated; hashable so a loader can batch parents sharing them (a
    named tuple: loaders hash their keys several times per parent, and a tuple hashes in C).

    `columns`: the model attributes a `plain` page's rows need (its id and parent column are
    always read), when the caller knows them, e.g. the fields a GraphQL query selects on the
    connection's nodes (`schema/engine/projection.py`); None reads every column. Rows of a
    projected page have only those attributes. `related`: relations the caller will read for
    every item (e.g. a member's user), which a loader may read in the same statement
    (`Joined`).
    `extra`: a column of the caller's that a `plain` page reads, with the rows' keys, instead
    of the columns (`ExtraColumn`, `Page.extra`), on the column's dialect; elsewhere
    `columns` are read as usual.
    """

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    columns: tuple[str, ...] | None = None
    related: tuple[str, ...] = ()
    extra: ExtraColumn | None = None

    @classmethod
    @functools.lru_cache(maxsize=1024)  # pure; a level's parents share their arguments
    def build(
        cls,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        default: int,
        maximum: int,
        columns: tuple[str, ...] | None = None,
        related: tuple[str, ...] = (),
        extra: ExtraColumn | None = None,
    ) -> PageArgs:
        if first is not None and last is not None:
            raise ValidationFailed("Pass either first or last, not both", field="first")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= maximum:
                raise ValidationFailed(f"{name} must be between 0 and {maximum}", field=name)
        if first is None and last is None:
            first = default
        return cls(
            first=first,
            after=decode_cursor(after, field_name="after") if after else None,
            last=last,
            before=decode_cursor(before, field_name="before") if before else None,
            columns=columns,
            related=related,
            extra=extra,
        )

    def deciding(self, rule: str, allowed: bool | None) -> PageArgs:
        """These arguments with the extra column's `rule` decided for every row of the page
        (`ExtraColumn.decide`); None (it depends on the row) leaves it undecided."""
        if self.extra is None or allowed is None:
            return self
        return self._replace(extra=self.extra.decide(rule, allowed))

    @property
    def limit(self) -> int:
        return self.last if self.last is not None else (self.first or 0)

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass
class Page(Generic[T]):
    """A page of items (each with an `id`); cursors are encoded when asked for: a REST page
    sends only its last, a connection its first and last unless edges are selected."""

    items: list[T]
    has_next_page: bool = False
    has_previous_page: bool = False
    # The items are rows of their keys (id, parent id) and, last, the extra column's value
    # (`PageArgs.extra`), not of the model's columns.
    extra: bool = False

    @property
    def cursors(self) -> list[str]:
        return [encode_cursor(item.id) for item in self.items]  # type: ignore[attr-defined]

    @property
    def start_cursor(self) -> str | None:
        return encode_cursor(self.items[0].id) if self.items else None  # type: ignore[attr-defined]

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.items[-1].id) if self.items else None  # type: ignore[attr-defined]

    @property
    def next_cursor(self) -> str | None:
        return self.end_cursor if self.has_next_page else None

    @classmethod
    def of_rows(cls, rows: list[T], args: PageArgs, extra: bool = False) -> Page[T]:
        """The page of `rows`, read one past `args.limit` (in the read order): the extra row
        only tells whether there is more."""
        more = len(rows) > args.limit
        rows = rows[: args.limit]
        if args.backwards:
            rows.reverse()
            return cls(
                rows, has_next_page=args.before is not None, has_previous_page=more, extra=extra
            )
        return cls(rows, has_next_page=more, has_previous_page=args.after is not None, extra=extra)


class GuessedPage(NamedTuple):
    """A page read ahead (schema/declare.py `reads_ahead`) with arguments that guess what the
    caller's access will decide (`members_page_ahead`): when the guess is wrong the field
    reads the page its access decides, and this one is shown to no one."""

    page: Awaitable[Page[Any]]
