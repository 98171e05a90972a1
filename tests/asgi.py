"""Talking to the ASGI app directly, for what an HTTP client would not send (a lowercase
method, a websocket): the messages the app sent back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


async def call_asgi(
    app: Any,
    scope: dict[str, Any],
    incoming: Iterable[dict[str, Any]],
    then: dict[str, Any],
) -> list[dict[str, Any]]:
    """Run `app` on `scope` (with the keys every connection has filled in), receiving
    `incoming` and then `then` for ever; the messages it sent."""
    sent: list[dict[str, Any]] = []
    messages = iter(incoming)

    async def receive() -> dict[str, Any]:
        return next(messages, then)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    path = scope["path"]
    full = {
        "asgi": {"version": "3.0"},
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        **scope,
    }
    await app(full, receive, send)
    return sent
