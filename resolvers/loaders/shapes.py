"""The shapes a loader takes (a row by key, rows by key, a page per parent, a count per key),
each declared once per (entity, key) with its statements and made per request by `Loaders`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import Mapped
from sqlmodel import SQLModel

from gateway.db.expressions import one_of
from gateway.db.session import fetch_rows, orm_session
from resolvers.batching import BatchLoader
from resolvers.keyset import (
    Joined,
    ParentOf,
    attribute,
    pages_by_parent,
    plain_columns,
    reads_extra,
)
from resolvers.pagination import Page, PageArgs

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

K = TypeVar("K", bound=Hashable)
M = TypeVar("M", bound=SQLModel)
V = TypeVar("V")

# Conditions a loader adds to its key's: module constants (no bound values; a constant of
# ours is written into the SQL, `gateway.db.expressions.constant`).
Where = Sequence[ColumnElement[bool]]
# Keys of a page loader: the parent's id and the page's arguments.
PageKey = tuple[str, PageArgs]


def attribute_name(column: Mapped[object]) -> str:
    """The model attribute that `column` is (`col(User.id)` → "id")."""
    return attribute(column).key


class RowByKey(Generic[K, M]):
    """key → the one ORM row of `model` whose `column` equals it (or None): for rows that may
    be modified. Its two statements are built once, here (building one costs more than running
    it); the key is a bound parameter."""

    def __init__(self, model: type[M], column: Mapped[K], where: Where = ()) -> None:
        self.key = attribute_name(column)
        self.one = select(model).where(column == bindparam("_key"), *where)
        self.many = select(model).where(one_of(column, "_keys"), *where)

    def __call__(self, loaders: Loaders) -> BatchLoader[K, M | None]:
        db = loaders.db

        async def batch(keys: list[K]) -> list[M | None]:
            # One key (the common case on REST routes): `=` rather than an expanding IN.
            if len(keys) == 1:
                result = await orm_session(db).execute(self.one, {"_key": keys[0]})
            else:
                result = await orm_session(db).execute(self.many, {"_keys": keys})
            found = {getattr(row, self.key): row for row in result.scalars()}
            return [found.get(key) for key in keys]

        return BatchLoader(batch)


class PlainRowByKey(Generic[K, M]):
    """key → the row of `model` whose `column` equals it, as a read-only named tuple with the
    model's attribute names (typed as the model), or None: for rows that are only shown
    (several times cheaper to load than ORM instances).

    `column` may be of another table that `where` joins (an account's organization for its
    subscription): the row then carries the key as `by_key` too."""

    def __init__(self, model: type[M], column: Mapped[K], where: Where = ()) -> None:
        columns = plain_columns(model)
        if attribute(column).class_ is model:
            self.key = attribute_name(column)
        else:
            self.key = "by_key"
            columns = (*columns, attribute(column).label(self.key))
        self.one = select(*columns).where(column == bindparam("_key"), *where)
        self.many = select(*columns).where(one_of(column, "_keys"), *where)

    def __call__(self, loaders: Loaders) -> BatchLoader[K, M | None]:
        db = loaders.db

        async def batch(keys: list[K]) -> list[M | None]:
            if len(keys) == 1:
                rows = await fetch_rows(db, self.one, {"_key": keys[0]})
            else:
                rows = await fetch_rows(db, self.many, {"_keys": keys})
            found = {getattr(row, self.key): row for row in rows}
            return [found.get(key) for key in keys]

        return BatchLoader(batch)


class CountByKey(Generic[K]):
    """key → how many rows of `model` (matching `where`) have it in `column`."""

    def __init__(self, model: type[SQLModel], column: Mapped[K], where: Where = ()) -> None:
        self.stmt = (
            select(column, func.count())
            .select_from(model)
            .where(one_of(column, "_keys"), *where)
            .group_by(column)
        )

    def __call__(self, loaders: Loaders) -> BatchLoader[K, int]:
        db = loaders.db

        async def batch(keys: list[K]) -> list[int]:
            rows = await fetch_rows(db, self.stmt, {"_keys": keys})
            counts: dict[K, int] = {key: n for key, n in rows}
            return [int(counts.get(key, 0)) for key in keys]

        return BatchLoader(batch)


class LatestIdByKey(Generic[K]):
    """key → the id of the newest row (ids sort by creation time) having it in `column`, or
    None; `id_column` is that table's id."""

    def __init__(self, column: Mapped[K], id_column: Mapped[str]) -> None:
        self.stmt = (
            select(column, func.max(id_column)).where(one_of(column, "_keys")).group_by(column)
        )

    def __call__(self, loaders: Loaders) -> BatchLoader[K, str | None]:
        db = loaders.db

        async def batch(keys: list[K]) -> list[str | None]:
            rows = await fetch_rows(db, self.stmt, {"_keys": keys})
            latest: dict[K, str] = {key: found for key, found in rows}
            return [latest.get(key) for key in keys]

        return BatchLoader(batch)


