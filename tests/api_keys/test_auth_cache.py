"""The verified-key cache (gateway/auth.py `VerifiedKeyCache`): a key read once is not read
again for a few seconds, and stops at once when it is revoked, its user deleted or changed,
in this process or (PostgreSQL) in any other."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlmodel import col

from gateway import auth
from gateway.auth import AuthCacheMismatch, VerifiedKeyCache
from gateway.db.models import ApiKey, utcnow
from resolvers.api_keys import revoke_api_key
from tests.conftest import Client, Env, running_env

ROOT = Path(__file__).resolve().parents[2]
VIEWER = "{ viewer { id displayName } }"
# The cache serves hits without reading the key again (tests elsewhere verify every hit).
pytestmark = pytest.mark.settings(auth_cache_verify=False)


async def listening(env: Env) -> VerifiedKeyCache:
    """The app's cache once it serves (on PostgreSQL: once its listener listens)."""
    cache = env.state.key_cache
    assert cache is not None
    cache.start()
    assert await eventually(lambda: cache.serving)
    return cache


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether `condition` holds before `seconds` have passed (polling)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def statements(env: Env, client: Client) -> list[str]:
    with env.counter.counting() as seen:
        await client.gql_data(VIEWER)
    return list(seen)


def reads_a_key(seen: list[str]) -> bool:
    return any("FROM api_keys" in statement for statement in seen)


