"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque, namedtuple
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Connection, event, exc
from sqlalchemy.engine import AdaptedConnection, Dialect, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeEngine

from gateway.db.models import UTCDateTime
from gateway.db.sqlalchemy_internals import (
    AsyncAdapt_Error,
    CompiledForDriver,
    HookedQueuePool,
    await_,
    fetch_on_driver,
    held_connection,
)
from gateway.errors import DatabaseUnavailable, ServiceBusy
from gateway.jsoncodec import load_json
from gateway.metrics import DB_POOL_IN_USE, DB_POOL_WAITING


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 20,
    max_overflow: int = 0,
    pool_timeout: float = 30.0,
    connect_timeout: float = 5.0,
    statement_timeout: float | None = None,
    search_path: str | None = None,
) -> AsyncEngine:
    """The engine; on PostgreSQL a pool of `pool_size` connections kept open, and requests
    beyond it wait up to `pool_timeout` seconds for one, first come, first served
    (`GatedPool`). `max_overflow` more may be opened,
    but SQLAlchemy closes an overflow connection as soon as it is returned, so at sustained
    concurrency above the pool each request would pay a new connection (fork of a server
    process, authentication, asyncpg's type introspection, statements prepared again).

    A connection attempt gives up after `connect_timeout` seconds, and a database that cannot
    be reached surfaces as `DatabaseUnavailable` (503), wherever it is noticed (`unavailable`).
    A statement gives up after `statement_timeout` seconds: PostgreSQL cancels it (503, the
    connection kept), and should the server not answer at all, asyncpg stops waiting a second
    later (503, the connection dropped): a database that stops answering in the middle of a
    request holds no request for ever."""
    url = normalize_url(url)
    kwargs: dict[str, object] = {
        "echo": echo,
        "pool_pre_ping": False,
        "json_deserializer": load_json,
    }
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(
            dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
        ) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # Timestamps travel as ISO text in UTC (`_timestamps_as_text`): the session's zone and
    # date style are fixed here, whatever the server's defaults.
    server_settings = {"application_name": "account-gateway", "TimeZone": "UTC", "DateStyle": "ISO"}
    if search_path:
        server_settings["search_path"] = search_path
    connect_args: dict[str, object] = {
        "server_settings": server_settings,
        "timeout": connect_timeout,
    }
    if statement_timeout is not None:
        server_settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
        connect_args["command_timeout"] = statement_timeout + UNANSWERED_MARGIN
    kwargs["connect_args"] = connect_args
    kwargs["pool_size"] = pool_size
    kwargs["max_overflow"] = max_overflow
    kwargs["pool_timeout"] = pool_timeout
    if pool_size > 0 and max_overflow >= 0:  # a bounded pool: its checkouts pass the gate
        kwargs["poolclass"] = GatedPool
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _timestamps_as_text)
    event.listen(engine.sync_engine, "handle_error", _database_unavailable)
    return engine


def _timestamps_as_text(dbapi_connection: AdaptedConnection, _record: ConnectionPoolEntry) -> None:
    """`timestamptz` in text format on each new asyncpg connection.

    asyncpg decodes a binary timestamp by building a `timedelta` and adding it to its epoch
    (~6,000 instructions a value: a dashboard has ~180 of them); `datetime.fromisoformat` reads
    PostgreSQL's ISO text (`2026-11-25 10:00:00.123456+00`, the session is in UTC) in C, at
    about a tenth of that, and gives the same aware UTC datetimes. Parameters go out as
    `isoformat()` text.
    """
    dbapi_connection.run_async(
        lambda connection: connection.set_type_codec(
            "timestamptz",
            schema="pg_catalog",
            encoder=datetime.isoformat,
            decoder=decode_timestamptz,
            format="text",
        )
    )


_INFINITY = {
    # What asyncpg's binary codec gives for PostgreSQL's infinite timestamps.
    "infinity": datetime.max.replace(tzinfo=UTC),
    "-infinity": datetime.min.replace(tzinfo=UTC),
}


