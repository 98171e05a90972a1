"""What the command line's commands share: a database session, or a service-token Context,
for the length of one command."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.settings import Settings

if TYPE_CHECKING:
    from resolvers.context import Context

_T = TypeVar("_T")
# How long a command waits, at its end, for the threads it started to finish.
THREADS_GRACE_SECONDS = 2.0


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` for a command, whose loop closes only once the threads the command
    started have finished (up to `THREADS_GRACE_SECONDS`). A driver's worker thread that is
    stopped without being waited for (aiosqlite's, after a connection that failed to open)
    would otherwise hand its last result to a closed loop, and Python would print that
    thread's error after the command's own one line."""

    async def command() -> _T:
        before = set(threading.enumerate())
        try:
            return await main
        finally:
            await asyncio.get_running_loop().shutdown_default_executor()
            deadline = time.monotonic() + THREADS_GRACE_SECONDS
            # Daemon threads too: SQLAlchemy marks aiosqlite's worker a daemon.
            for thread in set(threading.enumerate()) - before:
                thread.join(max(0.0, deadline - time.monotonic()))

    return asyncio.run(command())


async def with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[_T]]) -> _T:
    from gateway.db.engine import create_engine
    from gateway.db.session import create_session_factory

    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    try:
        async with create_session_factory(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


async def as_service(settings: Settings, work: Callable[[Context], Awaitable[_T]]) -> _T:
    """Run `work` as the service token would over the API: the same resolvers, the same
    authorization (`permissions.require_service`), a request's Context of its own."""
    from gateway.auth import Principal
    from gateway.db.engine import create_engine
    from gateway.db.session import create_session_factory
    from gateway.services import build_services
    from resolvers.context import Context

    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    services = build_services(settings)  # the payment provider, for a refund
    ctx = Context(
        settings=settings,
        session_factory=create_session_factory(engine),
        services=services,
        principal=Principal(user_id=None, via="service"),
    )
    try:
        return await work(ctx)
    finally:
        await ctx.close()
        await services.close()
        await engine.dispose()
