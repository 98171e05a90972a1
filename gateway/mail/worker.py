"""The delivery worker: claims due outbox mails, sends each, retries failures with backoff.

It runs inside `gateway serve` (started and stopped with the app's lifespan) or alone as
`gateway mail-worker`; any number of either may run against one database. E-mail is never sent
inside a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db.models import OutboxEmail, utcnow
from gateway.mail import outbox
from gateway.mail.transport import DeliveryError, Transport, build_message, build_transport
from gateway.settings import Settings

log = logging.getLogger("gateway.mail")


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """Exponential backoff after `attempts` failed attempts: base, twice the base, four times, ... capped."""
    seconds = settings.mail_retry_base_seconds * 2 ** min(attempts - 1, 32)
    return timedelta(seconds=min(seconds, settings.mail_retry_max_seconds))


class MailWorker:
    def __init__(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.transport = transport or build_transport(settings)
        # A claimed mail is another worker's to retry once this passes without an outcome: a
        # batch is sent one mail after the other, each within twice the SMTP timeout, so the
        # lease outlasts the whole batch (a crashed worker's mails wait that long).
        self.lease = timedelta(
            seconds=settings.smtp_timeout_seconds * 2 * settings.mail_batch_size + 60
        )

    async def run_once(self, now: datetime | None = None) -> int:
        """Attempt every mail due at `now` (default: the present), a batch at a time; returns
        how many were attempted."""
        attempted = 0
        async with self.session_factory() as session:
            while True:
                at = now or utcnow()
                claimed = await outbox.claim_due(
                    session, now=at, limit=self.settings.mail_batch_size, lease=self.lease
                )
                for mail in claimed:
                    await self._attempt(session, mail, at)
                attempted += len(claimed)
                if len(claimed) < self.settings.mail_batch_size:
                    return attempted

    async def _attempt(self, session: AsyncSession, mail: OutboxEmail, at: datetime) -> None:
        try:
            await self.transport.send(build_message(self.settings, mail))
        except DeliveryError as error:
            give_up = error.permanent or mail.attempts >= self.settings.mail_max_attempts
            retry_at = None if give_up else at + retry_delay(self.settings, mail.attempts)
            if retry_at is not None:
                log.warning(
                    "mail %s to %s: attempt %d failed (%s); next at %s",
                    mail.id,
                    mail.recipient,
                    mail.attempts,
                    error,
                    retry_at.isoformat(),
                )
            await outbox.record_failure(session, mail, str(error), now=at, retry_at=retry_at)
            return
        await outbox.record_sent(session, mail, now=at)
        log.info("mail %s (%s) sent to %s", mail.id, mail.kind, mail.recipient)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, polling every `mail_poll_seconds`; an error (the
        database away) is logged and the loop goes on."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("mail worker: a delivery round failed; retrying after the poll")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.mail_poll_seconds)


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[MailWorker]:
    """A worker delivering in the background while the block runs; stopped after it."""
    worker = MailWorker(settings, session_factory)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="mail-worker")
    try:
        yield worker
    finally:
        stop.set()
        await task
