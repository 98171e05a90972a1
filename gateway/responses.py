"""Answers whose body is JSON already encoded: their headers written once, as Starlette's
`Response` would write them, without looking the body and headers over again."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

_JSON_TYPE = (b"content-type", b"application/json")


class JsonBody(Response):
    """`Response(body, status, headers, media_type="application/json")` for a body of bytes
    and headers given as bytes: the same status, headers (the given ones, then Content-Length
    and Content-Type) and body. Statuses without a body (1xx, 204, 304) are Starlette's
    `Response` to make."""

    media_type = "application/json"

    def __init__(
        self,
        body: bytes,
        status_code: int = 200,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [*headers, (b"content-length", b"%d" % len(body)), _JSON_TYPE]


class SubResponse(Response):
    """strawberry's sub-response (what a resolver may add to the answer: headers, a status, a
    background task) as its view makes it, an empty `Response` with no status and no
    Content-Length, without rendering and looking over an empty body."""

    def __init__(self) -> None:
        self.status_code = None  # type: ignore[assignment]  # strawberry's: None until set
        self.background = None
        self.body = b""
        self.raw_headers = []
