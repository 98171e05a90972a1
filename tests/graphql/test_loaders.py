"""resolvers/batching.BatchLoader: a DataLoader's batching, caching and errors, cheaper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import Any

import pytest
from aiodataloader import DataLoader

from resolvers.batching import BatchLoader


def _recording(batches: list[list[str]], fail: str | None = None) -> BatchLoader:
    async def batch(keys: list[str]) -> list[object]:
        batches.append(list(keys))
        await asyncio.sleep(0)
        if fail is not None and fail in keys:
            raise RuntimeError(f"batch with {fail} failed")
        return [ValueError(f"no {key}") if key.startswith("bad") else key.upper() for key in keys]

    return BatchLoader(batch, max_batch_size=3)


@pytest.mark.parametrize("delays", [(0, 0, 0), (0, 1, 0), (1, 0, 2), (0, 2, 3), (3, 3, 0)])
async def test_keys_are_batched_at_the_same_turns_as_aiodataloaders(
    delays: tuple[int, ...],
) -> None:
    async def batches_of(make: Callable[[Any], DataLoader]) -> list[list[str]]:
        batches: list[list[str]] = []

        async def batch(keys: list[str]) -> list[str]:
            batches.append(list(keys))
            return keys

        loader = make(batch)

        async def load_after(turns: int, key: str) -> str:
            for _ in range(turns):  # a resolver that awaited before loading
                await asyncio.sleep(0)
            value: str = await loader.load(key)
            return value

        keys = [f"k{i}" for i in range(len(delays))]
        assert await asyncio.gather(*map(load_after, delays, keys)) == keys
        return batches

    ours = await batches_of(lambda batch: BatchLoader(batch, max_batch_size=1000))
    theirs = await batches_of(lambda batch: DataLoader(batch, max_batch_size=1000))
    assert ours == theirs


@pytest.mark.parametrize("method", ["load_many", "fetch_each"])
async def test_a_batch_is_split_at_the_maximum_size(method: str) -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    assert await getattr(loader, method)(["a", "b", "c", "d"]) == ["A", "B", "C", "D"]
    assert batches == [["a", "b", "c"], ["d"]]


async def test_loaded_and_primed_keys_are_not_loaded_again() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    loader.prime("p", "primed")
    assert await loader.load("a") == "A"
    assert await loader.load_many(["a", "p"]) == ["A", "primed"]
    assert batches == [["a"]]


async def test_an_error_value_fails_its_key_only() -> None:
    loader = _recording([])
    a, bad = await asyncio.gather(loader.load("a"), loader.load("bad"), return_exceptions=True)
    assert a == "A"
    assert isinstance(bad, ValueError)


async def test_a_failed_batch_fails_every_key_and_is_not_cached() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches, fail="x")
    results = await asyncio.gather(loader.load("a"), loader.load("x"), return_exceptions=True)
    assert [str(r) for r in results] == ["batch with x failed"] * 2
    with pytest.raises(RuntimeError):
        await loader.load("x")
    assert batches == [["a", "x"], ["x"]]


async def test_fetch_runs_the_batch_now_for_its_key_and_caches_it() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    assert await loader.fetch("a") == "A"
    assert await loader.load("a") == "A"
    assert await loader.fetch("a") == "A"
    assert batches == [["a"]]


async def test_a_load_of_a_key_being_fetched_waits_for_that_fetch() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    assert await asyncio.gather(loader.fetch("a"), loader.load("a")) == ["A", "A"]
    assert batches == [["a"]]


async def test_fetch_raises_a_keys_error_value() -> None:
    loader = _recording([])
    with pytest.raises(ValueError, match="no bad"):
        await loader.fetch("bad")


async def test_a_failed_fetch_is_not_cached() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches, fail="x")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="batch with x failed"):
            await loader.fetch("x")
    assert batches == [["x"], ["x"]]


async def test_fetch_each_runs_one_batch_now_for_the_keys_not_cached() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    assert await loader.load("a") == "A"
    results = await loader.fetch_each(["a", "b", "bad1", "c", "b"])
    assert results[:2] == ["A", "B"] and results[3:] == ["C", "B"]
    assert isinstance(results[2], ValueError) and str(results[2]) == "no bad1"
    assert batches == [["a"], ["b", "bad1", "c"]]
    assert await loader.fetch_each(["c", "b"]) == ["C", "B"]  # cached
    assert len(batches) == 2


async def test_a_failed_fetch_each_fails_its_keys_and_is_not_cached() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches, fail="x")
    assert await loader.load("a") == "A"
    first = await loader.fetch_each(["a", "x", "y"])
    assert first[0] == "A"
    assert [str(e) for e in first[1:]] == ["batch with x failed"] * 2
    assert await loader.fetch_each(["y"]) == ["Y"]  # not cached: asked again
    assert batches == [["a"], ["x", "y"], ["y"]]


async def test_a_batch_function_giving_the_wrong_number_of_values_fails_fetch_each() -> None:
    async def short(keys: list[str]) -> list[str]:
        return keys[:1]

    results = await BatchLoader(short, max_batch_size=10).fetch_each(["a", "b"])
    assert all(isinstance(r, TypeError) for r in results)


async def test_fetch_each_waits_for_a_load_of_the_same_key_under_way() -> None:
    batches: list[list[str]] = []
    loader = _recording(batches)
    pending = asyncio.ensure_future(loader.load("a"))
    await asyncio.sleep(0)  # queued, not dispatched yet
    assert await loader.fetch_each(["a", "b"]) == ["A", "B"]
    assert await pending == "A"
    assert sorted(batches) == [["a"], ["b"]]


async def test_a_cancelled_waiter_does_not_cancel_the_load_others_wait_for() -> None:
    # graphql-core cancels the sibling fields of one whose error nulls their parent; a sibling
    # that waited for the same key as a field elsewhere must not take that field down.
    batches: list[list[str]] = []
    loader = _recording(batches)
    cancelled = asyncio.ensure_future(loader.load("a"))
    kept = asyncio.ensure_future(loader.load("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await kept == "A"
    assert await loader.load("a") == "A"  # and the cache holds the value, not a cancellation
    assert batches == [["a"]]


async def fetching_and_waiting(
    loader: BatchLoader[str, str], started: asyncio.Event
) -> tuple[asyncio.Future[str], asyncio.Future[str]]:
    """A fetch of "a" under way (its batch has `started`) and a load of "a" waiting on it."""
    fetching = asyncio.ensure_future(loader.fetch("a"))
    await started.wait()
    waiting = asyncio.ensure_future(loader.load("a"))
    await asyncio.sleep(0)
    return fetching, waiting


async def test_a_cancelled_fetch_does_not_cancel_the_load_others_wait_for() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def batch(keys: list[str]) -> list[str]:
        started.set()
        await release.wait()
        return [key.upper() for key in keys]

    loader = BatchLoader(batch, max_batch_size=10)
    first, waiting = await fetching_and_waiting(loader, started)
    waiting.cancel()
    release.set()
    assert await first == "A"
    assert await loader.load("a") == "A"


async def test_waiters_of_a_cancelled_fetch_get_an_error_not_a_hang() -> None:
    started = asyncio.Event()

    async def batch(keys: list[str]) -> list[str]:
        started.set()
        await asyncio.Event().wait()  # never answers
        return keys

    loader = BatchLoader(batch, max_batch_size=10)
    fetching, waiting = await fetching_and_waiting(loader, started)
    fetching.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        await waiting
    assert "a" not in loader._cache


async def test_aiodataloaders_internals_that_batching_reads_are_still_there() -> None:
    # resolvers/batching.py is the one module that reads them; a new aiodataloader that moves
    # one fails here, naming it, rather than in a request.
    import aiodataloader

    for name in ("dispatch_queue_batch", "Loader"):
        assert hasattr(aiodataloader, name), f"aiodataloader.{name} moved (resolvers/batching.py)"
    assert aiodataloader.Loader._fields == ("key", "future"), "aiodataloader.Loader changed"

    async def batch(keys: list[str]) -> list[str]:
        return keys

    theirs = DataLoader(batch)
    for name in ("_cache", "_queue", "do_resolve_reject", "batch_load_fn", "max_batch_size"):
        assert hasattr(theirs, name), f"DataLoader.{name} moved (resolvers/batching.py)"


async def test_every_loader_of_a_request_is_a_batch_loader() -> None:
    from types import SimpleNamespace

    from resolvers.loaders import Loaders

    context = SimpleNamespace(db=SimpleNamespace(wrote=False, coalescer=None), principal=None)
    loaders = Loaders(context)  # type: ignore[arg-type]
    names = [name for name, value in vars(Loaders).items() if isinstance(value, cached_property)]
    assert len(names) > 40
    for name in names:
        if name != "db":
            assert isinstance(getattr(loaders, name), BatchLoader), name
    loaders.release()
    assert vars(loaders) == {}
