"""What every request carries: settings, its database, the caller (resolvers/context.py adds
the loaders)."""

from __future__ import annotations

from collections.abc import Hashable
from datetime import datetime

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


class RequestContext:
    """The request's own state, below the resolvers: what the services layer (billing, the
    database) may read. Requests get `resolvers.context.Context`, which adds the loaders."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
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
        self.db = RequestDatabase(session_factory, coalesce=settings.read_coalescing)
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
    def may_read_ahead(self) -> bool:
        """Whether GraphQL may start a field's reads before its parent is shown and its access
        decided (schema/declare.py `reads_ahead`): the reads of one turn go as one statement,
        so they share the membership's, and there is a user to decide for (anyone else is
        refused, or answered, without them)."""
        principal = self.principal
        return (
            self.db.coalescer is not None
            and principal is not None
            and principal.user_id is not None
        )

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
        self.request = None
        self.response = None
        await self.db.close()
