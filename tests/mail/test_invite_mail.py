"""Invite e-mails: queued in the invite's transaction, delivered over SMTP by the worker with
retries and backoff, against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.db import models
from gateway.mail import outbox
from gateway.mail.transport import SmtpTransport
from gateway.mail.worker import MailWorker
from tests.conftest import Env
from tests.envelopes import assert_refused
from tests.mail.helpers import SmtpServer, body_of, invite, smtp_server

pytestmark = pytest.mark.settings(
    mail_from="Acme Gateway <gateway@example.com>",
    public_url="https://app.example.com/",
    mail_retry_base_seconds=60,
    mail_max_attempts=3,
)


@pytest.fixture(autouse=True)
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    with smtp_server() as server:
        # Read by Settings for the env fixture (the server's port is only known now).
        monkeypatch.setenv("GATEWAY_SMTP_URL", server.url)
        yield server


async def outbox_rows(env: Env) -> list[models.OutboxEmail]:
    return await env.all(select(models.OutboxEmail).order_by(models.OutboxEmail.id))


async def test_sending_an_invite_queues_its_mail_with_the_accept_link(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner, "Acme")
    token = await invite(owner, org_id, "Bob@Example.com", "admin")
    (mail,) = await outbox_rows(env)
    assert (mail.kind, mail.recipient, mail.status, mail.attempts) == (
        "invite",
        "bob@example.com",
        "pending",
        0,
    )
    assert mail.subject == "You are invited to join Acme"
    assert f"https://app.example.com/invites/accept?token={token}" in mail.body
    assert "as admin" in mail.body


async def test_worker_delivers_the_invite_over_smtp(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner, "Acme")
    token = await invite(owner, org_id, "bob@example.com")
    assert await MailWorker(env.settings, env.sessions).run_once() == 1
    (message,) = smtp.messages
    assert smtp.envelopes == [("gateway@example.com", ["bob@example.com"])]
    assert message["To"] == "bob@example.com"
    assert message["From"] == "Acme Gateway <gateway@example.com>"
    assert message["Subject"] == "You are invited to join Acme"
    assert f"https://app.example.com/invites/accept?token={token}" in body_of(message)
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts, mail.last_error) == ("sent", 1, None)
    assert mail.sent_at is not None
    assert mail.body == ""  # the accept link is not kept once sent


async def test_a_sent_mail_is_not_sent_again(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    worker = MailWorker(env.settings, env.sessions)
    await worker.run_once()
    assert await worker.run_once() == 0
    assert len(smtp.messages) == 1


async def test_a_refused_first_attempt_is_retried_after_the_backoff(
    env: Env, smtp: SmtpServer
) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    smtp.refusals.append("451 4.3.0 Try again later")
    worker = MailWorker(env.settings, env.sessions)
    await worker.run_once()
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts) == ("pending", 1)
    assert mail.last_error is not None and "451" in mail.last_error
    assert smtp.messages == []
    # Not due before its backoff (60 s), due after it.
    assert await worker.run_once(now=mail.next_attempt_at - timedelta(seconds=1)) == 0
    assert await worker.run_once(now=mail.next_attempt_at) == 1
    assert len(smtp.messages) == 1
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts) == ("sent", 2)


async def test_backoff_doubles_with_each_failed_attempt(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    smtp.refusals.extend(["451 busy", "451 busy"])
    worker = MailWorker(env.settings, env.sessions)
    (queued,) = await outbox_rows(env)
    at = queued.next_attempt_at
    waits = []
    for _ in range(2):
        await worker.run_once(now=at)
        (mail,) = await outbox_rows(env)
        waits.append(mail.next_attempt_at - at)
        at = mail.next_attempt_at
    assert waits == [timedelta(seconds=60), timedelta(seconds=120)]


async def test_mail_is_marked_failed_and_logged_after_the_last_attempt(
    env: Env, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    smtp.refusals.extend(["451 busy"] * 3)
    worker = MailWorker(env.settings, env.sessions)
    with caplog.at_level(logging.ERROR, logger="gateway.mail"):
        for _ in range(3):
            (mail,) = await outbox_rows(env)
            await worker.run_once(now=mail.next_attempt_at)
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts, mail.body) == ("failed", 3, "")
    assert "failed for good after 3 attempts" in caplog.text
    assert await worker.run_once(now=mail.next_attempt_at + timedelta(days=1)) == 0


async def test_a_permanent_refusal_fails_at_once(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    smtp.refusals.append("550 5.1.1 No such user")
    await MailWorker(env.settings, env.sessions).run_once()
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts) == ("failed", 1)
    assert mail.last_error is not None and "550" in mail.last_error


async def test_an_unreachable_server_is_retried(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await invite(owner, org_id, "bob@example.com")
    nowhere = SmtpTransport.from_url("smtp://127.0.0.1:1", timeout=5)
    await MailWorker(env.settings, env.sessions, nowhere).run_once()
    (mail,) = await outbox_rows(env)
    assert (mail.status, mail.attempts) == ("pending", 1)
    assert mail.last_error


async def test_a_rolled_back_transaction_sends_nothing(env: Env, smtp: SmtpServer) -> None:
    async with env.sessions() as session:
        outbox.queue(session, kind="invite", recipient="bob@example.com", subject="s", body="b")
        await session.flush()
        await session.rollback()
    assert await MailWorker(env.settings, env.sessions).run_once() == 0
    assert await outbox_rows(env) == []
    assert smtp.messages == []


async def test_a_refused_invite_request_queues_nothing(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    member = await env.member(org_id)
    member_email = (await member.get("/users/me")).json()["data"]["email"]
    response = await owner.post(
        f"/organizations/{org_id}/invites",
        json={"invites": [{"email": "new@example.com"}, {"email": member_email}]},
    )
    assert response.status_code == 409
    assert await outbox_rows(env) == []


async def test_organization_name_with_line_breaks_adds_no_header(
    env: Env, smtp: SmtpServer
) -> None:
    owner = await env.user()
    org_id = await env.organization(owner, "Acme\r\nBcc: evil@example.net")
    await invite(owner, org_id, "bob@example.com")
    await MailWorker(env.settings, env.sessions).run_once()
    (message,) = smtp.messages
    assert smtp.envelopes[0][1] == ["bob@example.com"]
    assert message["Bcc"] is None
    assert message["Subject"] == "You are invited to join Acme  Bcc: evil@example.net"


@pytest.mark.parametrize(
    "email",
    ["bob@example.com\r\nBcc:evil@example.net", "bob@example.com\nX-Evil:1", "bob\t@example.com"],
    ids=["crlf", "lf", "tab"],
)
async def test_invitee_email_with_control_characters_is_refused(env: Env, email: str) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await owner.post(
        f"/organizations/{org_id}/invites", json={"invites": [{"email": email}]}
    )
    assert_refused(response, 400, "invites[0].email is not a valid email address")
    assert await outbox_rows(env) == []


async def test_workers_running_together_send_each_mail_once(env: Env, smtp: SmtpServer) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await owner.post(
        f"/organizations/{org_id}/invites",
        json={"invites": [{"email": f"person{n}@example.com"} for n in range(12)]},
    )
    assert response.status_code == 201
    small = env.settings.model_copy(update={"mail_batch_size": 2})
    workers = [MailWorker(small, env.sessions) for _ in range(3)]
    counts = await asyncio.gather(*(worker.run_once() for worker in workers))
    assert sum(counts) == 12
    recipients = sorted(to for _, (to,) in smtp.envelopes)
    assert recipients == sorted(f"person{n}@example.com" for n in range(12))
    assert {mail.status for mail in await outbox_rows(env)} == {"sent"}
