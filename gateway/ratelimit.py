"""Per-caller request limits for REST and GraphQL together: users by id, callers without a
valid token (anonymous or refused) by address; shared by every gateway process through Redis,
or counted in the process without it."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from gateway.auth import Principal
from gateway.errors import RateLimited

log = logging.getLogger("gateway.ratelimit")

TOO_MANY = "Too many requests: slow down and retry later"


class LocalCounts:
    """The Redis commands the limiter uses, counted in this process (no Redis configured):
    fixed windows whose keys carry their minute, the past minutes dropped as time moves on."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._window = -1

    def pipeline(self, transaction: bool = True) -> _LocalPipeline:
        return _LocalPipeline(self)

    async def aclose(self) -> None:
        self.counts.clear()


class _LocalPipeline:
    def __init__(self, store: LocalCounts) -> None:
        self.store = store
        self.key = ""

    async def __aenter__(self) -> _LocalPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def incr(self, key: str) -> None:
        self.key = key

    def expire(self, key: str, seconds: int) -> None:
        return None

    async def execute(self) -> list[Any]:
        store = self.store
        window = int(time.time() // 60)
        if window != store._window:  # a new minute: the last one's counts are over
            store.counts.clear()
            store._window = window
        count = store.counts[self.key] = store.counts.get(self.key, 0) + 1
        return [count, True]


class RateLimiter:
    """Fixed one-minute windows per caller in Redis (or `LocalCounts`); fails open if Redis is
    unreachable. Users have `per_minute` requests each (0: not limited); callers without a
    valid token `anonymous_per_minute` per address (0: not limited); the service token is
    never limited."""

    def __init__(
        self,
        redis: Any,
        per_minute: int,
        prefix: str = "gw:rl:",
        anonymous_per_minute: int = 0,
    ) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.anonymous_per_minute = anonymous_per_minute
        self.prefix = prefix

    @classmethod
    def from_url(
        cls, url: str | None, per_minute: int, anonymous_per_minute: int = 0
    ) -> RateLimiter:
        if url is None:
            return cls(LocalCounts(), per_minute, anonymous_per_minute=anonymous_per_minute)
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), per_minute, anonymous_per_minute=anonymous_per_minute)

    async def check(self, principal: Principal | None, client_host: str | None) -> None:
        """Count one request of this caller; RateLimited when it is over its limit."""
        if principal is not None and principal.is_service:
            return
        limit = self.per_minute if principal is not None else self.anonymous_per_minute
        if limit <= 0:
            return
        wait = await self.retry_after(principal_key(principal, client_host), limit)
        if wait is not None:
            raise RateLimited(TOO_MANY, retry_after=wait)

    async def retry_after(self, principal_key: str, limit: int | None = None) -> int | None:
        """Count one request; seconds to wait if it is over the limit, else None."""
        now = time.time()
        window = int(now // 60)
        key = f"{self.prefix}{principal_key}:{window}"
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 61)
                count, _ = await pipe.execute()
        except Exception:  # a limiter outage must not take the API down
            log.warning("rate limiter unavailable; request allowed", exc_info=True)
            return None
        if int(count) <= (self.per_minute if limit is None else limit):
            return None
        return max(1, math.ceil((window + 1) * 60 - now))

    async def close(self) -> None:
        await self.redis.aclose()


def principal_key(principal: Principal | None, client_host: str | None) -> str:
    """One budget per user across REST and GraphQL; anonymous callers by address."""
    if principal is not None and principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal is not None:
        return "service"
    return f"ip:{client_host or 'unknown'}"
