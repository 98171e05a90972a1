"""GraphQL error handling: typed payload errors for mutations, coded errors for the rest."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError

from gateway.db.session import unavailable
from gateway.errors import DatabaseUnavailable, DomainError, Unauthenticated

log = logging.getLogger("gateway.graphql")

P = TypeVar("P")


@strawberry.type(description="An expected failure of a mutation, with a stable code.")
class UserError:
    code: str
    message: str
    field: str | None = None

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


async def run_mutation(
    info: Any, payload: Callable[..., P], action: Callable[[], Awaitable[dict[str, Any]]]
) -> P:
    """Run a mutation; an expected failure rolls back and becomes a typed error in the payload."""
    ctx = info.context
    try:
        fields = await action()
    except Unauthenticated:
        await ctx.session.rollback()
        raise
    except DomainError as error:
        await ctx.session.rollback()
        return payload(errors=[UserError.from_domain(error)])
    return payload(errors=[], **fields)


def coded_error(error: GraphQLError) -> GraphQLError:
    """The error as clients get it: with `extensions.code` (a domain error's own, or
    GRAPHQL_VALIDATION_FAILED), or masked as INTERNAL_SERVER_ERROR when unexpected."""
    original = error.original_error
    if original is not None and not isinstance(original, DomainError) and unavailable(original):
        original = DatabaseUnavailable()  # the database went away (gateway/db/session.py)
    if isinstance(original, DomainError):
        extensions: dict[str, Any] = {**(error.extensions or {}), "code": original.code}
        if original.field:
            extensions["field"] = original.field
        return GraphQLError(
            original.message, nodes=error.nodes, path=error.path, extensions=extensions
        )
    if original is None:
        code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={**(error.extensions or {}), "code": code},
        )
    if isinstance(original, GraphQLError):
        return error
    log.error("unexpected error in GraphQL resolver", exc_info=original)
    return GraphQLError(
        "Internal server error",
        nodes=error.nodes,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )
