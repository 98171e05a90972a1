"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


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
    url: str, *, echo: bool = False, pool_size: int = 10, search_path: str | None = None
) -> AsyncEngine:
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": False}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    server_settings = {"application_name": "account-gateway"}
    if search_path:
        server_settings["search_path"] = search_path
    kwargs["connect_args"] = {"server_settings": server_settings}
    kwargs["pool_size"] = pool_size
    kwargs["max_overflow"] = pool_size
    return create_async_engine(url, **kwargs)


async def execute_core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """Run a Core statement (plain columns, no entities) on the session's connection, in its
    transaction, skipping the ORM's execution and result layers (a third of a small read's CPU)."""
    connection = await session.connection()
    return await connection.execute(statement, params)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
