"""Per-caller request limits shared by every gateway process through Redis (REST and GraphQL)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from gateway.auth import Principal

log = logging.getLogger("gateway.ratelimit")

TOO_MANY = "Too many requests: slow down and retry later"


class RateLimiter:
    """Fixed one-minute windows per principal in Redis; fails open if Redis is unreachable."""

    def __init__(self, redis: Any, per_minute: int, prefix: str = "gw:rl:") -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, per_minute: int) -> RateLimiter:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), per_minute)

    async def retry_after(self, principal_key: str) -> int | None:
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
        if int(count) <= self.per_minute:
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
