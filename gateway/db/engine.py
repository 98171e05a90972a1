"""The async engine for SQLite (embedded default) and PostgreSQL: drivers, the gated pool,
timeouts, and how each new connection is set up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event
from sqlalchemy.engine import AdaptedConnection
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.db.outage import UNANSWERED_MARGIN, database_unavailable
from gateway.db.pool import GatedPool
from gateway.jsoncodec import load_json


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
    plan_cache_mode: str | None = None,
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
    request holds no request for ever.

    `plan_cache_mode` is PostgreSQL's for the engine's sessions (None: the server's): asyncpg
    prepares every statement once per connection, and this decides whether PostgreSQL plans
    it again on each execution."""
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
    if plan_cache_mode is not None:
        server_settings["plan_cache_mode"] = plan_cache_mode
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
    event.listen(engine.sync_engine, "handle_error", database_unavailable)
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
