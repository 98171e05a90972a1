"""Relay pieces: the Node interface on prefixed ids, and generic keyset connections."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import strawberry
from orjson import Fragment

from resolvers.pagination import Page, PageArgs
from schema.declare import page_selection

T = TypeVar("T")


@strawberry.interface(description="An object with a global id (`<prefix>-<ULID>`).")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    nodes: list[T]
    _page: strawberry.Private[Page[Any]]
    _count: strawberry.Private[Callable[[], Awaitable[int]] | None] = None

    @strawberry.field
    def page_info(self) -> PageInfo:
        """Built when asked for (its cursors are encoded then)."""
        page = self._page
        return PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.start_cursor,
            end_cursor=page.end_cursor,
        )

    @strawberry.field
    def edges(self) -> list[Edge[T]]:
        """Built when asked for: most clients select `nodes`."""
        cursors = self._page.cursors
        return [Edge(cursor=c, node=n) for c, n in zip(cursors, self.nodes, strict=True)]

    @strawberry.field(description="Total items across all pages.")
    async def total_count(self) -> int | None:
        return await self._count() if self._count is not None else None

    @classmethod
    def from_page(
        cls,
        page: Page[Any],
        convert: Callable[[Any], T],
        count: Callable[[], Awaitable[int]] | None = None,
    ) -> Connection[T]:
        if page.extra:
            # The nodes' response objects as PostgreSQL wrote them, which only the compiled
            # executor asks for and takes as they are: each item's last value (`Page.extra`).
            written: list[Any] = [Fragment(item[-1]) for item in page.items]
            return cls(nodes=written, _page=page, _count=count)
        return cls(
            nodes=[convert(item) for item in page.items],
            _page=page,
            _count=count,
        )


def page_args(
    info: Any,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageArgs:
    settings = info.context.settings
    selection = page_selection(info)
    return PageArgs.build(
        first=first,
        after=after,
        last=last,
        before=before,
        default=settings.default_page_size,
        maximum=settings.max_page_size,
        columns=selection.columns,
        related=selection.related,
        extra=selection.extra,
    )
