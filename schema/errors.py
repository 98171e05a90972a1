"""GraphQL error handling: typed payload errors for mutations, coded errors for the rest."""

from __future__ import annotations

import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLError, GraphQLErrorExtensions
from strawberry.types.field import StrawberryField

from gateway.db.outage import unavailable
from gateway.errors import DatabaseUnavailable, DomainError, Unauthenticated

log = logging.getLogger("gateway.graphql")


@strawberry.type(description="An expected failure of a mutation, with a stable code.")
class UserError:
    code: str
    message: str
    field: str | None = None

    @classmethod
    def from_domain(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=error.field)


@strawberry.type
class Payload:
    """What every mutation answers: its typed errors (none when it succeeded), then its own
    fields, null when it failed."""

    errors: list[UserError] = strawberry.field(default_factory=list)


P = TypeVar("P", bound=Payload)
Mutation = Callable[..., Awaitable[P]]


def mutation(description: str | None = None) -> Callable[[Mutation[P]], StrawberryField]:
    """A mutation field whose resolver calls the operation and returns its payload: an
    expected failure (a `DomainError`) rolls the session back and becomes the payload
    (the resolver's return type) with that error; a refused caller is rolled back and
    stays a coded error; anything else is masked (`coded_error`).

        @mutation("Accept the terms; keeps the first acceptance time.")
        async def accept_terms(self, info: Info) -> UserPayload:
            return UserPayload(user=User.from_model(await users.accept_terms(info.context)))
    """

    def decorate(resolve: Mutation[P]) -> StrawberryField:
        if "info" not in inspect.signature(resolve).parameters:
            raise TypeError(f"{resolve.__qualname__} needs an `info` parameter")
        payload: type[P] | None = None  # the return type, read once its module has loaded

        @functools.wraps(resolve)
        async def run(*args: object, **kwargs: Any) -> P:  # as strawberry calls it, `info` too
            nonlocal payload
            ctx = kwargs["info"].context
            try:
                return await resolve(*args, **kwargs)
            except Unauthenticated:
                await ctx.session.rollback()
                raise
            except DomainError as error:
                await ctx.session.rollback()
                if payload is None:
                    payload = typing.get_type_hints(resolve)["return"]
                return payload(errors=[UserError.from_domain(error)])

        field: StrawberryField = strawberry.mutation(resolver=run, description=description)
        return field

    return decorate


def _input_error(error: GraphQLError) -> bool:
    """A value of the request that could not be taken (a variable that could not be coerced,
    a literal a scalar refused: an integer beyond 64 bits, a timestamp out of range): raised
    before execution (no path) by graphql-core around a scalar's ValueError or TypeError."""
    original = error.original_error
    return error.path is None and (isinstance(original, GraphQLError | ValueError | TypeError))


def is_client_error(error: GraphQLError) -> bool:
    """The caller's mistake (a domain error, an invalid document or input), not the server's."""
    original = error.original_error
    return original is None or isinstance(original, DomainError) or _input_error(error)


def log_errors(errors: list[GraphQLError]) -> None:
    """Client mistakes at info, one line each, without a traceback; unexpected errors are
    logged with theirs by `coded_error`, where they are masked."""
    for error in errors:
        if not is_client_error(error):
            continue
        original = error.original_error
        if isinstance(original, DomainError):
            log.info("graphql %s: %s", original.code, original.message)
        else:
            code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
            log.info("graphql %s: %s", code, error.message)


def coded_error(error: GraphQLError) -> GraphQLError:
    """The error as clients get it: with `extensions.code` (a domain error's own,
    BAD_USER_INPUT for input that could not be taken, or GRAPHQL_VALIDATION_FAILED), or masked
    as INTERNAL_SERVER_ERROR when unexpected."""
    original = error.original_error
    if original is not None and not isinstance(original, DomainError) and unavailable(original):
        original = DatabaseUnavailable()  # the database went away (gateway/db/outage.py)
    if isinstance(original, DomainError):
        extensions: GraphQLErrorExtensions = {**(error.extensions or {}), "code": original.code}
        if original.field:
            extensions["field"] = original.field
        return GraphQLError(
            original.message, nodes=error.nodes, path=error.path, extensions=extensions
        )
    if original is None or _input_error(error):
        default = "GRAPHQL_VALIDATION_FAILED" if original is None else "BAD_USER_INPUT"
        code = (error.extensions or {}).get("code", default)
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
