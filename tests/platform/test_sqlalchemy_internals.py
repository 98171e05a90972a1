"""What gateway/db/sqlalchemy_internals.py reads of SQLAlchemy's private API is still there,
looked for on real objects: each check names the attribute and the function that needs it, so
an upgrade that moves one fails here, clearly, instead of in production."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, text
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.orm import Session
from sqlalchemy.orm.session import SessionTransactionState
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.types import TypeEngine

from gateway.db.engine import create_engine
from gateway.db.sqlalchemy_internals import CompiledForDriver
from tests.conftest import PG_URL

TABLE = Table("t", MetaData(), Column("id", Integer), Column("name", String))


def has(owner: Any, name: str, needed_by: str) -> None:
    assert hasattr(owner, name), (
        f"SQLAlchemy {sqlalchemy.__version__} no longer has "
        f"{owner.__name__ if isinstance(owner, type | ModuleType) else type(owner).__name__}"
        f".{name}, "
        f"needed by gateway/db/sqlalchemy_internals.py {needed_by}"
    )


def test_a_connection_and_its_engine_have_what_fetch_on_driver_reads() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        for name in ("_has_events", "_echo", "_log_info", "_handle_dbapi_exception"):
            has(connection, name, "fetch_on_driver")
    has(engine, "_has_events", "fetch_on_driver")


def test_a_session_transaction_has_what_held_connection_reads() -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        has(session, "_transaction", "held_connection")
        transaction = session._transaction
        has(transaction, "_state", "held_connection")
        has(transaction, "_connections", "held_connection")
        assert transaction._state is SessionTransactionState.ACTIVE
        assert engine in transaction._connections


def test_the_pool_and_types_have_what_the_adapter_overrides_and_reads() -> None:
    has(AsyncAdaptedQueuePool, "_do_get", "HookedQueuePool")
    has(AsyncAdaptedQueuePool, "_do_return_conn", "HookedQueuePool")
    has(TypeEngine, "_cached_result_processor", "CompiledForDriver")


def test_a_statement_compiles_for_the_driver() -> None:
    statement = select(TABLE.c.id, TABLE.c.name).where(TABLE.c.id == bindparam("key"))
    compiled = CompiledForDriver(statement, pg_asyncpg.dialect())
    assert compiled.sql.startswith("SELECT t.id, t.name")
    assert [name for name, _ in compiled.binds] == ["key"]
    assert [name for name, _, _ in compiled.columns] == ["id", "name"]


@pytest.mark.skipif(not PG_URL, reason="the asyncpg adapter needs PostgreSQL")
async def test_the_asyncpg_adapter_has_what_fetch_on_driver_reads() -> None:
    engine = create_engine(PG_URL or "")
    try:
        async with engine.connect() as connection:
            sync = connection.sync_connection
            assert sync is not None
            adapter = sync.connection.dbapi_connection
            for name in ("_execute_mutex", "_connection", "_handle_exception"):
                has(adapter, name, "fetch_on_driver")
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("module", "name", "needed_by"),
    [
        ("sqlalchemy.connectors.asyncio", "AsyncAdapt_Error", "outage.unavailable"),
        ("sqlalchemy.util.concurrency", "await_", "pool.GatedPool"),
        ("sqlalchemy.util.concurrency", "greenlet_spawn", "fetch_on_driver"),
    ],
)
def test_the_undocumented_modules_still_hold_what_the_adapter_imports(
    module: str, name: str, needed_by: str
) -> None:
    has(importlib.import_module(module), name, needed_by)