# A relation a page may read with its items: how to join its row, and the loader it primes.
# Of any model: a page's relations are of different models (`Joined[User]`, ...).
Related = tuple[Joined[Any], Callable[["Loaders"], BatchLoader[str, Any]]]


class PageByParent(Generic[M]):
    """(parent id, PageArgs) → Page: parents sharing the same arguments load in one query.

    `plain`: the items are read-only rows (typed as the model), not ORM instances.
    `related` (plain pages): relation name → (how to join its row, the by-id loader to prime
    with it); a page whose `PageArgs.related` names one reads it in the same statement.
    `parent_of`: keys are not `column` values but what maps to one (see `pages_by_parent`);
    each key's page is its own statement. `owners` with it, the name of a `Loaders` loader (key →
    the row whose id is the `column` value, or None): several keys' pages are read as their
    owners' rows, then one statement for their pages, rather than a statement per key."""

    def __init__(
        self,
        model: type[M],
        column: Mapped[str] | Mapped[str | None],
        *,
        newest_first: bool,
        where: Where = (),
        plain: bool = False,
        related: Mapping[str, Related] | None = None,
        parent_of: ParentOf | None = None,
        owners: str | None = None,
    ) -> None:
        self.model, self.column, self.where = model, attribute(column), where
        self.newest_first, self.plain = newest_first, plain
        self.related, self.parent_of, self.owners = related or {}, parent_of, owners

    def __call__(self, loaders: Loaders) -> BatchLoader[PageKey, Page[M]]:
        db = loaders.db

        async def batch(keys: list[PageKey]) -> list[Page[M]]:
            by_args: dict[PageArgs, list[str]] = defaultdict(list)
            for parent_id, args in keys:
                by_args[args].append(parent_id)
            results: dict[PageKey, Page[M]] = {}
            for args, parent_ids in by_args.items():
                # A page read as the caller's JSON (`PageArgs.extra`) holds what it shows.
                joined, prime = (
                    (None, None)
                    if self.plain and reads_extra(db, args)
                    else next(
                        (self.related[name] for name in args.related if name in self.related),
                        (None, None),
                    )
                )
                distinct = list(dict.fromkeys(parent_ids))
                through = self.owners is not None and len(distinct) > 1
                # The keys' own column values: their owners' ids (None: no owner, no rows).
                owned: dict[str, str | None] = {}
                if through:
                    assert self.owners is not None
                    owners: BatchLoader[str, Any] = getattr(loaders, self.owners)
                    rows = await owners.fetch_each(distinct)
                    for key, row in zip(distinct, rows, strict=True):
                        if isinstance(row, Exception):
                            raise row
                        owned[key] = None if row is None else row.id
                if through:  # the owners' pages, together
                    groups = [[i for i in dict.fromkeys(owned.values()) if i is not None]]
                elif self.parent_of:  # each key's page finds its owner in its statement
                    groups = [[key] for key in distinct]
                else:
                    groups = [distinct]
                pages: dict[str, Page[M]] = {}
                for group in groups:
                    if group:
                        pages.update(
                            await pages_by_parent(
                                db,
                                self.model,
                                self.column,
                                group,
                                args,
                                where=self.where,
                                newest_first=self.newest_first,
                                plain=self.plain,
                                joined=joined,
                                parent_of=None if through else self.parent_of,
                            )
                        )
                if through:
                    pages = {
                        key: Page([]) if owner is None else pages[owner]
                        for key, owner in owned.items()
                    }
                if joined is not None and prime is not None:
                    loader = prime(loaders)
                    for page in pages.values():
                        for item in page.items:
                            row = joined.row_of(item)
                            if row is not None:
                                loader.prime(row.id, row)
                for parent_id, page in pages.items():
                    results[(parent_id, args)] = page
            return [results[key] for key in keys]

        return BatchLoader(batch)
