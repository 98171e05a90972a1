"""Helpers of the mail tests (no tests here): a real SMTP server (aiosmtpd) on a free loopback
port, whose answers a test may script, and what it received."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller

from tests.conftest import Client


@dataclass
class SmtpServer:
    """What the server received, and the answers it gives to the next RCPT TO commands
    (`"451 …"` refuses one; when none are left it accepts)."""

    port: int = 0
    refusals: list[str] = field(default_factory=list)
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.refusals:
            return self.refusals.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(cast(EmailMessage, message))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.received.set()
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """A started server; another free port is tried if one is taken before it binds."""
    server = SmtpServer()
    for _ in range(3):
        server.port = _free_port()
        controller = Controller(server, hostname="127.0.0.1", port=server.port)
        try:
            controller.start()
        except (OSError, RuntimeError):
            continue
        try:
            yield server
        finally:
            controller.stop()
        return
    raise RuntimeError("the SMTP server did not start")


async def invite(client: Client, org_id: str, email: str, role: str = "member") -> str:
    """Invite `email` over REST; the accept token the answer shows once."""
    response = await client.post(
        f"/organizations/{org_id}/invites", json={"invites": [{"email": email, "role": role}]}
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["data"]["items"][0]["acceptToken"]
    return token


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())
