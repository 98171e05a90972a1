"""The `gateway` command: migrate, create-user, create-api-key, export-schema, seed-demo."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway import cli_support
from gateway.app import create_app
from tests.conftest import base_settings


def run(
    tmp_path: Path, *args: str, command: list[str] | None = None, **variables: str
) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess, on a SQLite file in `tmp_path` unless
    `variables` (environment variables) say otherwise."""
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "PATH": "/usr/bin:/bin",
        **variables,
    }
    return subprocess.run(
        [*(command or [sys.executable, "-m", "gateway.cli"]), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    result = run(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    return tmp_path


async def test_create_user_prints_a_working_api_key(migrated: Path) -> None:
    result = run(migrated, "create-user", "--email", "Ops@Example.com", "--name", "Ops")
    assert result.returncode == 0, result.stderr
    token = result.stdout.split("api key:")[1].split()[0]
    app = create_app(base_settings(database_url=f"sqlite:///{migrated}/cli.db"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        me = await http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    await app.state.gateway.close()
    assert me.status_code == 200
    assert me.json()["data"]["email"] == "ops@example.com"


def test_create_user_twice_fails_clearly(migrated: Path) -> None:
    run(migrated, "create-user", "--email", "a@example.com")
    again = run(migrated, "create-user", "--email", "a@example.com")
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_create_api_key_for_unknown_user_fails(migrated: Path) -> None:
    result = run(migrated, "create-api-key", "--email", "nobody@example.com")
    assert result.returncode == 1
    assert "no user" in result.stderr


def test_seed_demo_is_repeatable(migrated: Path) -> None:
    first = run(migrated, "seed-demo")
    second = run(migrated, "seed-demo")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "created demo owner" in first.stdout
    assert "demo data exists" in second.stdout


def test_export_schema_writes_sdl(tmp_path: Path) -> None:
    result = run(tmp_path, "export-schema", "--output", "-")
    assert result.returncode == 0, result.stderr
    assert "type Query" in result.stdout


async def test_payments_refund_gives_back_part_then_the_rest(migrated: Path) -> None:
    created = run(migrated, "create-user", "--email", "buyer@example.com")
    token = created.stdout.split("api key:")[1].split()[0]
    app = create_app(base_settings(database_url=f"sqlite:///{migrated}/cli.db"))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1", headers=headers
    ) as http:
        bought = await http.post("/users/credits/checkout", json={"amountCents": 1000})
        payment_id = bought.json()["data"]["paymentId"]
        part = run(migrated, "payments", "refund", payment_id, "--amount-cents", "250")
        rest = run(migrated, "payments", "refund", payment_id)
        again = run(migrated, "payments", "refund", payment_id)
        me = (await http.get("/users/me")).json()["data"]["id"]
        balance = (await http.get(f"/users/{me}/balance")).json()["data"]["balance"]
    await app.state.gateway.close()
    assert part.returncode == 0, part.stderr
    assert f"{payment_id}: succeeded, 250 of 1000 cents refunded" in part.stdout
    assert rest.returncode == 0, rest.stderr
    assert f"{payment_id}: refunded, 1000 of 1000 cents refunded" in rest.stdout
    assert again.returncode == 1
    assert "Only a succeeded payment can be refunded" in again.stderr
    assert balance == 0


@pytest.mark.parametrize("daemon", [False, True], ids=["thread", "daemon-thread"])
def test_a_commands_loop_outlives_the_threads_the_command_started(
    monkeypatch: pytest.MonkeyPatch, daemon: bool
) -> None:
    """A thread that hands a result to the loop after the command's work failed (aiosqlite's
    worker, stopped after a connection that could not open) finds the loop still open: no
    second error is printed after the command's one line. SQLAlchemy marks aiosqlite's worker
    a daemon thread, so a daemon is waited for too."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    started: list[threading.Thread] = []

    async def failing() -> None:
        loop = asyncio.get_running_loop()

        def late() -> None:
            time.sleep(0.2)
            loop.call_soon_threadsafe(lambda: None)

        started.append(threading.Thread(target=late, daemon=daemon))
        started[0].start()
        raise OSError("unable to open database file")

    with pytest.raises(OSError, match="unable to open"):
        cli_support.run(failing())
    started[0].join()  # whatever the thread does after the loop closed, it has done
    assert errors == []
