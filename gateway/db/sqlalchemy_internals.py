"""The one module that reads SQLAlchemy's private API (names with a leading underscore).

The hot reads of `gateway/db/session.py` run a statement on the asyncpg connection that
SQLAlchemy holds, with SQLAlchemy's own compilation, type conversions, listeners and error
translation, but without its cursor and result machinery; the connection gate hooks into the
queue pool where it takes and gives back a connection record. Neither has a public API, so
what they need of SQLAlchemy's internals is here, in small functions, and
`tests/platform/test_sqlalchemy_internals.py` fails with the name of what moved when an upgrade
changes any of it (CI runs the suite on the oldest and newest SQLAlchemy that pyproject.toml
allows). Names from SQLAlchemy's undocumented modules (`connectors.asyncio`,
`util.concurrency`) are imported here too, and handed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.connectors.asyncio import AsyncAdapt_Error  # the async adapters' DBAPI errors
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.session import SessionTransactionState
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.util.concurrency import await_, greenlet_spawn

__all__ = [
    "AsyncAdapt_Error",
    "CompiledForDriver",
    "HookedQueuePool",
    "await_",
    "fetch_on_driver",
    "held_connection",
]


class CompiledForDriver:
    """A Core statement compiled for the driver: its SQL, its bind parameters in order with
    their processors, the defaults of bound literals, and its result columns (label, type,
    the type's result processor for this dialect)."""

    __slots__ = ("binds", "columns", "defaults", "sql")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        assert isinstance(statement, ClauseElement)  # Select, Insert, TextClause: all are
        # The SQLCompiler, read below through attributes its stubs do not declare.
        compiled: Any = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        processors = compiled._bind_processors
        self.binds: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, processors.get(name)) for name in compiled.positiontup or ()
        ]
        self.defaults: dict[str, Any] = {
            name: bind.value for name, bind in compiled.binds.items() if bind.value is not None
        }
        self.columns: list[tuple[str, Any, Callable[[Any], Any] | None]] = [
            (c.keyname, c.type, c.type._cached_result_processor(dialect, None))
            for c in compiled._result_columns
        ]


async def fetch_on_driver(sync: Connection, sql: str, args: list[Any]) -> list[Any]:
    """asyncpg's `fetch` on the connection SQLAlchemy holds for `sync`: statement listeners
    (counters, tracing) and echo see it like any other, the adapter's lock is held (no two
    statements share the connection at once), and an error comes out as SQLAlchemy's own
    execution would raise it (a DBAPI error wrapped in `sqlalchemy.exc`, a connection that
    died invalidated, the engine's `handle_error` listeners run)."""
    listened = sync._has_events or sync.engine._has_events
    statement = DriverStatement() if listened else None
    if listened:
        sync.dispatch.before_cursor_execute(sync, None, sql, args, statement, False)
        if sync._echo:
            sync._log_info("%s %r", sql, args)
    adapter: Any = sync.connection.dbapi_connection  # the pooled connection, held: no I/O
    try:
        async with adapter._execute_mutex:
            records: list[Any] = await adapter._connection.fetch(sql, *args)
    except Exception as error:
        await greenlet_spawn(_raise_as_sqlalchemy, sync, adapter, error, sql, args)
        raise
    finally:
        if listened:  # what began with the statement ends with it (a tracing span)
            sync.dispatch.after_cursor_execute(sync, None, sql, args, statement, False)
    return records


class DriverStatement:
    """The execution context statement listeners get for a statement sent straight to the
    driver, where SQLAlchemy made none: a listener may keep what it needs on it between
    `before_cursor_execute` and `after_cursor_execute` (OpenTelemetry keeps its span)."""


def _raise_as_sqlalchemy(
    sync: Connection, adapter: Any, error: Exception, sql: str, args: list[Any]
) -> None:
    try:
        adapter._handle_exception(error)  # raises the DBAPI-level error
    except Exception as dbapi_error:
        sync._handle_dbapi_exception(dbapi_error, sql, args, None, None)


def held_connection(session: AsyncSession) -> Connection | None:
    """The connection the session's active transaction already holds for its engine, found
    without `AsyncSession.connection()`'s greenlet hop (~12 µs, several times per request)."""
    transaction = session.sync_session._transaction
    if transaction is None or transaction._state is not SessionTransactionState.ACTIVE:
        return None
    bind = session.sync_session.bind
    if bind is None:
        return None
    held = transaction._connections.get(bind)
    if held is None:
        return None
    connection: Connection = held[0]
    return None if connection.closed or connection.invalidated else connection


class HookedQueuePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's async queue pool with hooks where it takes a connection record
    (`_do_get`) and where the record comes back (`_do_return_conn`): every checkout, failed
    connection attempt, invalidation and collected connection passes one or the other."""

    def before_checkout(self) -> None:
        """Before a record is taken (may wait)."""

    def checkout_failed(self) -> None:
        """No record was taken after all."""

    def checked_out(self, record: ConnectionPoolEntry) -> None:
        """A record was taken."""

    def checked_in(self, record: ConnectionPoolEntry) -> None:
        """A record came back (after the pool took it back, even if that failed)."""

    def _do_get(self) -> ConnectionPoolEntry:
        self.before_checkout()
        try:
            record = super()._do_get()
        except BaseException:
            self.checkout_failed()
            raise
        self.checked_out(record)
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            super()._do_return_conn(record)
        finally:
            self.checked_in(record)
