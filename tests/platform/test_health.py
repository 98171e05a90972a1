"""Health, readiness, request ids, and what serving does at startup."""

from __future__ import annotations

import gc
from pathlib import Path

from gateway.app import GC_THRESHOLDS, create_app
from tests.conftest import Env, base_settings


async def test_healthz_answers_ok_without_auth(env: Env) -> None:
    response = await env.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(env: Env) -> None:
    response = await env.http.get("/readyz")
    assert response.status_code == 200


async def test_every_response_carries_a_request_id(env: Env) -> None:
    response = await env.http.get("/healthz")
    assert len(response.headers["x-request-id"]) == 16


async def test_request_ids_differ_from_request_to_request(env: Env) -> None:
    ids = {(await env.http.get("/healthz")).headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


async def test_a_client_request_id_is_echoed(env: Env) -> None:
    response = await env.http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_serving_freezes_startup_objects_and_collects_young_ones_less_often(
    tmp_path: Path,
) -> None:
    app = create_app(base_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/gc.db"))
    before = gc.get_threshold()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
