"""bench/layers.py, which sums a sampled profile by layer: every module of the project counts
for a layer, and a sample counts for the deepest layer on its stack."""

from __future__ import annotations

from pathlib import Path

from tests.bench_scripts import bench_module

ROOT = Path(__file__).resolve().parents[2]
layers = bench_module("layers")
START = (
    "<module> (inprocess.py:198);run (uvloop/__init__.py:92);Runner.run (asyncio/runners.py:118)"
)
REQUEST = f"{START};measure.<locals>.worker (inprocess.py:166);call (inprocess.py:95)"


def test_every_module_of_the_project_counts_for_a_layer() -> None:
    modules = [
        path.relative_to(ROOT).as_posix()
        for package in ("gateway", "schema", "resolvers")
        for path in (ROOT / package).rglob("*.py")
    ]
    assert modules
    assert [m for m in modules if layers.layer_of(f"f ({m}:1)") is None] == []


def test_a_sample_counts_for_the_deepest_layer_on_its_stack() -> None:
    raw = "\n".join(
        [
            f"{REQUEST};GraphQLApp.__call__ (gateway/graphql_http.py:68);"
            "fetch_rows (gateway/db/session.py:218);shield (asyncio/tasks.py:884) 3",
            f"{REQUEST};GraphQLApp.__call__ (gateway/graphql_http.py:68) 2",
            f"{START} 5",  # the event loop's own work: no Python frame of a layer below it
            f"{START};main (inprocess.py:142);create_app (gateway/app.py:300) 7",  # the start
        ]
    )
    assert layers.summarise(raw) == {
        "database: pool, coalescer, driver": 3,
        "GraphQL view: body, context, answer": 2,
        layers.EVENT_LOOP: 5,
    }
