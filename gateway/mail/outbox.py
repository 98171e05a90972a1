"""The outbox table's operations: queue a mail in the caller's transaction, claim due mails,
record each attempt's outcome.

A mail is a row written in the same transaction as what it tells (an invite), so a rollback
sends nothing and a crash after the commit loses nothing. Workers (any number of processes)
claim due rows by pushing their next attempt a lease into the future, in one short
transaction: on PostgreSQL the candidates are locked `FOR UPDATE SKIP LOCKED`, so concurrent
workers take different rows; SQLite runs one write transaction at a time, and the claim's
condition on the due time makes a second claimer of the same row find it taken. A worker that
dies mid-send leaves its rows to be claimed again when the lease ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.db.models import OutboxEmail, OutboxEmailStatus
from gateway.db.session import dialect_name
from gateway.settings import Settings

log = logging.getLogger("gateway.mail")

MAX_SUBJECT = 500
MAX_ERROR = 1000


def one_line(text: str) -> str:
    """Text fit for a header: control characters (CR, LF, …) become spaces."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text).strip()


def queue(
    session: AsyncSession,
    *,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    reference_id: str | None = None,
) -> OutboxEmail:
    """Add a mail to the caller's transaction; it is sent only if that transaction commits."""
    mail = OutboxEmail(
        kind=kind,
        reference_id=reference_id,
        recipient=recipient,
        subject=one_line(subject)[:MAX_SUBJECT],
        body=body,
    )
    session.add(mail)
    return mail


def queue_invite(
    session: AsyncSession,
    settings: Settings,
    *,
    invite_id: str,
    email: str,
    organization_name: str,
    role: str,
    token: str,
    expires_at: datetime,
) -> OutboxEmail:
    """The invitee's mail with the accept link (the token travels only in it)."""
    link = f"{settings.public_url.rstrip('/')}/invites/accept?token={token}"
    name = one_line(organization_name) or "an organization"
    body = (
        f"You have been invited to join {name} as {role}.\n\n"
        f"Accept the invitation: {link}\n\n"
        f"The link works until {expires_at:%Y-%m-%d %H:%M} UTC, for the account of {email}.\n"
        "If you did not expect this invitation, ignore this message.\n"
    )
    return queue(
        session,
        kind="invite",
        recipient=email,
        subject=f"You are invited to join {name}",
        body=body,
        reference_id=invite_id,
    )


async def claim_due(
    session: AsyncSession, *, now: datetime, limit: int, lease: timedelta
) -> list[OutboxEmail]:
    """Take up to `limit` due mails for one attempt each (commits): their attempt is counted
    and their next attempt moved to `now + lease`, so no other worker takes them meanwhile."""
    due = (
        select(col(OutboxEmail.id))
        .where(
            col(OutboxEmail.status) == OutboxEmailStatus.PENDING.value,
            col(OutboxEmail.next_attempt_at) <= now,
        )
        .order_by(col(OutboxEmail.next_attempt_at), col(OutboxEmail.id))
        .limit(limit)
    )
    if dialect_name(session) == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list((await session.execute(due)).scalars())
    claimed: Sequence[OutboxEmail] = []
    if ids:
        returned = await session.execute(
            update(OutboxEmail)
            .where(
                col(OutboxEmail.id).in_(ids),
                col(OutboxEmail.status) == OutboxEmailStatus.PENDING.value,
                col(OutboxEmail.next_attempt_at) <= now,
            )
            .values(
                attempts=col(OutboxEmail.attempts) + 1,
                next_attempt_at=now + lease,
                updated_at=now,
            )
            .returning(OutboxEmail)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        claimed = returned.scalars().all()
    await session.commit()
    return sorted(claimed, key=lambda mail: (mail.created_at, mail.id))


async def record_sent(session: AsyncSession, mail: OutboxEmail, *, now: datetime) -> None:
    """Delivered: the body (which may hold a secret link) is not kept (commits)."""
    await _record(
        session,
        mail,
        status=OutboxEmailStatus.SENT.value,
        sent_at=now,
        body="",
        last_error=None,
        updated_at=now,
    )


async def record_failure(
    session: AsyncSession,
    mail: OutboxEmail,
    error: str,
    *,
    now: datetime,
    retry_at: datetime | None,
) -> None:
    """A failed attempt: retried at `retry_at`, or given up for good when None (commits)."""
    error = error[:MAX_ERROR]
    if retry_at is not None:
        await _record(session, mail, next_attempt_at=retry_at, last_error=error, updated_at=now)
        return
    await _record(
        session,
        mail,
        status=OutboxEmailStatus.FAILED.value,
        body="",
        last_error=error,
        updated_at=now,
    )
    log.error(
        "mail %s (%s) to %s failed for good after %d attempts: %s",
        mail.id,
        mail.kind,
        mail.recipient,
        mail.attempts,
        error,
    )


async def _record(session: AsyncSession, mail: OutboxEmail, **values: object) -> None:
    await session.execute(
        update(OutboxEmail)
        .where(col(OutboxEmail.id) == mail.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
