"""Where the mail worker runs: inside the app's lifespan (`gateway serve`), alone as
`gateway mail-worker`, and with no SMTP server configured (mails written to the log)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from gateway.app import create_app
from gateway.db import models
from gateway.mail.worker import MailWorker
from tests.conftest import Env, base_settings
from tests.envelopes import data_of
from tests.mail.helpers import body_of, invite, smtp_server

ROOT = Path(__file__).resolve().parents[2]


async def test_without_smtp_the_mail_is_logged_with_its_link(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    assert env.settings.smtp_url is None
    owner = await env.user()
    org_id = await env.organization(owner)
    token = await invite(owner, org_id, "bob@example.com")
    with caplog.at_level(logging.WARNING, logger="gateway.mail"):
        assert await MailWorker(env.settings, env.sessions).run_once() == 1
    assert f"/invites/accept?token={token}" in caplog.text
    assert "bob@example.com" in caplog.text
    (mail,) = await env.all(select(models.OutboxEmail))
    assert mail.status == "sent"


async def test_the_app_lifespan_runs_the_worker(env: Env) -> None:
    with smtp_server() as smtp:
        settings = env.settings.model_copy(
            update={"smtp_url": SecretStr(smtp.url), "mail_poll_seconds": 0.05}
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            owner = await env.user()
            org_id = await env.organization(owner)
            token = await invite(owner, org_id, "bob@example.com")
            assert await asyncio.to_thread(smtp.received.wait, 60)
        (message,) = smtp.messages
        assert token in body_of(message)


async def test_the_app_lifespan_leaves_mail_to_a_separate_worker_when_told(env: Env) -> None:
    settings = env.settings.model_copy(update={"mail_worker_in_serve": False})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "mail-worker"]


def cli(database: str, *args: str) -> str:
    """Run `gateway <args>` on the database to its end; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, "GATEWAY_DATABASE_URL": database},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_mail_worker_command_delivers_and_stops_on_sigterm(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/worker.db"
    cli(database, "migrate")
    key = cli(database, "create-user", "--email", "o@example.com").split("api key:")[1].split()[0]
    app = create_app(base_settings(database_url=database))
    headers = {"Authorization": f"Bearer {key}"}
    with smtp_server() as smtp:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1", headers=headers
        ) as http:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.cli",
                "mail-worker",
                env={
                    **os.environ,
                    "GATEWAY_DATABASE_URL": database,
                    "GATEWAY_SMTP_URL": smtp.url,
                    "GATEWAY_MAIL_POLL_SECONDS": "0.05",
                },
                cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                org_id = data_of(await http.post("/organizations", json={"name": "Acme"}), 201)[
                    "id"
                ]
                response = await http.post(
                    f"/organizations/{org_id}/invites",
                    json={"invites": [{"email": "bob@example.com"}]},
                )
                assert response.status_code == 201, response.text
                assert await asyncio.to_thread(smtp.received.wait, 60)
            finally:
                process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), 60)
        await app.state.gateway.close()
    assert process.returncode == 0, stderr
    assert smtp.envelopes[0][1] == ["bob@example.com"]
