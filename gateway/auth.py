"""Bearer tokens → Principal: API keys (hashed, constant-time) or identity-provider JWTs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import bindparam, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from gateway.db.auth_changes import AUTH_UNCHANGED, EVERYONE, Changed, ChangeListener, subscribe
from gateway.db.models import Account, AccountKind, ApiKey, User, utcnow
from gateway.db.session import RequestDatabase, fetch_rows, orm_session
from gateway.errors import Unauthenticated
from gateway.inputs import NUL
from gateway.settings import Settings

log = logging.getLogger("gateway.auth")

API_KEY_SCHEME = "gwk"
# Refresh `last_used_at` at most this often, so authentication is not a write per request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (through an API key or a JWT) or the internal service.

    `user_row`: the user's columns as authentication read them (API keys: the key's statement
    joins the user anyway), in the model's attribute order (`USER_COLUMNS`), so that a request
    that shows its caller's own user reads it no second time (`Loaders.user_row_by_id`)."""

    user_id: str | None
    via: str  # "api_key" | "jwt" | "service"
    api_key_id: str | None = None
    api_key_organization_id: str | None = None
    user_row: tuple[object, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def is_service(self) -> bool:
        return self.via == "service"


@dataclass(frozen=True)
class IssuedApiKey:
    token: str
    lookup: str
    prefix: str
    secret_hash: str


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_key() -> IssuedApiKey:
    """A new key `gwk_<lookup>_<secret>`: the lookup finds the row, the hash verifies the rest."""
    lookup = secrets.token_hex(6)
    token = f"{API_KEY_SCHEME}_{lookup}_{secrets.token_urlsafe(32)}"
    return IssuedApiKey(
        token=token, lookup=lookup, prefix=token[:12], secret_hash=hash_secret(token)
    )


def strip_bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    token = token.strip()
    if token[:7].lower() == "workos:":
        token = token[7:].strip()
    return token or None


async def ensure_personal_account(session: AsyncSession, user_id: str) -> None:
    session.add(Account(kind=AccountKind.USER.value, user_id=user_id))


# The user's columns in the model's attribute order, labelled `user__<attribute>`.
USER_COLUMNS = tuple(
    prop.columns[0].label(f"user__{prop.key}") for prop in sa_inspect(User).column_attrs
)
# Plain columns, not an ApiKey instance, in a statement built once: this runs on every request.
_API_KEY_BY_LOOKUP = (
    select(
        col(ApiKey.id),
        col(ApiKey.user_id),
        col(ApiKey.organization_id),
        col(ApiKey.secret_hash),
        col(ApiKey.revoked_at),
        col(ApiKey.expires_at),
        col(ApiKey.last_used_at),
        *USER_COLUMNS,
    )
    .join(User, col(User.id) == col(ApiKey.user_id))
    .where(col(ApiKey.lookup) == bindparam("lookup"))
)
_USER_VALUES = slice(-len(USER_COLUMNS), None)


# The columns a token's claims are stored in (`User.external_subject`, `User.email`).
SUBJECT_MAX: int = User.__table__.c.external_subject.type.length  # type: ignore[attr-defined]
EMAIL_MAX: int = User.__table__.c.email.type.length  # type: ignore[attr-defined]


def _claim(value: str, name: str, maximum: int | None) -> str:
    """A claim the user row can hold: a token whose claim is longer than its column, or holds
    a NUL (PostgreSQL text cannot), is a bad token (401), whoever signed it."""
    if NUL in value or (maximum is not None and len(value) > maximum):
        raise Unauthenticated(f"Invalid token: the {name} claim is not acceptable")
    return value


class AuthCacheMismatch(RuntimeError):
    """`auth_cache_verify`: a cached principal is not what the database says (a change that
    did not reach the cache)."""


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: datetime | None  # the key's own expiry, honoured on every hit
    deadline: float  # time.monotonic() past which the entry is not served


class VerifiedKeyCache:
    """API keys this process verified (by the hash of the whole token) and their principals,
    for `seconds` at most, `max_entries` of them (the oldest goes first).

    It serves only while it hears of every change (`serving`: on SQLite from the start, the
    process being the only writer; on PostgreSQL while `ChangeListener` listens): a change
    drops the changed users' entries (`invalidate`), losing the listener drops them all. A read
    that began before a change may not enter its result afterwards (`generation`)."""

    def __init__(self, seconds: float, max_entries: int) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self.serving = False
        self.generation = 0
        self._entries: dict[str, _Verified] = {}
        self._by_user: dict[str, set[str]] = {}
        self.listener: ChangeListener | None = None
        self.unsubscribe: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str, now: datetime) -> Principal | None:
        if not self.serving:
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.deadline <= time.monotonic() or (
            entry.expires_at is not None and entry.expires_at <= now
        ):
            self._drop(digest)
            return None
        return entry.principal

    def put(
        self, digest: str, principal: Principal, expires_at: datetime | None, generation: int
    ) -> None:
        if not self.serving or generation != self.generation or principal.user_id is None:
            return
        self._drop(digest)
        while len(self._entries) >= self.max_entries:
            self._drop(next(iter(self._entries)))
        self._entries[digest] = _Verified(principal, expires_at, time.monotonic() + self.seconds)
        self._by_user.setdefault(principal.user_id, set()).add(digest)

    def invalidate(self, changed: Changed) -> None:
        """Forget the keys of these users (`EVERYONE`: all keys)."""
        self.generation += 1
        if changed is EVERYONE:
            self._entries.clear()
            self._by_user.clear()
            return
        for user_id in changed:
            for digest in self._by_user.pop(user_id, ()):
                self._entries.pop(digest, None)

    def listening(self) -> None:
        self.invalidate(EVERYONE)
        self.serving = True

    def deaf(self) -> None:
        self.serving = False
        self.invalidate(EVERYONE)

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()

    async def close(self) -> None:
        self.deaf()
        if self.unsubscribe is not None:
            self.unsubscribe()
        if self.listener is not None:
            await self.listener.close()

    def _drop(self, digest: str) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None and entry.principal.user_id is not None:
            digests = self._by_user.get(entry.principal.user_id)
            if digests is not None:
                digests.discard(digest)
                if not digests:
                    del self._by_user[entry.principal.user_id]


