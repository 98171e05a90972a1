"""A request's database (one connection, the ORM session only when needed), the hot reads
that go straight to the driver (`fetch_rows`), and the session factory."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, Literal

import asyncpg
from sqlalchemy import Connection, DateTime, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import ARRAY, NullType, TypeEngine

from gateway.db.coalesce import ReadCoalescer, Shape
from gateway.db.models import UTCDateTime
from gateway.db.sqlalchemy_internals import CompiledForDriver, fetch_on_driver, held_connection

# `Settings.read_coalescing`: plain reads of one turn as one statement, each alone, or both.
CoalesceMode = Literal["on", "off", "verify"]

# A driver record made into a row: a named tuple of the statement's column labels (asyncpg
# ships no type hints, so its Record is untyped to mypy).
RowMaker = Callable[[asyncpg.Record], tuple[object, ...]]


class _Compiled:
    """A statement compiled for asyncpg (`CompiledForDriver`) and how to make its rows."""

    __slots__ = ("binds", "defaults", "make", "shape", "sql", "statement")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = CompiledForDriver(statement, dialect)
        self.statement = statement
        self.sql = compiled.sql
        self.binds = compiled.binds
        self.defaults = compiled.defaults
        columns = compiled.columns
        self.shape = Shape(
            self.sql,
            len(self.binds),
            len(columns),
            tuple(i for i, (_, type_, _) in enumerate(columns) if _is_timestamptz(type_, dialect)),
            all(_arrayable(type_, dialect) for _, type_, _ in columns),
        )
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


def _is_timestamptz(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """A column PostgreSQL sends as `timestamptz` (what the engine decodes from text)."""
    impl = type_.dialect_impl(dialect)
    impl = getattr(impl, "impl_instance", impl)
    return isinstance(impl, DateTime) and bool(impl.timezone)


def _arrayable(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """A column PostgreSQL can aggregate into an array of its values (coalesce.py): not an
    array itself (`array_agg` would make it a dimension more), and of a known type."""
    impl = type_.dialect_impl(dialect)
    return not isinstance(impl, ARRAY | NullType)


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

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        coalesce: CoalesceMode = "off",
    ) -> None:
        self._factory = session_factory
        self._engine: AsyncEngine = session_factory.kw["bind"]
        self._direct = self._engine.dialect.driver == "asyncpg"
        self._session: AsyncSession | None = None
        self._connection: AsyncConnection | None = None
        # The plain reads of one event-loop turn as one statement (gateway/db/coalesce.py).
        self._coalescer = (
            ReadCoalescer(self._reading_connection, verify=coalesce == "verify")
            if self._direct and coalesce != "off"
            else None
        )

    @property
    def coalescer(self) -> ReadCoalescer | None:
        """Where a request's plain reads of one turn meet (None: each goes alone)."""
        return self._coalescer

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
        coalescer = source._coalescer
        if coalescer is not None:
            compiled = _compiled(statement, source._engine.dialect)
            records = await coalescer.fetch(compiled.shape, _args(compiled, params))
            return list(map(compiled.make, records))
        sync = await source._reading_connection()
    else:
        if source.sync_session.bind.dialect.driver != "asyncpg":  # type: ignore[union-attr]
            return await _core_rows(source, statement, params)
        sync = await _session_connection(source)
    compiled = _compiled(statement, sync.dialect)
    records = await fetch_on_driver(sync, compiled.sql, _args(compiled, params))
    return list(map(compiled.make, records))


def _compiled(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = _COMPILED.get(id(statement))
    if compiled is None or compiled.statement is not statement:
        compiled = _COMPILED[id(statement)] = _Compiled(statement, dialect)
        if len(_COMPILED) > 1024:
            _COMPILED.clear()
    return compiled


def _args(compiled: _Compiled, params: Mapping[str, object] | None) -> list[object]:
    values = {**compiled.defaults, **(params or {})} if compiled.defaults else (params or {})
    return [convert(values[name]) if convert else values[name] for name, convert in compiled.binds]


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
