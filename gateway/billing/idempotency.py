"""Idempotency keys for money-moving requests (REST `Idempotency-Key`, GraphQL `idempotencyKey`).

The first request claims (scope, key) with a committed row before it runs, so a concurrent
duplicate finds the claim and is refused instead of charging twice; its result is stored when it
succeeds, and a failed attempt releases the key so the client may retry. The same key with a
different request is a conflict.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.db.models import IdempotencyRecord
from gateway.errors import Conflict, ValidationFailed
from gateway.jsoncodec import dump_json

MAX_KEY_LENGTH = 255


def check_key(key: str, field: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"{field} must be 1 to {MAX_KEY_LENGTH} printable characters", field=field
        )
    return key


def fit_scope(owner: str, what: str) -> str:
    """`owner:what`, hashed when too long for the column."""
    scope = f"{owner}:{what}"
    if len(scope) <= MAX_KEY_LENGTH:
        return scope
    return f"{owner}:{hashlib.sha256(what.encode()).hexdigest()}"


def request_hash(value: object) -> str:
    """A request's fingerprint: its canonical JSON (sorted keys), hashed (an integer beyond
    64 bits included: the request is then refused by validation, not by a server error)."""
    return hashlib.sha256(dump_json(value, sort_keys=True)).hexdigest()


async def claim(
    session: AsyncSession, scope: str, key: str, digest: str
) -> IdempotencyRecord | None:
    """Claim the key (None: go ahead), or the finished first attempt to replay.

    Commits the session. Raises Conflict for another request under the same key, or for a
    first attempt that is still running.
    """
    await session.commit()
    try:
        async with session.begin_nested():
            session.add(IdempotencyRecord(scope=scope, key=key, request_hash=digest))
            await session.flush()
        await session.commit()
        return None
    except IntegrityError:
        await session.rollback()
    existing = (
        await session.execute(
            select(IdempotencyRecord).where(
                col(IdempotencyRecord.scope) == scope, col(IdempotencyRecord.key) == key
            )
        )
    ).scalar_one_or_none()
    if existing is None:  # released meanwhile: the client may retry
        raise Conflict("A request with this idempotency key is in progress; retry")
    if existing.request_hash != digest:
        raise Conflict("This idempotency key was already used with a different request body")
    if existing.response_status is None:
        raise Conflict("A request with this idempotency key is still in progress")
    return existing


async def complete(session: AsyncSession, scope: str, key: str, status: int, body: str) -> None:
    """Store the first attempt's result (commits)."""
    await session.execute(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.scope) == scope, col(IdempotencyRecord.key) == key)
        .values(response_status=status, response_body=body)
    )
    await session.commit()


async def release(session: AsyncSession, scope: str, key: str) -> None:
    """Forget a claim whose request failed (rolls back the request's own work first; commits)."""
    await session.rollback()
    await session.execute(
        delete(IdempotencyRecord).where(
            col(IdempotencyRecord.scope) == scope, col(IdempotencyRecord.key) == key
        )
    )
    await session.commit()
