"""API key operations: list, create (secret shown once), revoke."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.auth import issue_api_key
from gateway.db.models import ApiKey

MAX_NAME = 200


async def insert_api_key(
    session: AsyncSession,
    *,
    user_id: str,
    name: str,
    organization_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Add a key row (not committed) and return it with its one-time secret."""
    issued = issue_api_key()
    key = ApiKey(
        user_id=user_id,
        organization_id=organization_id,
        name=name,
        lookup=issued.lookup,
        prefix=issued.prefix,
        secret_hash=issued.secret_hash,
        expires_at=expires_at,
    )
    session.add(key)
    return key, issued.token