def open_key_cache(settings: Settings, engine: AsyncEngine) -> VerifiedKeyCache | None:
    """The process's verified-key cache on `engine` (None when `auth_cache_seconds` is 0): it
    hears this process's commits at once and, on PostgreSQL, every process's through its
    listener, which starts with the first key presented."""
    if settings.auth_cache_seconds <= 0:
        return None
    cache = VerifiedKeyCache(settings.auth_cache_seconds, settings.auth_cache_max_entries)
    cache.unsubscribe = subscribe(engine, cache.invalidate)
    if engine.dialect.name == "postgresql":
        cache.listener = ChangeListener(
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
            schema=settings.database_schema,
            on_change=cache.invalidate,
            on_up=cache.listening,
            on_down=cache.deaf,
            connect_timeout=settings.database_connect_timeout,
        )
    else:
        cache.listening()  # SQLite: this process is the only writer, and tells it directly
    return cache


def _same(cached: Principal, fresh: Principal) -> bool:
    return cached == fresh and cached.user_row == fresh.user_row


class Authenticator:
    """Turns a bearer token into a Principal; one instance per process."""

    def __init__(self, settings: Settings, cache: VerifiedKeyCache | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self._jwks_client: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=3600)
            if settings.jwt_jwks_url
            else None
        )

    async def authenticate(
        self, db: AsyncSession | RequestDatabase, token: str | None
    ) -> Principal:
        """The caller a bearer token names; `db` is the request's database (or a session)."""
        if not token:
            raise Unauthenticated("Missing bearer token")
        if NUL in token:  # never a key's lookup in a query (PostgreSQL text cannot hold it)
            raise Unauthenticated("Invalid token")
        service = self.settings.service_token
        if service is not None and hmac.compare_digest(
            token.encode(), service.get_secret_value().encode()
        ):
            return Principal(user_id=None, via="service")
        if token.startswith(API_KEY_SCHEME + "_"):
            return await self._authenticate_api_key(db, token)
        if token.count(".") == 2:
            return await self._authenticate_jwt(orm_session(db), token)
        raise Unauthenticated("Invalid token")

    async def _authenticate_api_key(
        self, db: AsyncSession | RequestDatabase, token: str
    ) -> Principal:
        parts = token.split("_", 2)
        if len(parts) != 3:
            raise Unauthenticated("Invalid API key")
        digest = hash_secret(token)
        cache = self.cache
        if cache is None:
            return (await self._read_api_key(db, parts[1], digest, touch=True))[0]
        cache.start()
        cached = cache.get(digest, utcnow())
        if cached is not None:
            if self.settings.auth_cache_verify:
                await self._verify(db, parts[1], digest, cached)
            return cached
        generation = cache.generation
        principal, expires_at = await self._read_api_key(db, parts[1], digest, touch=True)
        cache.put(digest, principal, expires_at, generation)
        return principal

    async def _verify(
        self, db: AsyncSession | RequestDatabase, lookup: str, digest: str, cached: Principal
    ) -> None:
        try:
            fresh: Principal | Unauthenticated = (
                await self._read_api_key(db, lookup, digest, touch=False)
            )[0]
        except Unauthenticated as refused:
            fresh = refused
        if not isinstance(fresh, Principal) or not _same(cached, fresh):
            log.error(
                "auth cache: key %s cached as %r, the database says %r", lookup, cached, fresh
            )
            raise AuthCacheMismatch(f"the cached principal of key {lookup} is out of date")

    async def _read_api_key(
        self, db: AsyncSession | RequestDatabase, lookup: str, digest: str, *, touch: bool
    ) -> tuple[Principal, datetime | None]:
        """The key's principal and expiry as the database has them (`touch`: and its
        `last_used_at` brought up to date)."""
        found = await fetch_rows(db, _API_KEY_BY_LOOKUP, {"lookup": lookup})
        key = found[0] if found else None
        # Compare even when the lookup missed, so timing does not reveal which lookups exist.
        expected = key.secret_hash if key else "0" * 64
        if not hmac.compare_digest(expected, digest) or key is None:
            raise Unauthenticated("Invalid API key")
        user_deleted_at = key.user__deleted_at
        now = utcnow()
        if key.revoked_at is not None or user_deleted_at is not None:
            raise Unauthenticated("API key revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("API key expired")
        if touch and (key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY):
            session = orm_session(db)
            await session.execute(
                update(ApiKey)
                .where(col(ApiKey.id) == key.id)
                .values(last_used_at=now)
                .execution_options(**{AUTH_UNCHANGED: True})
            )
            await session.commit()
        principal = Principal(
            user_id=key.user_id,
            via="api_key",
            api_key_id=key.id,
            api_key_organization_id=key.organization_id,
            user_row=tuple(key[_USER_VALUES]),
        )
        return principal, key.expires_at

    def _decode(self, token: str) -> dict[str, Any]:
        """The token's verified claims: JSON the identity provider wrote, untyped."""
        s = self.settings
        if self._jwks_client is not None:
            signing_key = self._jwks_client.get_signing_key_from_jwt(token)
            key, algorithms = signing_key.key, ["RS256", "ES256", "PS256"]
        elif s.jwt_hs256_secret is not None:
            key, algorithms = s.jwt_hs256_secret.get_secret_value(), ["HS256"]
        else:
            raise Unauthenticated("Identity-provider tokens are not accepted by this gateway")
        return jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            leeway=s.jwt_leeway_seconds,
            options={"require": ["sub", "exp"], "verify_aud": s.jwt_audience is not None},
        )

    async def _authenticate_jwt(self, session: AsyncSession, token: str) -> Principal:
        try:
            if self._jwks_client is not None:
                claims = await asyncio.to_thread(self._decode, token)
            else:
                claims = self._decode(token)
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Token expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthenticated("Invalid token") from exc
        subject = _claim(f"{claims.get('iss', '')}|{claims['sub']}", "sub", SUBJECT_MAX)
        user_id = (
            await session.execute(
                select(col(User.id), col(User.deleted_at)).where(
                    col(User.external_subject) == subject
                )
            )
        ).first()
        if user_id is not None:
            if user_id.deleted_at is not None:
                raise Unauthenticated("Account deleted")
            return Principal(user_id=user_id.id, via="jwt")
        return Principal(user_id=await self._provision(session, subject, claims), via="jwt")

    async def _provision(
        self, session: AsyncSession, subject: str, claims: Mapping[str, object]
    ) -> str:
        """First sight of a valid subject: create the user and its personal account."""
        email = _claim(str(claims.get("email") or "").strip().lower(), "email", EMAIL_MAX)
        if not email:
            raise Unauthenticated("Token has no email claim")
        # The name is only shown: cut to the column rather than refusing the sign-in.
        name = _claim(str(claims.get("name") or claims.get("given_name") or ""), "name", None)
        existing = (
            await session.execute(select(User).where(col(User.email) == email))
        ).scalar_one_or_none()
        if existing is not None:
            # Link an existing (e.g. CLI-created) user only on a verified email.
            if existing.external_subject is None and claims.get("email_verified") is True:
                existing.external_subject = subject
                existing.updated_at = utcnow()
                await session.commit()
                return existing.id
            raise Unauthenticated("This email belongs to another sign-in")
        user = User(email=email, display_name=name[:200], external_subject=subject)
        session.add(user)
        await session.flush()
        await ensure_personal_account(session, user.id)
        try:
            await session.commit()
        except IntegrityError:
            # A concurrent first request provisioned the same subject.
            await session.rollback()
            found = (
                await session.execute(
                    select(col(User.id)).where(col(User.external_subject) == subject)
                )
            ).scalar_one_or_none()
            if found is None:
                raise Unauthenticated("Could not provision this user") from None
            return found
        return user.id
