"""The pool's connection gate: first come, first served for the pool's connections
(`ConnectionGate`), entered and left by the pool itself (`GatedPool`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from gateway.db.outage import connection_lost, unavailable
from gateway.db.sqlalchemy_internals import HookedQueuePool, await_
from gateway.errors import DatabaseUnavailable, ServiceBusy
from gateway.metrics import DB_POOL_IN_USE, DB_POOL_WAITING


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
            if connection_lost(error) or unavailable(error):
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
