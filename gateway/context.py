"""The per-request Context: settings, one database session, the caller, and fresh loaders."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from gateway.auth import Principal
from gateway.db.models import utcnow
from gateway.db.session import RequestDatabase
from gateway.errors import Unauthenticated
from gateway.services import Services
from gateway.settings import Settings


class Context:
    """Built per request by the app; GraphQL fields and REST handlers both receive it."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        loaders_factory: Callable[[Context], Any],
        services: Services | None = None,
        principal: Principal | None = None,
        request_id: str = "",
        request: HTTPConnection | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.principal = principal
        self.request_id = request_id
        self.request = request
        # The request's connection and (when needed) ORM session: gateway/db/session.py.
        self.db = RequestDatabase(session_factory)
        self._loaders_factory = loaders_factory
        # The loaders are `resolvers.loaders.Loaders`, a layer above this one: left untyped
        # here rather than imported upwards.
        self._loaders: Any = None
        # Payloads of mutations may need this (e.g. a response header from GraphQL).
        self.response: Response | WebSocket | None = None
        # Why a presented token was refused; raised when an operation needs a caller.
        self.auth_error: Exception | None = None
        # The GraphQL response is written by orjson, which embeds JSON that PostgreSQL wrote
        # (`orjson.Fragment`, schema/engine/): set by the HTTP view.
        self.json_fragments = False
        # What the GraphQL engine tells a field's resolver for this request, by the field's
        # response path, graphql-core's `Path` (a connection whose nodes PostgreSQL may write
        # as JSON: schema/engine).
        self.field_notes: dict[Hashable, object] = {}
        self._now: datetime | None = None

    @property
    def now(self) -> datetime:
        """The request's time, fixed at first use: every field of a request sees the same now."""
        if self._now is None:
            self._now = utcnow()
        return self._now

    @property
    def session(self) -> AsyncSession:
        """The request's ORM session (made at first use, on the request's connection)."""
        return self.db.session

    @property
    def loaders(self) -> Any:
        if self._loaders is None:
            self._loaders = self._loaders_factory(self)
        return self._loaders

    def reset_loaders(self) -> None:
        """Forget cached loads, e.g. after a mutation changed what they returned."""
        self._release_loaders()

    def _release_loaders(self) -> None:
        # Loaders, their batch closures and their cached futures refer to each other: emptied
        # here, a request's rows are freed by reference counting when it ends instead of
        # waiting for (and lengthening) the cyclic garbage collector's passes.
        if self._loaders is not None:
            release = getattr(self._loaders, "release", None)
            if release is not None:
                release()
            self._loaders = None

    @property
    def user_id(self) -> str:
        """The calling user's id; the service principal and anonymous callers have none."""
        if self.principal is None or self.principal.user_id is None:
            if self.auth_error is not None:
                raise self.auth_error
            if self.principal is not None:
                raise Unauthenticated("This operation needs a user's token, not the service token")
            raise Unauthenticated("Authentication required")
        return self.principal.user_id

    async def close(self) -> None:
        self._release_loaders()
        self.request = None
        self.response = None
        await self.db.close()
