"""Usage history: REST shapes, keyset pagination, who may read whose usage, GraphQL fields."""

from __future__ import annotations

from gateway.rest.routes import ENDPOINTS
from tests.conftest import Env
from tests.envelopes import assert_refused
from tests.rest.helpers import fetch_document, response_schema, validator_for
from tests.usage.helpers import event, ingest_ok, member_id, service

USAGE_KEYS = [
    "id",
    "generationId",
    "aiInferenceProviderName",
    "aiModelName",
    "aiModelTypeName",
    "promptTokens",
    "completionTokens",
    "totalTokens",
    "costUsd",
    "creditsUsed",
    "organizationId",
    "userId",
    "metadata",
    "createdAt",
]


async def test_user_usages_have_the_contract_shape_newest_first(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    await ingest_ok(
        env,
        event(
            alice.user_id,
            generationId="gen_plain",
            costUsd=0.0015,
            credits=2_000,
            metadata={"client": "ide"},
            createdAt="2026-03-01T10:00:00.000001Z",
        ),
    )
    await ingest_ok(
        env,
        event(
            alice.user_id,
            generationId="gen_search",
            organizationId=org_id,
            operation="web_search",
            createdAt="2026-03-02T10:00:00Z",
        ),
    )
    response = await alice.get(f"/users/{alice.user_id}/usages")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert list(body["data"]) == ["items", "nextCursor"]
    assert body["data"]["nextCursor"] is None
    newest, oldest = body["data"]["items"]
    assert list(oldest) == USAGE_KEYS  # operation omitted for plain inference
    assert oldest == {
        "id": oldest["id"],
        "generationId": "gen_plain",
        "aiInferenceProviderName": "openai",
        "aiModelName": "gpt-4o",
        "aiModelTypeName": "chat",
        "promptTokens": 100,
        "completionTokens": 50,
        "totalTokens": 150,
        "costUsd": 0.0015,
        "creditsUsed": 2_000,
        "organizationId": "",
        "userId": alice.user_id,
        "metadata": {"client": "ide"},
        "createdAt": "2026-03-01T10:00:00.000001Z",
    }
    assert newest["generationId"] == "gen_search"
    assert newest["operation"] == "web_search"
    assert newest["organizationId"] == org_id
    assert isinstance(newest["costUsd"], float)


async def test_user_usages_page_with_limit_and_cursor(env: Env) -> None:
    alice = await env.user()
    sent = [event(alice.user_id, createdAt=f"2026-04-{day:02d}T00:00:00Z") for day in range(1, 8)]
    await ingest_ok(env, *sent)
    expected = [e["generationId"] for e in reversed(sent)]
    seen: list[str] = []
    cursor = None
    while True:
        path = f"/users/{alice.user_id}/usages?limit=3" + (f"&cursor={cursor}" if cursor else "")
        data = (await alice.get(path)).json()["data"]
        assert len(data["items"]) <= 3
        seen += [i["generationId"] for i in data["items"]]
        cursor = data["nextCursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_user_usages_default_page_is_50(env: Env) -> None:
    alice = await env.user()
    await ingest_ok(env, *[event(alice.user_id) for _ in range(51)])
    data = (await alice.get(f"/users/{alice.user_id}/usages")).json()["data"]
    assert len(data["items"]) == 50
    assert data["nextCursor"] is not None


async def test_user_usages_reject_bad_limit_and_cursor(env: Env) -> None:
    alice = await env.user()
    for query in ("limit=0", "limit=101", "limit=x", "cursor=garbage"):
        response = await alice.get(f"/users/{alice.user_id}/usages?{query}")
        assert response.status_code == 400, query
        assert response.json()["success"] is False


async def test_someone_elses_usages_are_404(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    await ingest_ok(env, event(bob.user_id))
    response = await alice.get(f"/users/{bob.user_id}/usages")
    assert response.status_code == 404
    assert (await env.anonymous.get(f"/users/{bob.user_id}/usages")).status_code == 401


async def test_member_usages_are_for_managers_and_the_member(env: Env) -> None:
    owner = await env.user(name="Olive")
    admin = await env.user()
    bob = await env.user("bob@example.com", "Bob")
    carol = await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, admin, "admin")
    bob_member = await env.add_member(org_id, bob)
    await env.add_member(org_id, carol)
    other_org = await env.organization(owner, "Other")
    await env.add_member(other_org, bob)
    await ingest_ok(
        env,
        event(bob.user_id, generationId="in_org", organizationId=org_id),
        event(bob.user_id, generationId="personal"),
        event(bob.user_id, generationId="other_org", organizationId=other_org),
    )
    path = f"/organizations/{org_id}/members/{bob_member}/usages"
    for client in (owner, admin, bob):
        response = await client.get(path)
        assert response.status_code == 200, response.text
        [item] = response.json()["data"]["items"]
        assert item["generationId"] == "in_org"
        assert item["memberDisplayName"] == "Bob"
        assert item["memberEmail"] == "bob@example.com"
        assert list(item) == [*USAGE_KEYS, "memberDisplayName", "memberEmail"]
    assert (await carol.get(path)).status_code == 403
    stranger = await env.user()
    assert (await stranger.get(path)).status_code == 404
    # A member id of another organization is not found here.
    owner_in_other = await member_id(env, other_org, owner.user_id)
    response = await owner.get(f"/organizations/{org_id}/members/{owner_in_other}/usages")
    assert response.status_code == 404


async def test_member_usages_of_an_unknown_member_is_not_found(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await owner.get(
        f"/organizations/{org_id}/members/mbr-01JUNKNOWN0000000000000000/usages"
    )
    assert_refused(response, 404, "Member not found")


async def test_member_usages_page_with_cursor(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    mine = await member_id(env, org_id, alice.user_id)
    await ingest_ok(env, *[event(alice.user_id, organizationId=org_id) for _ in range(3)])
    path = f"/organizations/{org_id}/members/{mine}/usages?limit=2"
    first = (await alice.get(path)).json()["data"]
    second = (await alice.get(path + f"&cursor={first['nextCursor']}")).json()["data"]
    assert len(first["items"]) == 2 and len(second["items"]) == 1
    assert second["nextCursor"] is None


USAGE_FIELDS = "edges { cursor node { id generationId creditsUsed operation organizationId } }"


async def test_graphql_viewer_usages_and_usage_relations(env: Env) -> None:
    alice = await env.user("alice@example.com")
    org_id = await env.organization(alice)
    await ingest_ok(
        env,
        event(alice.user_id, generationId="p1", operation="web_search"),
        event(alice.user_id, generationId="o1", organizationId=org_id),
    )
    data = await alice.gql_data(
        """{ viewer { usages(first: 10) { pageInfo { hasNextPage }
             nodes { generationId operation user { email } organization { id } } } } }"""
    )
    nodes = data["viewer"]["usages"]["nodes"]
    assert [n["generationId"] for n in nodes] == ["o1", "p1"]
    assert nodes[0]["organization"] == {"id": org_id}
    assert nodes[1]["organization"] is None and nodes[1]["operation"] == "web_search"
    assert nodes[1]["user"] == {"email": "alice@example.com"}


async def test_graphql_usages_of_other_people_are_null(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await ingest_ok(env, event(alice.user_id, organizationId=org_id))
    query = """query ($id: ID!) { organization(id: $id) { members(first: 10) {
        nodes { userId usages(first: 5) { totalCount nodes { id } } user { usages { nodes { id } } } }
    } } }"""
    as_bob = await bob.gql_data(query, {"id": org_id})
    by_user = {n["userId"]: n for n in as_bob["organization"]["members"]["nodes"]}
    assert by_user[alice.user_id]["usages"] is None
    assert by_user[alice.user_id]["user"]["usages"] is None
    assert by_user[bob.user_id]["usages"]["nodes"] == []
    as_alice = await alice.gql_data(query, {"id": org_id})
    by_user = {n["userId"]: n for n in as_alice["organization"]["members"]["nodes"]}
    assert len(by_user[alice.user_id]["usages"]["nodes"]) == 1
    assert by_user[bob.user_id]["usages"]["nodes"] == []
    assert by_user[bob.user_id]["user"]["usages"] is None


async def test_graphql_organization_usages_need_a_manager(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await ingest_ok(
        env,
        event(bob.user_id, generationId="b1", organizationId=org_id),
        event(alice.user_id, generationId="a1", organizationId=org_id),
        event(alice.user_id, generationId="mine"),
    )
    query = f"""query ($id: ID!) {{ organization(id: $id) {{ usages(first: 1) {{
        pageInfo {{ hasNextPage endCursor }} {USAGE_FIELDS} }} }} }}"""
    data = await alice.gql_data(query, {"id": org_id})
    page = data["organization"]["usages"]
    assert [e["node"]["generationId"] for e in page["edges"]] == ["a1"]
    assert page["pageInfo"]["hasNextPage"] is True
    body = await bob.gql(query, {"id": org_id})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_node_resolves_usage_for_owner_and_managers_only(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    carol = await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await env.add_member(org_id, carol)
    data = await ingest_ok(
        env,
        event(bob.user_id, organizationId=org_id),
        event(bob.user_id),
    )
    org_usage, personal_usage = (i["id"] for i in data["items"])
    query = "query ($id: ID!) { node(id: $id) { id ... on Usage { generationId } } }"

    async def sees(client: object, usage_id: str) -> bool:
        result = await client.gql_data(query, {"id": usage_id})  # type: ignore[attr-defined]
        return result["node"] is not None

    assert await sees(bob, org_usage) and await sees(bob, personal_usage)
    assert await sees(alice, org_usage)
    assert not await sees(alice, personal_usage)
    assert not await sees(carol, org_usage)


async def test_usage_responses_match_the_openapi_document(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    mine = await member_id(env, org_id, alice.user_id)
    sent = [
        event(alice.user_id, organizationId=org_id, operation="web_search"),
        event(alice.user_id),
    ]
    recorded = await service(env).post("/internal/usages", json={"events": sent})
    document = await fetch_document(env)
    answers = {
        ("POST", "/internal/usages"): recorded,
        ("GET", "/users/{id}/usages"): await alice.get(f"/users/{alice.user_id}/usages"),
        ("GET", "/organizations/{orgId}/members/{memberId}/usages"): await alice.get(
            f"/organizations/{org_id}/members/{mine}/usages"
        ),
        ("GET", "/organizations/{orgId}/usages"): await alice.get(
            f"/organizations/{org_id}/usages?groupBy=member"
        ),
        ("GET", "/organizations/{orgId}/metrics"): await alice.get(
            f"/organizations/{org_id}/metrics"
        ),
    }
    endpoints = {(e.method, e.path): e for e in ENDPOINTS}
    for key, response in answers.items():
        assert response.status_code == 200, (key, response.text)
        schema = response_schema(document, endpoints[key], 200)
        assert schema is not None
        errors = list(validator_for(document, schema).iter_errors(response.json()))
        assert errors == [], (key, [e.message for e in errors])


async def test_usage_metadata_keeps_its_numbers_exactly(env: Env) -> None:
    metadata = {"big": 2**70, "negative": -(2**64), "small": 7, "ratio": 0.1, "text": "1" * 25}
    alice = await env.user()
    await ingest_ok(env, event(alice.user_id, generationId="gen_big", metadata=metadata))
    response = await alice.get(f"/users/{alice.user_id}/usages")
    assert response.status_code == 200
    # repr: 2**70 == float(2**70), but a client must get the integer back
    assert repr(response.json()["data"]["items"][0]["metadata"]) == repr(metadata)
    data = await alice.gql_data("{ viewer { usages(first: 1) { nodes { metadata } } } }")
    assert repr(data["viewer"]["usages"]["nodes"][0]["metadata"]) == repr(metadata)