async def refused_within(client: Client, seconds: float) -> bool:
    """Whether the client's key is refused before `seconds` have passed (polling)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await client.get("/users/me")).status_code == 401:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_cached_key_costs_one_statement_less(env: Env) -> None:
    alice = await env.user()
    cache = await listening(env)
    await statements(env, alice)  # read, cached (and its last use written)
    hit = await statements(env, alice)
    cache.invalidate(None)
    miss = await statements(env, alice)
    assert not reads_a_key(hit)
    assert reads_a_key(miss)
    assert len(miss) == len(hit) + 1


@pytest.mark.settings(auth_cache_seconds=0)
async def test_zero_seconds_reads_the_key_on_every_request(env: Env) -> None:
    alice = await env.user()
    assert env.state.key_cache is None
    await statements(env, alice)
    assert reads_a_key(await statements(env, alice))


async def test_a_cached_key_stops_at_once_when_revoked(env: Env) -> None:
    alice = await env.user()
    await listening(env)
    created = (await alice.post("/api-keys", json={"name": "second"})).json()["data"]
    second = env.client(created["key"], alice.user_id)
    assert (await second.get("/users/me")).status_code == 200  # cached now
    assert (await alice.delete(f"/api-keys/{created['id']}")).status_code == 204
    assert (await second.get("/users/me")).status_code == 401


async def test_a_cached_key_of_a_deleted_user_is_refused(env: Env) -> None:
    alice = await env.user()
    await listening(env)
    assert (await alice.get("/users/me")).status_code == 200
    assert (await alice.delete("/users/me")).status_code in (200, 204)
    assert (await alice.get("/users/me")).status_code == 401


async def test_a_cached_key_past_its_expiry_is_refused(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await env.user()
    await listening(env)
    expires = (utcnow() + timedelta(hours=1)).isoformat()
    created = (await alice.post("/api-keys", json={"name": "hour", "expiresAt": expires})).json()
    hourly = env.client(created["data"]["key"], alice.user_id)
    assert (await hourly.get("/users/me")).status_code == 200  # cached now
    later = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(auth, "utcnow", lambda: later)
    assert (await hourly.get("/users/me")).status_code == 401


async def test_the_viewer_changed_in_this_process_is_shown_at_once(env: Env) -> None:
    alice = await env.user(name="Alice")
    await listening(env)
    assert (await alice.gql_data(VIEWER))["viewer"]["displayName"] == "Alice"
    assert (await alice.patch("/users/me", json={"displayName": "Alicia"})).status_code == 200
    assert (await alice.gql_data(VIEWER))["viewer"]["displayName"] == "Alicia"


@pytest.mark.settings(auth_cache_max_entries=2)
async def test_the_cache_holds_at_most_its_maximum_of_keys(env: Env) -> None:
    users = [await env.user() for _ in range(3)]
    cache = await listening(env)
    for user in users:
        await user.gql_data(VIEWER)
    assert len(cache) == 2
    assert reads_a_key(await statements(env, users[0]))  # the oldest went first


@pytest.mark.settings(auth_cache_verify=True)
async def test_verify_mode_fails_a_hit_the_database_contradicts(env: Env) -> None:
    alice = await env.user()
    await listening(env)
    await alice.gql_data(VIEWER)
    # Behind the sessions' back (a connection's own statement): no change is told.
    async with env.state.engine.begin() as connection:
        await connection.execute(update(ApiKey).values(revoked_at=utcnow()))
    with pytest.raises(AuthCacheMismatch):
        await alice.gql_data(VIEWER)


def test_an_entry_past_the_keys_expiry_is_not_served() -> None:
    cache = VerifiedKeyCache(seconds=60, max_entries=10)
    cache.listening()
    principal = auth.Principal(user_id="usr-1", via="api_key", api_key_id="key-1")
    now = utcnow()
    cache.put("digest", principal, now + timedelta(seconds=1), cache.generation)
    assert cache.get("digest", now) == principal
    assert cache.get("digest", now + timedelta(seconds=1)) is None


def test_a_read_that_began_before_a_change_is_not_cached() -> None:
    cache = VerifiedKeyCache(seconds=60, max_entries=10)
    cache.listening()
    principal = auth.Principal(user_id="usr-1", via="api_key", api_key_id="key-1")
    began = cache.generation
    cache.invalidate(frozenset({"usr-1"}))
    cache.put("digest", principal, None, began)
    assert cache.get("digest", utcnow()) is None


# --- PostgreSQL: every process hears of a change -----------------------------------------


def postgresql_only(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("LISTEN/NOTIFY: PostgreSQL only (SQLite has one process)")


@pytest.mark.settings(auth_cache_seconds=60)
async def test_a_key_revoked_by_another_process_stops_within_a_second(env: Env) -> None:
    postgresql_only(env)
    alice = await env.user()
    await listening(env)
    assert (await alice.get("/users/me")).status_code == 200  # cached here, for a minute
    async with running_env(env.settings) as other:  # another app: its own engine and cache
        async with other.sessions() as session:
            await revoke_api_key(session, [col(ApiKey.user_id) == alice.user_id])
    assert await refused_within(alice, 1.0)


@pytest.mark.settings(auth_cache_seconds=60)
async def test_a_key_revoked_by_the_command_line_stops_within_a_second(env: Env) -> None:
    postgresql_only(env)
    alice = await env.user()
    await listening(env)
    assert (await alice.get("/users/me")).status_code == 200  # cached here, for a minute
    (key_id,) = await env.all(select(col(ApiKey.id)).where(col(ApiKey.user_id) == alice.user_id))
    variables = {
        "GATEWAY_DATABASE_URL": env.settings.database_url,
        "GATEWAY_DATABASE_SCHEMA": str(env.settings.database_schema),
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    command = [sys.executable, "-m", "gateway.cli", "keys", "revoke", key_id]
    revoked = await asyncio.to_thread(
        subprocess.run, command, env=variables, capture_output=True, text=True, timeout=60
    )
    assert revoked.returncode == 0, revoked.stderr
    assert await refused_within(alice, 1.0)


async def test_losing_the_listener_empties_the_cache_until_it_listens_again(env: Env) -> None:
    postgresql_only(env)
    alice = await env.user()
    cache = await listening(env)
    listener = cache.listener
    assert listener is not None and listener.backend_pid is not None
    await alice.gql_data(VIEWER)
    assert len(cache) == 1
    async with env.sessions() as session:
        await session.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.backend_pid}
        )
    assert await eventually(lambda: listener.connections == 2)
    assert len(cache) == 0
    assert reads_a_key(await statements(env, alice))


async def test_a_cache_that_is_not_listening_reads_every_key(env: Env) -> None:
    postgresql_only(env)
    alice = await env.user()
    cache = env.state.key_cache
    assert cache is not None and cache.listener is not None
    cache.listener.dsn = "postgresql://postgres@127.0.0.1:1/nothing"  # it cannot listen
    await alice.gql_data(VIEWER)
    assert not cache.serving
    assert reads_a_key(await statements(env, alice))
    assert len(cache) == 0
