"""How a mail leaves: over SMTP (`GATEWAY_SMTP_URL`), or into the log when none is set."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from gateway.db.models import OutboxEmail
from gateway.settings import Settings

log = logging.getLogger("gateway.mail")

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class DeliveryError(Exception):
    """An attempt failed; `permanent` when retrying cannot help (the server's 5xx answer)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


def build_message(settings: Settings, mail: OutboxEmail) -> EmailMessage:
    """The mail as RFC 5322 text. The email package refuses CR or LF in a header value, so a
    recipient or subject cannot add headers (the outbox stores them on one line already)."""
    message = EmailMessage()
    try:
        message["From"] = settings.mail_from
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
    except ValueError as error:  # a header that would inject: never sendable
        raise DeliveryError(f"unsendable header: {error}", permanent=True) from error
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=mail.id)
    message.set_content(mail.body)
    return message


@dataclass(frozen=True)
class SmtpTransport:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float) -> SmtpTransport:
        parsed = urlsplit(url)
        use_tls = parsed.scheme == "smtps"
        return cls(
            hostname=parsed.hostname or "localhost",
            port=parsed.port or DEFAULT_PORTS[parsed.scheme],
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            use_tls=use_tls,
            # None: STARTTLS when the server offers it (aiosmtplib's default).
            start_tls=True if parsed.scheme == "smtp+starttls" else (False if use_tls else None),
            timeout=timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        try:
            # aiosmtplib's timeout is per command; the whole exchange gets twice it, so that a
            # worker's claim (its lease, gateway/mail/worker.py) outlasts every send it holds.
            async with asyncio.timeout(self.timeout * 2):
                await aiosmtplib.send(
                    message,
                    hostname=self.hostname,
                    port=self.port,
                    username=self.username,
                    password=self.password,
                    use_tls=self.use_tls,
                    start_tls=self.start_tls,
                    timeout=self.timeout,
                )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refusal.code for refusal in error.recipients]
            raise DeliveryError(
                f"recipient refused: {error}", permanent=all(500 <= c < 600 for c in codes)
            ) from error
        except aiosmtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"SMTP {error.code}: {error.message}", permanent=500 <= error.code < 600
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:  # TimeoutError is an OSError
            raise DeliveryError(f"{type(error).__name__}: {error}") from error


class LogTransport:
    """No SMTP configured (development): the mail goes to the log, accept link and all."""

    async def send(self, message: EmailMessage) -> None:
        log.warning(
            "no GATEWAY_SMTP_URL: mail to %s not sent, logged instead\nSubject: %s\n\n%s",
            message["To"],
            message["Subject"],
            message.get_content(),
        )


def build_transport(settings: Settings) -> Transport:
    if settings.smtp_url is None:
        return LogTransport()
    return SmtpTransport.from_url(
        settings.smtp_url.get_secret_value(), settings.smtp_timeout_seconds
    )