def decode_timestamptz(text: str) -> datetime:
    """PostgreSQL's ISO text of a `timestamptz` (session in UTC) as an aware UTC datetime."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        infinite = _INFINITY.get(text)
        if infinite is None:  # a BC date: no Python datetime holds it (nor did asyncpg's)
            raise
        return infinite


# A driver record made into a row: a named tuple of the statement's column labels (asyncpg
# ships no type hints, so its Record is untyped to mypy).
RowMaker = Callable[[asyncpg.Record], tuple[object, ...]]


class _Compiled:
    """A statement compiled for asyncpg (`CompiledForDriver`) and how to make its rows."""

    __slots__ = ("binds", "defaults", "make", "sql", "statement")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = CompiledForDriver(statement, dialect)
        self.statement = statement
        self.sql = compiled.sql
        self.binds = compiled.binds
        self.defaults = compiled.defaults
        columns = compiled.columns
        row_type = _row_type(tuple(name for name, _, _ in columns))
        conversions = [(i, convert) for i, (_, _, convert) in enumerate(columns) if convert]
        new = tuple.__new__
        if not conversions:
            self.make: RowMaker = functools.partial(new, row_type)
        elif all(_utc_passthrough(columns[i][1], dialect) for i, _ in conversions):
            # The only conversions are UTC timestamps, which asyncpg already returns in UTC:
            # the converter (two calls through the TypeDecorator) runs only when one is not.
            slow = self._converting(row_type, conversions)
            indices = tuple(i for i, _ in conversions)

            def make(record: asyncpg.Record) -> tuple[object, ...]:
                for i in indices:
                    value = record[i]
                    if value is not None and value.tzinfo is not UTC:
                        return slow(record)
                return new(row_type, record)

            self.make = make
        else:
            self.make = self._converting(row_type, conversions)

    @staticmethod
    def _converting(
        row_type: type[tuple[object, ...]],
        conversions: list[tuple[int, Callable[[object], object]]],
    ) -> RowMaker:
        new = tuple.__new__

        def make(record: asyncpg.Record) -> tuple[object, ...]:
            # A row has ~16 columns and one or two to convert (timestamps).
            values = list(record)
            for i, convert in conversions:
                values[i] = convert(values[i])
            return new(row_type, values)

        return make


def _utc_passthrough(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """A UTC timestamp column whose driver value needs no processing of its own (asyncpg's
    timestamptz): its converter only normalizes to UTC, which asyncpg's values already are."""
    if not isinstance(type_, UTCDateTime):
        return False
    return type_.impl_instance.dialect_impl(dialect).result_processor(dialect, None) is None


_COMPILED: dict[int, _Compiled] = {}


@functools.lru_cache(maxsize=1024)
def _row_type(keys: tuple[str, ...]) -> Any:
    return namedtuple("Row", keys, rename=True)


class RequestDatabase:
    """A request's database: on PostgreSQL one pooled connection, taken at its first statement;
    plain reads (`fetch_rows`) run on it directly, and the ORM session, made only when
    something needs the ORM, is bound to it. A read-only request so never builds a session
    (its construction, connection bookkeeping and close were ~10 % of a REST read's CPU).

    Elsewhere (SQLite), and whenever the session was made first, everything goes through the
    session. Either way a request holds one connection at most, taken through the pool's gate
    (`GatedPool`) whichever way it is taken, and given back by `close`.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory
        self._engine: AsyncEngine = session_factory.kw["bind"]
        self._direct = self._engine.dialect.driver == "asyncpg"
        self._session: AsyncSession | None = None
        self._connection: AsyncConnection | None = None

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def wrote(self) -> bool:
        """Whether this request has written through its session (`RequestSession.wrote`)."""
        session = self._session
        return session is not None and getattr(session.sync_session, "wrote", True)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            connection = self._connection
            self._session = (
                self._factory(bind=connection) if connection is not None else self._factory()
            )
        return self._session

    async def _reading_connection(self) -> Connection:
        """The connection a plain read runs on: the session's if there is one, else the
        request's own (taken now if need be)."""
        if self._session is not None:
            return await _session_connection(self._session)
        connection = self._connection
        if connection is None:
            connection = self._connection = await self._engine.connect()
        sync = connection.sync_connection
        assert sync is not None
        return sync

    async def close(self) -> None:
        """Give the connection back, whatever state it is in: the session first (it returns
        the connection it was bound to, or its own), then the request's own connection."""
        session, connection = self._session, self._connection
        self._session = self._connection = None
        try:
            if session is not None:
                await session.close()
        finally:
            if connection is not None:
                await connection.close()


