"""GraphQL failures: coded errors, masked internals, depth limit, typed mutation errors."""

from __future__ import annotations

from tests.conftest import Env


async def test_unknown_field_is_a_validation_error_with_code(env: Env) -> None:
    alice = await env.user()
    body = await alice.gql("{ viewer { nope } }")
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_a_query_that_does_not_parse_is_a_coded_syntax_error(env: Env) -> None:
    alice = await env.user()
    for _ in range(2):  # the second time too: a text that does not parse is not cached
        body = await alice.gql("{ viewer { id }")
        (error,) = body["errors"]
        assert error["message"].startswith("Syntax Error")
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert body["data"] is None


async def test_a_mutation_over_get_is_refused_even_when_it_is_invalid(env: Env) -> None:
    alice = await env.user()
    response = await alice.http.get(
        "/graphql",
        params={"query": "mutation { nope }"},
        headers={"Authorization": f"Bearer {alice.token}", "Accept": "application/json"},
    )
    assert response.status_code == 400
    assert "GET" in response.text  # not the validation error: the method is the problem


async def test_too_deep_query_is_refused(env: Env) -> None:
    alice = await env.user()
    inner = "id"
    for _ in range(10):
        inner = f"organizations {{ user {{ {inner} }} }}"
    deep = f"{{ viewer {{ {inner} }} }}"
    body = await alice.gql(deep)
    error = body["errors"][0]  # (its lists of lists also cost too much)
    assert error["extensions"]["code"] == "QUERY_TOO_DEEP"
    assert error["message"] == "The operation has depth 21; the maximum is 15"
    assert body["data"] is None


async def test_mutation_validation_failure_is_a_typed_payload_error(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(
        'mutation { updateProfile(input: {photoUrl: "ftp://x"}) { user { id } errors { code field message } } }'
    )
    assert data["updateProfile"] == {
        "user": None,
        "errors": [
            {
                "code": "VALIDATION_FAILED",
                "field": "photoUrl",
                "message": "photoUrl must be an http(s) URL",
            }
        ],
    }


async def test_node_of_an_invisible_user_is_null(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    data = await alice.gql_data("query($id: ID!) { node(id: $id) { id } }", {"id": bob.user_id})
    assert data["node"] is None


async def test_node_resolves_the_viewer_by_prefixed_id(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(
        "query($id: ID!) { node(id: $id) { __typename id } }", {"id": alice.user_id}
    )
    assert data["node"] == {"__typename": "User", "id": alice.user_id}


async def test_malformed_cursor_is_a_validation_error(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    body = await alice.gql(
        'query($id: ID!) { organization(id: $id) { members(after: "%%%") { nodes { id } } } }',
        {"id": org_id},
    )
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
