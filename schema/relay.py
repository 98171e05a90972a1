"""Relay pieces: the Node interface on prefixed ids, and keyset connections with the fields
that serve them, each made from one declaration (`connection`)."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

import strawberry
from orjson import Fragment
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from resolvers.context import Context
from resolvers.pagination import GuessedPage, Page, PageArgs
from schema.declare import NodeSelection, batched, page_selection, reads_ahead, resolve_one

T = TypeVar("T")
N = TypeVar("N", covariant=True)
R = TypeVar("R", contravariant=True)
S = TypeVar("S")
Options = ParamSpec("Options")


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


class PageState(Protocol):
    """What a connection keeps of its page (a `Page` of any row type): pageInfo and cursors."""

    @property
    def has_next_page(self) -> bool: ...
    @property
    def has_previous_page(self) -> bool: ...
    @property
    def start_cursor(self) -> str | None: ...
    @property
    def end_cursor(self) -> str | None: ...
    @property
    def cursors(self) -> list[str]: ...


@strawberry.type
class Connection(Generic[T]):
    nodes: list[T]
    _page: strawberry.Private[PageState]
    _count: strawberry.Private[Callable[[], Awaitable[int | None]] | None] = None

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
        page: Page[S],
        convert: Callable[[S], T],
        count: Callable[[], Awaitable[int | None]] | None = None,
    ) -> Connection[T]:
        if page.extra:
            # The nodes' response objects as PostgreSQL wrote them, which only the compiled
            # executor asks for and takes as they are: each item's last value (`Page.extra`).
            # (The items are tuples typed as their rows; the nodes are not `T`s but their JSON.)
            written = [Fragment(item[-1]) for item in page.items]  # type: ignore[index]
            return cls(nodes=written, _page=page, _count=count)  # type: ignore[arg-type]
        return cls(
            nodes=[convert(item) for item in page.items],
            _page=page,
            _count=count,
        )


def page_args(
    info: Info,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageArgs:
    return _args_of(info, page_selection(info), first, after, last, before)


def _args_of(
    info: Info,
    selection: NodeSelection,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageArgs:
    settings = info.context.settings
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


class NodeType(Protocol[R, N]):
    """A node type: built from the rows its pages hold (ORM objects or read-only rows)."""

    def from_model(self, row: R, /) -> N: ...


class Row(Protocol):
    @property
    def id(self) -> str: ...


class Parent(Protocol):
    """The object a connection field hangs off (`User`, `Organization`, `Member`)."""

    @property
    def _model(self) -> Row: ...


PageOf = Callable[Concatenate[Context, S, PageArgs, Options], Awaitable[Page[R] | None]]
PagesOf = Callable[
    Concatenate[Context, Sequence[S], PageArgs, Options],
    Awaitable[Sequence[Page[R] | Exception | None]],
]
CountOf = Callable[Concatenate[Context, S, Options], Awaitable[int | None]]
# A page's or count's read by its parent object's id, started and not awaited (a loader's
# future), deciding nothing: `connection(ahead=, count_ahead=)`.
PageAhead = Callable[
    Concatenate[Context, str, PageArgs, Options], Awaitable[object] | GuessedPage | None
]
CountAhead = Callable[Concatenate[Context, str, Options], Awaitable[object]]
# A field's argument values as the executor passes them (strawberry's conversion of GraphQL's,
# of each argument's own type).
Arguments = Any

# The standard arguments of every connection field, in the order clients see them.
_PAGE_PARAMETERS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in (
        ("first", int | None),
        ("after", str | None),
        ("last", int | None),
        ("before", str | None),
    )
]


def connection(
    node: NodeType[R, T],
    page: PageOf[S, Options, R],
    *,
    count: CountOf[S, Options] | None = None,
    of: Callable[[Context, str], Awaitable[S]] | None = None,
    ahead: PageAhead[Options] | None = None,
    count_ahead: CountAhead[Options] | None = None,
    nullable: bool = False,
    description: str,
) -> StrawberryField:  # for a class body
    """The field of a connection of `node`s, from one declaration: the standard arguments
    (first/after/last/before, read into `PageArgs` by `page_args`), then `page`'s own keyword
    arguments after its first three (`succeeded_only`), which `count` takes too.

    `page(ctx, parent, args, **options)` loads the page (None: the field is null) of the
    parent object's id, or of what `of(ctx, id)` finds for it (an organization's account,
    looked up once for the page and its count): the resolvers' own signature, so a
    declaration names them rather than wrapping them. `count(ctx, parent, **options)`, when
    given, is `totalCount` (called only when selected; null without it).

    `ahead(ctx, parent_id, args, **options)` (and `count_ahead(ctx, parent_id, **options)`)
    start the read that `page` (and `count`) make, by the parent's id, before `of` decides:
    the field's read ahead (schema/declare.py `reads_ahead`), taken from the loader's cache
    when the field runs."""
    options = _options(page)
    # Called with the options by name, as the field's arguments come.
    load: Callable[..., Awaitable[Page[R] | None]] = page
    counter: Callable[..., Awaitable[int | None]] | None = count

    async def resolve(root: Parent, info: Info, **arguments: Arguments) -> Connection[T] | None:
        ctx: Context = info.context
        parent = root._model.id if of is None else await of(ctx, root._model.id)
        selection = page_selection(info)
        get = arguments.get
        args = _args_of(info, selection, get("first"), get("after"), get("last"), get("before"))
        chosen = {o.name: arguments.get(o.name, o.default) for o in options}
        total = None if counter is None else _counter(counter, ctx, parent, chosen)
        if total is None or not selection.counted:
            found = await load(ctx, parent, args, **chosen)
            if ahead is not None and ctx.settings.read_ahead == "verify":
                await _checked(ctx, info, found)
            return None if found is None else Connection.from_page(found, node.from_model, total)
        # `totalCount` is selected: the count starts now, so that its read is sent with the
        # page's (on PostgreSQL a level's reads go as one statement: gateway/db/coalesce.py).
        counting = asyncio.ensure_future(total())
        counting.add_done_callback(_taken)
        found = None
        try:
            found = await load(ctx, parent, args, **chosen)
        finally:
            if found is None:  # no connection to ask: the count's read ends before the field
                await asyncio.wait([counting])
        if found is None:
            return None
        if ahead is not None and ctx.settings.read_ahead == "verify":
            await _checked(ctx, info, found)
        return Connection.from_page(found, node.from_model, lambda: asyncio.shield(counting))

    if ahead is not None:
        _read_ahead(resolve, ahead, count_ahead, options)
    return _field(resolve, node, options, nullable, description)


# `GATEWAY_READ_AHEAD=verify`: a connection's page read ahead, by its field's path, for the
# field to check that it is the page it got (`_checked`).
_READ_AHEAD = "read ahead"


def _read_ahead(
    resolve: Callable[..., Awaitable[object]],
    ahead: PageAhead[Options],
    count_ahead: CountAhead[Options] | None,
    options: list[inspect.Parameter],
) -> None:
    """Declare the connection field's read ahead: its page (and its count, when selected) by
    the parent's id, with the arguments and selection the field itself will read with."""
    start_page: Callable[..., Awaitable[object] | GuessedPage | None] = ahead
    start_count: Callable[..., Awaitable[object]] | None = count_ahead

    def read_ahead(parent_id: str, info: Info, **arguments: Arguments) -> Awaitable[object] | None:
        ctx: Context = info.context
        selection = page_selection(info)
        get = arguments.get
        try:
            args = _args_of(info, selection, get("first"), get("after"), get("last"), get("before"))
        except Exception:  # the field reports its arguments' error when it runs
            return None
        chosen = {o.name: arguments.get(o.name, o.default) for o in options}
        read = start_page(ctx, parent_id, args, **chosen)
        if read is None:
            return None
        started: Awaitable[object]
        if isinstance(read, GuessedPage):
            started, guessed = read.page, True
        else:
            started, guessed = read, False
        if ctx.settings.read_ahead == "verify":
            ctx.field_notes[(_READ_AHEAD, info.path)] = (started, guessed)
        if start_count is not None and selection.counted:
            return asyncio.gather(started, start_count(ctx, parent_id, **chosen))
        return started

    reads_ahead(read_ahead)(resolve)