class _Expired(Exception):
    pass


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


class ConnectionGate:
    """First come, first served for the pool's connections.

    SQLAlchemy's async pool hands a returned connection to whoever asks first: the request
    that just returned it and asks again at once (a client's next request on the same event
    loop turn) takes it before the waiter that was woken for it, who goes to the back of the
    queue. Above the pool's size some requests waited seconds (in-process, 64 concurrent
    dashboards on 20 connections: p50 32 ms, p99 1.7 s, max 5 s). Every checkout of the pool
    passes this gate, a FIFO semaphore of the pool's size, and every return leaves it
    (`GatedPool`), so the pool never has waiters and the gate serves them in order. A slot
    that is freed goes to the first waiter directly: nobody arriving later takes it first.
    Connections taken and requests waiting are counted for /metrics as they change.
    """

    def __init__(self, size: int, timeout: float) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timeout = timeout

    def try_enter(self) -> bool:
        """Take a free slot if there is one and nobody is waiting for it (no await)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            DB_POOL_IN_USE.inc()
            return True
        return False

    async def enter(self) -> None:
        if self.try_enter():
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        DB_POOL_WAITING.inc()
        timer = loop.call_later(self._timeout, _expire, waiter)
        try:
            await waiter
        except _Expired:
            self._discard(waiter)
            raise ServiceBusy(
                f"No database connection became free in {self._timeout:g} s; retry later"
            ) from None
        except BaseException:  # cancelled: a slot handed over meanwhile goes to the next
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.leave()
            else:
                self._discard(waiter)
            raise
        finally:
            timer.cancel()

    def leave(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            DB_POOL_WAITING.dec()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it directly
                return
        self._free += 1
        DB_POOL_IN_USE.dec()

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
            DB_POOL_WAITING.dec()


class GatedPool(HookedQueuePool):
    """SQLAlchemy's async queue pool whose checkouts pass a `ConnectionGate` of its size.

    The gate is entered where the pool takes a connection record and left where the record
    comes back (the pool's own bookkeeping, hooked by `HookedQueuePool`), so every way of
    taking a connection (a request's reads, its ORM session, the webhook's session, `/readyz`)
    waits in the same line, and every way one comes back (closed, invalidated, a failed
    connection attempt, a connection collected unclosed) frees its slot: a slot cannot leak
    while the pool's count is right. A pooled connection whose socket is already known to be
    closed (the server went away while it sat in the pool) is replaced before it is handed out.
    Any failure to get a connection that means the database is away is `DatabaseUnavailable`.
    """

    def __init__(
        self,
        creator: Any,
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float = 30.0,
        **kw: Any,
    ) -> None:
        super().__init__(
            creator, pool_size=pool_size, max_overflow=max_overflow, timeout=timeout, **kw
        )
        self.gate = ConnectionGate(pool_size + max(max_overflow, 0), timeout)

    def connect(self) -> PoolProxiedConnection:
        try:
            return super().connect()
        except Exception as error:
            # Here any socket error or timeout is the database's: connecting is all this does.
            if isinstance(error, ServiceBusy):
                raise
            if _connection_lost(error) or unavailable(error):
                raise DatabaseUnavailable() from error
            raise

    def before_checkout(self) -> None:
        gate = self.gate
        if not gate.try_enter():
            await_(gate.enter())

    def checkout_failed(self) -> None:
        self.gate.leave()

    def checked_out(self, record: ConnectionPoolEntry) -> None:
        driver = getattr(record.dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            record.invalidate()  # reconnected by the checkout that follows

    def checked_in(self, record: ConnectionPoolEntry) -> None:
        self.gate.leave()


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
    return isinstance(raised, _DATABASE_ERRORS) and _connection_lost(raised)


def _connection_lost(error: BaseException) -> bool:
    current: BaseException | None = error
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, _UNAVAILABLE):
            return True
        current = current.__cause__
    return False


def _database_unavailable(context: ExceptionContext) -> None:
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


async def fetch_rows(
    source: AsyncSession | RequestDatabase,
    statement: Executable,
    params: Mapping[str, object] | None = None,
) -> list[Any]:
    """The rows of a read-only Core statement (plain columns): named tuples by column label.

    On PostgreSQL this goes straight to asyncpg on the request's connection (SQL compiled once
    per statement, asyncpg's prepared-statement cache, the same type conversions as
    SQLAlchemy's), inside the session's transaction if one is open, without opening one if not:
    a read needs no BEGIN/ROLLBACK of its own under READ COMMITTED. Elsewhere, Core execution
    on the session's connection. The adapter's lock is held, so no two statements share the
    connection at once.
    """
    if isinstance(source, RequestDatabase):
        if not source._direct:
            return await _core_rows(source.session, statement, params)
        sync = await source._reading_connection()
    else:
        if source.sync_session.bind.dialect.driver != "asyncpg":  # type: ignore[union-attr]
            return await _core_rows(source, statement, params)
        sync = await _session_connection(source)
    compiled = _COMPILED.get(id(statement))
    if compiled is None or compiled.statement is not statement:
        compiled = _COMPILED[id(statement)] = _Compiled(statement, sync.dialect)
        if len(_COMPILED) > 1024:
            _COMPILED.clear()
    values = {**compiled.defaults, **(params or {})} if compiled.defaults else (params or {})
    args = [convert(values[name]) if convert else values[name] for name, convert in compiled.binds]
    records = await fetch_on_driver(sync, compiled.sql, args)
    return list(map(compiled.make, records))


async def _core_rows(
    session: AsyncSession, statement: Executable, params: Mapping[str, object] | None
) -> list[Any]:
    connection = await session.connection()
    result = await connection.execute(statement, params)
    return list(map(_row_type(tuple(result.keys()))._make, result))


async def _session_connection(session: AsyncSession) -> Connection:
    sync = held_connection(session)
    if sync is None:
        sync = (await session.connection()).sync_connection
        assert sync is not None
    return sync


def dialect_name(source: AsyncSession | RequestDatabase) -> str:
    """`postgresql` or `sqlite`: the backend a request's database or a session talks to."""
    if isinstance(source, RequestDatabase):
        return str(source._engine.dialect.name)
    bind = source.sync_session.bind
    assert bind is not None
    return str(bind.dialect.name)


def orm_session(source: AsyncSession | RequestDatabase) -> AsyncSession:
    """The ORM session of a request's database (made if need be), or the session given."""
    return source.session if isinstance(source, RequestDatabase) else source


class RequestSession(Session):
    """The ORM session of a request; `wrote` once it has flushed changes or executed anything
    but a SELECT (`RequestDatabase.wrote`)."""

    wrote = False


@event.listens_for(RequestSession, "after_flush")
def _flushed(session: RequestSession, _flush_context: UOWTransaction) -> None:
    session.wrote = True


@event.listens_for(RequestSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.wrote = True  # type: ignore[attr-defined]


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=RequestSession
    )
