"""The batching loader every per-request DataLoader is (`BatchLoader[K, V]`), and `load_each`.

aiodataloader's dispatch internals (`dispatch_queue_batch`, its queued `Loader` pairs, the
`_cache` and `_queue` it keeps) are read here and nowhere else; `tests/graphql/test_loaders.py` holds
the batching turns equal to aiodataloader's and fails naming an internal that moved.
"""

from __future__ import annotations

import asyncio
from asyncio import Future
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Sequence
from functools import cached_property
from typing import Any, Generic, Protocol, TypeVar, overload

from aiodataloader import DataLoader, dispatch_queue_batch
from aiodataloader import Loader as QueuedLoad

from gateway import tracing

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
L = TypeVar("L")

# A batch function: the values (or an exception per key) of its keys, in their order.
BatchFn = Callable[[list[K]], Awaitable[list[V]]]


class ComingReads(Protocol):
    """Who wants to know that a batch is queued and will read a few turns from now (the
    request's `gateway.db.coalesce.ReadCoalescer`, so that it sends the level's reads as one)."""

    def expect(self) -> None: ...
    def arrived(self) -> None: ...


class BatchLoader(DataLoader[K, V], Generic[K, V]):
    """aiodataloader's DataLoader (load, load_many, prime, clear, its batch checks) with a
    cheaper dispatch: the queue is taken at the same point of the event loop (two turns after
    the first load of a batch), by two plain callbacks instead of two tasks, and each batch
    runs in one task. A request makes a few loaders and a few batches on each; this is most of
    what a loader costs a small request."""

    def __init__(self, batch_load_fn: BatchFn[K, V], max_batch_size: int = 1000) -> None:
        self.loop = asyncio.get_running_loop()
        self.name = ""  # what its batches' spans say: `Loaders` names it after its attribute
        tracer = tracing.tracer()
        if tracer is not None:  # one span per batch (gateway/tracing.py); none when off
            function = getattr(batch_load_fn, "__qualname__", "batch").partition(".<locals>")[0]
            batch_load_fn = tracing.traced_batch(
                tracer, lambda: self.name or function, batch_load_fn
            )
        # aiodataloader declares a coroutine function; any function returning an awaitable does.
        self.batch_load_fn = batch_load_fn  # type: ignore[assignment]
        self.max_batch_size = max_batch_size
        self._cache = {}
        self._queue: list[QueuedLoad] = []
        self._running: set[asyncio.Task[None]] = set()
        # Told when a batch is queued and when it starts (`Loaders` sets it: `loader`).
        self.coming: ComingReads | None = None

    def get_cache_key(self, key: K) -> K:
        return key

    def load(self, key: K) -> Future[V]:
        """aiodataloader's `load`, whose cached future is shared by every waiter for the key:
        each waiter gets it shielded, so that one being cancelled (graphql-core cancels the
        siblings of a field whose error nulls their parent) cancels neither the load nor the
        other waiters (it did: they failed with CancelledError, a 500)."""
        return asyncio.shield(super().load(key))

    async def fetch(self, key: K) -> V:
        """`await load(key)` without waiting to batch: the batch function runs now, for this
        key alone, in the caller's task. For loads that have nothing to batch with (a REST
        route's, or a field only ever asked for one parent, like the viewer's own usage), where
        batching only costs event-loop turns and a task. Cached like `load`: a load or fetch of
        the same key meanwhile waits for this one."""
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self.loop.create_future()
            try:
                values = await self.batch_load_fn([key])
                if not isinstance(values, list) or len(values) != 1:
                    raise TypeError(f"batch function returned {values!r} for one key")
            except Exception as error:
                self._cache.pop(key, None)  # a failed batch is not cached (as aiodataloader)
                cached.set_exception(error)
            except BaseException:  # this task was cancelled: others waiting must not hang
                self._abandon([(key, cached)])
                raise
            else:
                value = values[0]
                if isinstance(value, Exception):
                    cached.set_exception(value)
                else:
                    cached.set_result(value)
        return await asyncio.shield(cached)  # another waiter's cancellation is not this one's

    async def fetch_each(self, keys: Sequence[K]) -> list[V | Exception]:
        """Each key's value or error, in order, without waiting to batch: the keys not cached
        go to the batch function now, together, in the caller's task. For the batch forms of
        relation fields (schema/declare.py), which already hold a whole level's keys: the
        per-key queueing, the event-loop turns and the task of `load` bought nothing there.
        Cached like `load` (a load of one of these keys meanwhile waits for this batch); a
        failed batch fails every key it had and is not cached."""
        cache = self._cache
        futures: list[Future[V]] = []
        missing: dict[K, Future[V]] = {}
        for key in keys:
            future = cache.get(key)
            if future is None:
                future = cache[key] = missing[key] = self.loop.create_future()
            futures.append(future)
        pending = list(missing.items())
        size = self.max_batch_size or len(pending)
        for start in range(0, len(pending), size):
            await self._run_batch(pending[start : start + size])
        results: list[V | Exception] = []
        for future in futures:
            if not future.done():  # another load of this key is under way
                try:
                    await asyncio.shield(future)
                except Exception:  # its error is read below
                    pass
            error = future.exception()
            if error is None:
                results.append(future.result())
            elif isinstance(error, Exception):
                results.append(error)
            else:  # a BaseException (a cancelled load): not a value to hand on
                raise error
        return results

    def _abandon(self, batch: list[tuple[K, Future[V]]]) -> None:
        """The task loading these keys was cancelled: they leave the cache, and whoever else
        waits for them gets an error rather than waiting for ever."""
        for key, future in batch:
            self._cache.pop(key, None)
            if not future.done():
                future.set_exception(RuntimeError(f"the load of {key!r} was cancelled"))

    async def _run_batch(self, batch: list[tuple[K, Future[V]]]) -> None:
        """Settle the (key, future) pairs with one call of the batch function."""
        try:
            values = await self.batch_load_fn([key for key, _ in batch])
            if not isinstance(values, list) or len(values) != len(batch):
                raise TypeError(f"batch function returned {values!r} for {len(batch)} keys")
        except Exception as error:
            for key, future in batch:
                self._cache.pop(key, None)
                future.set_exception(error)
            return
        except BaseException:
            self._abandon(batch)
            raise
        for (_, future), value in zip(batch, values, strict=True):
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)

    def do_resolve_reject(self, key: K, future: Future[V]) -> None:
        self._queue.append(QueuedLoad(key=key, future=future))
        if len(self._queue) == 1:
            if self.coming is not None:
                self.coming.expect()
            self.loop.call_soon(self.loop.call_soon, self._dispatch)

    def _dispatch(self) -> None:
        queue, self._queue = self._queue, []
        size = self.max_batch_size or len(queue)
        for start in range(0, len(queue), size):
            batch = dispatch_queue_batch(self, queue[start : start + size])
            if start == 0 and self.coming is not None:
                batch = _arriving(self.coming, batch)
            task = self.loop.create_task(batch)
            self._running.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._running.discard)