async def _checked(ctx: Context, info: Info, found: object) -> None:
    """`verify`: the page a field got is the one read ahead for it, if one was. A guessed
    read (`GuessedPage`) guesses how the page's extra column is decided: a wrong guess is
    one whose page reads that column where the field's does not, or the other way."""
    noted = ctx.field_notes.pop((_READ_AHEAD, info.path), None)
    if noted is None or found is None:
        return
    started, guessed = typing.cast(tuple[Awaitable[object], bool], noted)
    page_ahead = await started
    if page_ahead is found:
        return
    if guessed and isinstance(found, Page) and isinstance(page_ahead, Page):
        if found.extra != page_ahead.extra:
            return
    raise AssertionError(f"the page read ahead for {info.path.as_list()} did not serve it")


def connections(
    node: NodeType[R, T],
    pages: PagesOf[S, Options, R],
    *,
    nullable: bool = False,
    description: str,
) -> StrawberryField:  # for a class body
    """`connection` for a field under a list (`Member.usages`): `pages(ctx, rows, args,
    **options)` loads the pages of a whole level's parents at once (one value per parent,
    an `Exception` being that parent's error), called once per level by the compiled
    executor (schema/declare.py, `batched`)."""
    options = _options(pages)
    load: Callable[..., Awaitable[Sequence[Page[R] | Exception | None]]] = pages

    async def resolve_each(
        roots: Sequence[Parent], info: Info, **arguments: Arguments
    ) -> list[Connection[T] | Exception | None]:
        args = _page_args(info, arguments)
        chosen = {o.name: arguments.get(o.name, o.default) for o in options}
        found = await load(info.context, [root._model for root in roots], args, **chosen)
        return [
            one
            if one is None or isinstance(one, Exception)
            else Connection.from_page(one, node.from_model)
            for one in found
        ]

    @batched(resolve_each)
    async def resolve(root: Parent, info: Info, **arguments: Arguments) -> Connection[T] | None:
        one: Connection[T] | None = await resolve_one(resolve_each, root, info=info, **arguments)
        return one

    return _field(resolve, node, options, nullable, description)


