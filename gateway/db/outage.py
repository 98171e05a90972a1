"""The database going away: which errors mean it cannot be reached (`unavailable`, the one
place that decides), and the engine's `handle_error` listener that turns them into 503s."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc
from sqlalchemy.engine import ExceptionContext

from gateway.db.sqlalchemy_internals import AsyncAdapt_Error
from gateway.errors import DatabaseUnavailable, ServiceBusy

# How much longer than the statement timeout asyncpg waits for a server that does not answer.
UNANSWERED_MARGIN = 1.0

# What the drivers raise when the database cannot be reached or went away mid-request. Not
# statement errors (constraint violations, syntax, a query cancelled by its own timeout).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, name resolution; TimeoutError (connect) is one
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.ConnectionDoesNotExistError,  # closed in the middle of an operation
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the server is shutting down
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, recovering
    asyncpg.TooManyConnectionsError,  # 53300
)


# Errors that come from the database layer: only these (and what they were raised from) are
# asked whether the database went away; an OSError under, say, a payment provider's error is
# not the database's.
_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    AsyncAdapt_Error,  # the asyncpg adapter's DBAPI errors
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def unavailable(error: BaseException) -> bool:
    """Whether a database error (SQLAlchemy's, the adapter's or the driver's, and what it was
    raised from) means the database cannot be reached: the one place that decides what
    becomes `DatabaseUnavailable`. The pool and the engine raise that in place of what they
    see; the protocols' error mappings ask here too, for what SQLAlchemy raises without either
    seeing it (a statement on the request's connection after it was lost)."""
    if isinstance(error, exc.PendingRollbackError):
        return error.code == "8s2b"  # a statement after the request's connection was lost
    raised: BaseException | None = error
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        raised = error.orig
    return isinstance(raised, _DATABASE_ERRORS) and connection_lost(raised)


def connection_lost(error: BaseException) -> bool:
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, _UNAVAILABLE):
            return True
        current = current.__cause__
    return False


def database_unavailable(context: ExceptionContext) -> None:
    """`handle_error`: a statement that failed because the database went away raises
    `DatabaseUnavailable`; its connection is invalidated (never handed out again), and so are
    the pool's other connections opened before it. A statement that ran past the statement
    timeout is `ServiceBusy`: cancelled by the server (its connection is fine), or not
    answered at all (asyncpg stopped waiting: the connection is dropped)."""
    original = context.original_exception
    if isinstance(original, TimeoutError) and not context.is_disconnect:
        context.is_disconnect = True  # what the connection would say next is unknown
        raise DatabaseUnavailable("The database did not answer in time; retry later")
    if context.is_disconnect or unavailable(original):
        context.is_disconnect = True
        raise DatabaseUnavailable()
    if _statement_timed_out(original):
        raise ServiceBusy("The database took too long to answer; retry later")


def _statement_timed_out(error: BaseException | None) -> bool:
    """PostgreSQL cancelled the statement (57014: `statement_timeout`)."""
    for _ in range(8):
        if error is None:
            return False
        if isinstance(error, asyncpg.exceptions.QueryCanceledError):
            return True
        error = getattr(error, "orig", None) or error.__cause__
    return False
