"""Limits of the HTTP edge: request bodies past `GATEWAY_MAX_BODY_BYTES` are refused (413)
before the app reads them whole, and the server closes connections whose request headers do
not arrive in time (`HeaderTimeoutProtocol`, uvicorn's protocol with one timer more)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class BodySizeLimit:
    """413 for a body over `max_bytes`: at once when its Content-Length says so, else as soon
    as the bytes received pass the limit (a chunked body); the app then sees the client go
    away, and whatever it answers is dropped for the 413. The answer is in the error shape of
    the route: the contract's envelope under /api/v1, a coded GraphQL error elsewhere.

    Not a layer of its own: the app's edge (gateway/app.py `RequestIdMiddleware`) reads the
    request's headers once and calls `serve` with what they say of the body."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    async def serve(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        content_length: bytes | None,
        chunked: bool,
    ) -> None:
        """`app` on the request, within the limit: `content_length` is the request's first
        Content-Length header (None without one), `chunked` whether it has a
        Transfer-Encoding."""
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                declared = 0  # the server refuses a malformed length itself
            if declared > self.max_bytes:
                await self._refuse(scope, send)
                return
            # The server delivers exactly the declared length: nothing to count.
            await app(scope, receive, send)
        elif chunked:
            await self._counted(app, scope, receive, send)
        else:  # no length and not chunked: HTTP/1.1 has no body to read
            await app(scope, receive, send)

    async def _counted(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_bytes
        received = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the 413 answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"The request body is larger than {self.max_bytes} bytes"
        if scope.get("path", "").startswith("/api/"):
            body: dict[str, object] = {"success": False, "error": message}
        else:
            body = {"errors": [{"message": message, "extensions": {"code": "REQUEST_TOO_LARGE"}}]}
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request line and headers have
    not all arrived `header_timeout` seconds after the connection opened or the request began
    (a client that sends headers a byte at a time holds no connection for ever). Idle
    keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.

    uvicorn takes a protocol class (`Config.http`); the hooks used here (`connection_made`,
    `on_message_begin`, `on_headers_complete`, `connection_lost`, `transport`) are those of
    its httptools protocol, and `tests/security/test_http_limits.py` fails if they change."""

    header_timeout: float | None = None  # None: `GATEWAY_HEADER_TIMEOUT_SECONDS`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        if self.header_timeout is None:
            # uvicorn names the protocol by import path (its workers import it anew), so the
            # setting is read where the server runs.
            from gateway.settings import get_settings

            type(self).header_timeout = get_settings().header_timeout_seconds

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        assert self.header_timeout is not None
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)