async def _arriving(coming: ComingReads, batch: Coroutine[Any, Any, None]) -> None:
    """The queued batch that `coming` expects, telling it that it starts (in the same step as
    its batch function's first read)."""
    coming.arrived()
    await batch


class loader(cached_property[L]):
    """`cached_property` for the loaders of a request (`resolvers.loaders.Loaders`): made on
    first use and kept, and named after the attribute, which their batches' spans show."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> loader[L]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> L: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> L | loader[L]:
        if instance is None:
            return self
        made: L = super().__get__(instance, owner)
        if isinstance(made, BatchLoader):
            if self.attrname is not None:
                made.name = self.attrname
            made.coming = getattr(instance, "coming_reads", None)
        return made


async def load_each(loader: DataLoader[K, V], keys: Sequence[K]) -> list[V | Exception]:
    """Each key's value, or its error, in order: `load_many` without failing all for one (the
    keys still go out in one batch). For the batch forms of relation fields (schema/declare.py)."""
    if isinstance(loader, BatchLoader) and len(keys) > 1:
        # A whole level's keys (the compiled executor calls a batch form once per level):
        # nothing to wait for. One parent's keys (the standard executor calls the batch form
        # once per parent) are queued, so that the level's parents still share a batch.
        return await loader.fetch_each(keys)
    futures = [loader.load(key) for key in keys]
    values: list[V | Exception] = []
    for future in futures:
        try:
            values.append(await future)
        except Exception as error:
            values.append(error)
    return values
