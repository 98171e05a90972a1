"""Batch forms of relation fields: one call per field per level instead of one per parent.

A relation field below a list (`Member.user` under `members`, `Member.usages`) is resolved once
per parent by graphql-core: a coroutine, a task, a DataLoader future and a completion each, for
each of the 20 members of a dashboard. Its batch form takes the level's parents at once:

    async def users_of(members: Sequence[Member], info: Info) -> list[User | None]: ...

    @strawberry.field
    @batched(users_of)
    async def user(self, info: Info) -> User | None:
        return await resolve_one(users_of, self, info)

The batch form takes the parents as its first argument and the field's own arguments (and
`info`) by the names the resolver gives them; it returns one value per parent, in order, where
an `Exception` instance is that parent's error. The compiled executor (schema/compiled.py)
calls it once with all the parents of a level; the standard executor calls the resolver, which
is the batch form on one parent, so both run the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

BATCH_ATTRIBUTE = "__graphql_batch__"

F = TypeVar("F", bound=Callable[..., Any])
Batch = Callable[..., Awaitable[list[Any]]]


def batched(batch: Batch) -> Callable[[F], F]:
    """Declare `batch` as the batch form of the decorated resolver."""

    def mark(resolver: F) -> F:
        setattr(resolver, BATCH_ATTRIBUTE, batch)
        return resolver

    return mark


def batch_form(resolver: Any) -> Batch | None:
    found: Batch | None = getattr(resolver, BATCH_ATTRIBUTE, None)
    return found


async def resolve_one(batch: Batch, parent: Any, *args: Any, **kwargs: Any) -> Any:
    """The batch form on one parent: its value, or its error raised."""
    values = await batch([parent], *args, **kwargs)
    if len(values) != 1:
        raise TypeError(f"{batch.__qualname__} returned {len(values)} values for one parent")
    value = values[0]
    if isinstance(value, Exception):
        raise value
    return value
