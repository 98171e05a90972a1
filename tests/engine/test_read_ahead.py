"""Reads ahead (schema/declare.py `by_id`, `reads_ahead`): the compiled executor starts the
reads of a by-id field's children beside the field's own, and no read outlives the run.

A small schema of its own: `box(id:)` shows a box after a check that takes a few event-loop
turns (as the caller's membership does); `Box.contents` reads through a per-request cache
of started reads by key (as a DataLoader does), which its read ahead fills."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.types import Info

from schema.declare import argument_id, by_id, reads_ahead
from schema.engine.execution import ExecutionContext


@dataclass
class Reads:
    """The request's context: settings, and its reads by key, in the order they happen."""

    read_ahead: str = "on"
    may_read_ahead: bool = True
    events: list[str] = field(default_factory=list)
    started: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    field_notes: dict[Any, object] = field(default_factory=dict)
    json_fragments: bool = False

    @property
    def settings(self) -> SimpleNamespace:
        return SimpleNamespace(read_ahead=self.read_ahead, graphql_nested_pages="on")

    def read(self, key: str) -> asyncio.Future[str]:
        """A read by key, started once per request (a loader's cache)."""
        if key not in self.started:
            self.events.append(f"start {key}")
            self.started[key] = asyncio.ensure_future(self._read(key))
        return self.started[key]

    async def _read(self, key: str) -> str:
        for _ in range(3):
            await asyncio.sleep(0)
        if key.endswith(":13"):
            raise LookupError(f"no {key}")
        self.events.append(f"done {key}")
        return f"contents of {key}"


def _contents_ahead(box_id: str, info: Info, size: int = 1) -> asyncio.Future[str] | None:
    if size < 0:
        raise ValueError("a read ahead that fails is the field's to report")
    reads: Reads = info.context
    return reads.read(f"{box_id}:{size}")


@strawberry.type
class Box:
    id: strawberry.ID

    @strawberry.field
    @reads_ahead(_contents_ahead)
    async def contents(self, info: Info, size: int = 1) -> str:
        if size < 0:
            raise ValueError("size must not be negative")
        reads: Reads = info.context
        return await reads.read(f"{self.id}:{size}")

    @strawberry.field
    def label(self) -> str:
        return f"box {self.id}"


@strawberry.type
class Query:
    @strawberry.field
    @by_id(argument_id("Box"))
    async def box(self, info: Info, id: strawberry.ID) -> Box | None:
        reads: Reads = info.context
        for _ in range(2):  # the caller's access, decided over a few turns
            await asyncio.sleep(0)
        reads.events.append(f"decided {id}")
        return None if id.startswith("hidden") else Box(id=id)


SCHEMA = strawberry.Schema(query=Query, execution_context_class=ExecutionContext)


async def _run(query: str, reads: Reads) -> Any:
    result = await SCHEMA.execute(query, context_value=reads)
    return result.data, [error.message for error in result.errors or ()]


async def test_a_by_id_fields_children_start_their_reads_beside_its_own() -> None:
    reads = Reads()
    data, errors = await _run('{ box(id: "b1") { label contents(size: 2) } }', reads)
    assert (data, errors) == ({"box": {"label": "box b1", "contents": "contents of b1:2"}}, [])
    # Started before the box was decided, once: the field found it started.
    assert reads.events == ["start b1:2", "decided b1", "done b1:2"]


async def test_each_alias_reads_ahead_with_its_own_arguments() -> None:
    reads = Reads()
    query = '{ box(id: "b1") { a: contents(size: 3) ...F } } fragment F on Box { b: contents }'
    data, errors = await _run(query, reads)
    assert data == {"box": {"a": "contents of b1:3", "b": "contents of b1:1"}}, errors
    assert reads.events[:3] == ["start b1:3", "start b1:1", "decided b1"]
    assert len(reads.started) == 2


async def test_a_read_ahead_of_a_null_parent_ends_before_the_run_does() -> None:
    reads = Reads()
    data, errors = await _run('{ box(id: "hidden") { contents } }', reads)
    assert (data, errors) == ({"box": None}, [])
    assert reads.events == ["start hidden:1", "decided hidden", "done hidden:1"]
    assert all(read.done() for read in reads.started.values())


async def test_a_failed_read_ahead_is_its_fields_error_and_nobody_elses() -> None:
    reads = Reads()
    data, errors = await _run('{ box(id: "b1") { label contents(size: 13) } }', reads)
    assert (data, errors) == ({"box": None}, ["no b1:13"])  # `contents` is non-null


async def test_a_read_ahead_of_a_hidden_parent_that_fails_reports_nothing() -> None:
    reads = Reads()
    assert await _run('{ box(id: "hidden") { contents(size: 13) } }', reads) == (
        {"box": None},
        [],
    )


async def test_a_read_ahead_that_raises_leaves_the_field_to_report_its_error() -> None:
    reads = Reads()
    assert await _run('{ box(id: "b1") { contents(size: -1) } }', reads) == (
        {"box": None},
        ["size must not be negative"],
    )
    assert reads.events == ["decided b1"]


@pytest.mark.parametrize(
    "reads",
    [Reads(read_ahead="off"), Reads(may_read_ahead=False)],
    ids=["off", "not-allowed"],
)
async def test_nothing_is_read_ahead_when_off_or_when_the_context_does_not_allow_it(
    reads: Reads,
) -> None:
    data, errors = await _run('{ box(id: "b1") { contents } }', reads)
    assert (data, errors) == ({"box": {"contents": "contents of b1:1"}}, [])
    assert reads.events == ["decided b1", "start b1:1", "done b1:1"]
