"""The HTTP edge's limits: request bodies (413 in the route's error shape) and request headers
that do not arrive in time (the connection is closed)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.http_limits import HeaderTimeoutProtocol
from tests.conftest import Env
from tests.envelopes import assert_refused

LIMIT = {"max_body_bytes": 1_000}


async def chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // 100):
        yield b" " * 100


@pytest.mark.settings(**LIMIT)
async def test_a_rest_body_declared_too_large_is_413_in_the_envelope(env: Env) -> None:
    alice = await env.user()
    response = await alice.patch("/users/me", content=b"{}" + b" " * 1_000)
    assert_refused(response, 413, "The request body is larger than 1000 bytes")
    assert response.headers["x-request-id"]


@pytest.mark.settings(**LIMIT)
async def test_a_graphql_body_too_large_is_413_with_a_code(env: Env) -> None:
    response = await env.http.post("/graphql", json={"query": "{ __typename }" + " " * 1_000})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"


@pytest.mark.settings(**LIMIT)
async def test_a_streamed_body_is_refused_once_it_passes_the_limit(env: Env) -> None:
    alice = await env.user()
    response = await env.http.patch(
        "/api/v1/users/me",
        content=chunks(5_000),
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["success"] is False


@pytest.mark.settings(**LIMIT)
async def test_a_body_within_the_limit_is_served(env: Env) -> None:
    alice = await env.user()
    response = await alice.patch("/users/me", json={"displayName": "Alice"})
    assert response.status_code == 200


# --- header timeout: a real uvicorn server on a free loopback port ---------------------------


class QuickHeaderTimeout(HeaderTimeoutProtocol):
    header_timeout = 0.2


async def hello(_: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


@pytest.fixture
async def server() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/", hello)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=QuickHeaderTimeout, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    while not running.started:  # noqa: ASYNC110  (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        running.should_exit = True
        await task
        sock.close()


async def test_a_connection_whose_headers_do_not_arrive_is_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET / HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")  # and nothing more
    await writer.drain()
    # The server closes it (EOF); the bound is only there so that a regression fails.
    assert await asyncio.wait_for(reader.read(), timeout=30) == b""
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    assert await asyncio.wait_for(reader.read(), timeout=30) == b""
    writer.close()


async def test_requests_whose_headers_arrive_are_served_on_a_kept_alive_connection(
    server: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(5) == b"hello"
    writer.close()
