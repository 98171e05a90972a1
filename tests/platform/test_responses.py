"""gateway/responses.py: the answers written at once are those Starlette and strawberry write."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from gateway.responses import JsonBody, SubResponse


def wire(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes, object]:
    return (
        response.status_code,
        list(response.raw_headers),
        bytes(response.body),
        response.background,
    )


@pytest.mark.parametrize("status", [200, 201, 400, 404, 405, 413, 429, 500, 503])
@pytest.mark.parametrize(
    "headers", [{}, {"Retry-After": "2"}, {"Allow": "GET, HEAD", "WWW-Authenticate": "Bearer"}]
)
def test_a_json_body_is_starlettes_response(status: int, headers: dict[str, str]) -> None:
    body = b'{"success":false,"error":"caf\xc3\xa9"}'
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    starlette = Response(body, status, headers or None, media_type="application/json")
    assert wire(JsonBody(body, status, raw)) == wire(starlette)


async def test_a_sub_response_is_strawberrys() -> None:
    request = Request({"type": "http", "method": "POST", "headers": []})
    theirs = await GraphQL.get_sub_response(None, request)  # type: ignore[arg-type]
    ours = SubResponse()
    assert wire(ours) == wire(theirs)
    for response in (ours, theirs):
        response.headers["Retry-After"] = "2"
        response.status_code = 503
    assert wire(ours) == wire(theirs)


async def test_the_views_answer_is_strawberrys() -> None:
    """`GraphQLApp.create_response` (gateway/graphql_http.py) against strawberry's own."""
    from gateway.graphql_http import GraphQLApp

    data = {"data": {"viewer": {"id": "usr-1", "name": "Zoë"}}}
    for status in (None, 503):
        subs = []
        for sub in (SubResponse(), await GraphQL.get_sub_response(None, None)):  # type: ignore[arg-type]
            sub.status_code = status  # type: ignore[assignment]
            sub.headers["Retry-After"] = "2"
            subs.append(sub)
        view = GraphQLApp.__new__(GraphQLApp)
        ours = GraphQLApp.create_response(view, data, subs[0])  # type: ignore[arg-type]
        theirs = GraphQL.create_response(view, data, subs[1])  # type: ignore[arg-type]
        assert wire(ours) == wire(theirs)
