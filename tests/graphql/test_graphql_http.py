"""GraphQL over HTTP: the short way for plain JSON POSTs answers exactly as strawberry's view."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.graphql_http import GraphQLApp
from tests.asgi import call_asgi
from tests.conftest import Env

TWO_OPERATIONS = (
    "query A { viewer { id } } query B($n: Int) { viewer { apiKeys(first: $n) { nodes { id } } } }"
)

# (headers beyond the client's, body as sent)
REQUESTS: list[tuple[dict[str, str], Any]] = [
    ({}, {"query": "{ viewer { id email displayName } }"}),
    ({}, {"query": TWO_OPERATIONS, "operationName": "B", "variables": {"n": 2}}),
    ({}, {"query": TWO_OPERATIONS}),  # several operations and no name: 400
    ({}, {"query": TWO_OPERATIONS, "operationName": "C"}),  # no such operation: 400
    (
        {},
        {
            "query": 'mutation { updateProfile(input: {displayName: "Al"}) { user { displayName } } }'
        },
    ),
    ({}, {"query": "{ viewer { id }"}),  # syntax error
    ({}, {"query": "{ viewer { nope } }"}),  # validation error
    ({}, {"query": '{ user(id: "usr-01ARZ3NDEKTSV4RRFFQ69G5FAV") { id } }'}),  # null
    ({}, {"query": "{ viewer { id } }", "variables": None, "extensions": {}}),
    ({}, {"variables": {}}),  # no query: 400
    ({}, {"query": None}),
    ({}, {"query": "{ viewer { id } }", "variables": [1]}),  # variables not an object
    ({}, [{"query": "{ viewer { id } }"}]),  # a batch: not enabled, 400
    ({}, b"{not json"),
    ({"Content-Type": "application/json; charset=utf-8"}, {"query": "{ viewer { id } }"}),
    ({"Content-Type": "text/plain"}, {"query": "{ viewer { id } }"}),  # 400
    ({"Accept": "multipart/mixed"}, {"query": "{ viewer { id } }"}),
    ({"Authorization": "Bearer gwk_nope_nope"}, {"query": "{ viewer { id } }"}),
    ({"Authorization": "Basic abc"}, {"query": "{ viewer { id } }"}),
]


def graphql_view(env: Env) -> GraphQLApp:
    route = next(r for r in env.app.routes if getattr(r, "path", None) == "/graphql")
    view = route.app.app  # the route's ClosingContexts around the view
    assert isinstance(view, GraphQLApp)
    return view


@pytest.mark.parametrize("index", range(len(REQUESTS)))
async def test_plain_posts_answer_as_the_view_does(env: Env, index: int) -> None:
    headers, body = REQUESTS[index]
    alice = await env.user()
    view = graphql_view(env)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def answer(plain_posts: bool) -> tuple[int, str, Any]:
        view.plain_posts = plain_posts
        response = await alice.http.post(
            "/graphql", content=content, headers=alice._headers(headers)
        )
        text = response.text
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return response.status_code, response.headers.get("content-type", ""), parsed

    assert view.plain_posts  # on by default
    assert await answer(True) == await answer(False)


async def test_a_plain_post_is_executed_without_the_view(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await env.user()
    view = graphql_view(env)

    async def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the view's run was called")

    monkeypatch.setattr(view, "run", refuse)
    assert (await alice.gql_data("{ viewer { id } }")) == {"viewer": {"id": alice.user_id}}


@pytest.mark.parametrize("body", ['"{ viewer { id } }"', "123", "null", "true"])
async def test_a_json_body_that_is_not_an_object_is_400(env: Env, body: str) -> None:
    alice = await env.user()
    response = await alice.http.post("/graphql", content=body.encode(), headers=alice._headers({}))
    assert response.status_code == 400
    assert response.text == "The request body must be a JSON object"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"query": "{ viewer { id } }", "x": "\xff"}'],
    ids=["nested-too-deeply", "not-utf-8"],
)
async def test_a_body_json_cannot_read_is_400(env: Env, body: bytes) -> None:
    alice = await env.user()
    response = await alice.http.post("/graphql", content=body, headers=alice._headers({}))
    assert response.status_code == 400
    assert response.text == "Unable to parse request body as JSON"


async def test_graphql_is_not_served_over_websockets(env: Env) -> None:
    """The schema has no subscriptions: `/graphql` is an HTTP route, and a websocket asking
    for a GraphQL subprotocol is closed before it is accepted."""
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/graphql",
        "headers": [(b"sec-websocket-protocol", b"graphql-transport-ws")],
        "subprotocols": ["graphql-transport-ws"],
        "state": {},
    }
    connect, disconnect = (
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    )
    sent = await call_asgi(env.app, scope, [connect], then=disconnect)
    assert [message["type"] for message in sent] == ["websocket.close"]


@pytest.mark.parametrize(
    "name",
    [
        # Internal to strawberry's view (not documented for overriding), called by the short way.
        "execute_single",
        "request_adapter_class",
        "_handle_errors",
        # The view's documented hooks, called in its order.
        "get_root_value",
        "get_sub_response",
        "get_context",
        "process_result",
        "create_response",
        "run",
    ],
)
def test_the_view_still_has_what_the_short_way_calls(name: str) -> None:
    import strawberry

    assert hasattr(GraphQLApp, name), (
        f"strawberry-graphql {strawberry.__version__}: the ASGI view no longer has {name!r}, "
        "which gateway/graphql_http.GraphQLApp.execute_plain_post calls"
    )