def _page_args(info: Info, arguments: dict[str, Arguments]) -> PageArgs:
    get = arguments.get
    return page_args(info, get("first"), get("after"), get("last"), get("before"))


def _counter(
    count: Callable[..., Awaitable[int | None]],
    ctx: Context,
    parent: object,
    options: dict[str, Arguments],
) -> Callable[[], Awaitable[int | None]]:
    return lambda: count(ctx, parent, **options)


def _taken(task: asyncio.Future[int | None]) -> None:
    """A started count's error is its `totalCount`'s; if nothing asks for it (the page failed
    or was null), taken here so that asyncio does not report it."""
    if not task.cancelled():
        task.exception()


def _options(page: Callable[..., object]) -> list[inspect.Parameter]:
    """A page function's parameters after (ctx, parent, args): the field's own arguments."""
    own = list(inspect.signature(page).parameters.values())[3:]
    if not own:
        return []
    hints = typing.get_type_hints(page)
    return [
        parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[parameter.name])
        for parameter in own
    ]


def _field(
    resolve: Callable[..., Awaitable[object]],
    node: object,
    options: list[inspect.Parameter],
    nullable: bool,
    description: str,
) -> StrawberryField:
    """The strawberry field of `resolve`, whose signature strawberry (and the compiled
    executor) read: root, info, the standard arguments, the page function's own."""
    returns: object = Connection[node]  # type: ignore[valid-type]
    resolve.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Info),
            *_PAGE_PARAMETERS,
            *options,
        ],
        return_annotation=returns | None if nullable else returns,  # type: ignore[operator]
    )
    made: StrawberryField = strawberry.field(resolver=resolve, description=description)
    return made
