"""Automatic persisted queries (Apollo's protocol) on GET and POST, trusted documents, and
the one identity (a document's sha256) they share with prepared documents and plans."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.errors import ConfigurationError
from schema import build_schema
from schema.engine import compiler
from schema.engine.prepared import Documents, source_digest
from tests.conftest import REDIS_URL, Env, base_settings, running_env

VIEWER = "query Viewer { viewer { id email } }"
RENAME = (
    'mutation Rename { updateProfile(input: {displayName: "Renamed"}) { user { displayName } } }'
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def unique(query: str) -> str:
    """The query with a comment of its own: its hash is new to any store (Redis is shared)."""
    return f"# {uuid.uuid4()}\n{query}"


async def post(env: Env, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await env.http.post("/graphql", json=body, headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def get(env: Env, token: str | None, params: dict[str, str]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"} if token else {}
    return await env.http.get("/graphql", params=params, headers=headers)


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def test_an_unknown_hash_is_persisted_query_not_found(env: Env) -> None:
    user = await env.user()
    body = await post(env, user.token, {"extensions": persisted(sha256(unique(VIEWER)))})
    assert body["errors"] == [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
    assert body.get("data") is None


async def test_hash_and_query_register_then_the_hash_alone_runs_on_post(env: Env) -> None:
    user = await env.user(email="apq@example.com")
    query = unique(VIEWER)
    first = await post(env, user.token, {"query": query, "extensions": persisted(sha256(query))})
    again = await post(env, user.token, {"extensions": persisted(sha256(query))})
    assert first["data"]["viewer"]["email"] == "apq@example.com"
    assert again == first


async def test_a_registered_hash_runs_on_get(env: Env) -> None:
    user = await env.user(email="get@example.com")
    query = unique(VIEWER)
    extensions = json.dumps(persisted(sha256(query)))
    registered = await get(env, user.token, {"query": query, "extensions": extensions})
    by_hash = await get(env, user.token, {"extensions": extensions})
    assert registered.status_code == by_hash.status_code == 200, by_hash.text
    assert by_hash.json()["data"]["viewer"]["email"] == "get@example.com"


async def test_get_refuses_a_persisted_mutation(env: Env) -> None:
    user = await env.user()
    query = unique(RENAME)
    await post(env, user.token, {"query": query, "extensions": persisted(sha256(query))})
    response = await get(env, user.token, {"extensions": json.dumps(persisted(sha256(query)))})
    assert response.status_code == 400
    assert "mutations are not allowed when using GET" in response.text


async def test_a_query_that_is_not_its_hash_is_refused_and_not_registered(env: Env) -> None:
    user = await env.user()
    query, other = unique(VIEWER), unique(VIEWER)
    wrong = await post(env, user.token, {"query": query, "extensions": persisted(sha256(other))})
    assert codes(wrong) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    later = await post(env, user.token, {"extensions": persisted(sha256(other))})
    assert codes(later) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.parametrize(
    "extension",
    [
        {"version": 2, "sha256Hash": "0" * 64},
        {"version": True, "sha256Hash": "0" * 64},
        {"version": 1},
        {"version": 1, "sha256Hash": "x" * 10_000},
        {"version": 1, "sha256Hash": "ABC" + "0" * 61},
        "not an object",
    ],
)
async def test_a_malformed_persisted_query_extension_is_invalid(
    env: Env, extension: object
) -> None:
    body = await post(env, None, {"extensions": {"persistedQuery": extension}})
    assert codes(body) == ["PERSISTED_QUERY_INVALID"]


@pytest.mark.settings(graphql_max_length=64)
async def test_a_query_past_the_length_limit_is_refused_before_hashing(env: Env) -> None:
    query = "{ viewer { id } }" + " " * 100
    body = await post(env, None, {"query": query, "extensions": persisted("0" * 64)})
    assert codes(body) == ["QUERY_TOO_LARGE"]


@pytest.mark.settings(graphql_max_depth=1)
async def test_a_query_past_the_limits_is_not_registered(env: Env) -> None:
    user = await env.user()
    query = unique("{ viewer { organizations { organization { name } } } }")
    refused = await post(env, user.token, {"query": query, "extensions": persisted(sha256(query))})
    assert codes(refused) == ["QUERY_TOO_DEEP"]
    later = await post(env, user.token, {"extensions": persisted(sha256(query))})
    assert codes(later) == ["PERSISTED_QUERY_NOT_FOUND"]


@pytest.mark.settings(graphql_persisted_queries=False)
async def test_persisted_queries_turned_off_say_so(env: Env) -> None:
    query = unique(VIEWER)
    body = await post(env, None, {"query": query, "extensions": persisted(sha256(query))})
    assert body["errors"] == [
        {
            "message": "PersistedQueryNotSupported",
            "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
        }
    ]


async def test_the_plan_is_keyed_by_the_documents_sha256() -> None:
    schema = build_schema(base_settings(graphql_executor="compiled"))
    query = unique("{ plans { name } }")
    prepared = schema.documents.prepare(schema.graphql_schema, query)
    operation = prepared.document.definitions[0]
    assert source_digest(operation) == sha256(query)
    await schema.execute(query)
    keys = [key for key in compiler._PLANS.keys() if key[0] == id(schema.graphql_schema)]
    assert [key[1] for key in keys] == [sha256(query)]


@contextlib.asynccontextmanager
async def app_on(template: Path, tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    """The app on a copy of the migrated SQLite file, with these settings."""
    db = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copy(template, db)
    settings = base_settings(database_url=f"sqlite+aiosqlite:///{db}", **overrides)
    async with running_env(settings) as env:
        yield env


def trusted_env(
    template: Path, tmp_path: Path, path: str, only: bool = True
) -> contextlib.AbstractAsyncContextManager[Env]:
    return app_on(template, tmp_path, trusted_documents=path, trusted_documents_only=only)


async def test_a_document_parsed_again_finds_its_plan_by_sha256() -> None:
    schema = build_schema(base_settings(graphql_executor="compiled"))
    query = unique("{ plans { name } }")

    def plans() -> list[object]:
        mine = [k for k in compiler._PLANS.keys() if k[0] == id(schema.graphql_schema)]
        return [entry[2] for entry in map(compiler._PLANS.get, mine) if entry is not None]

    await schema.execute(query)
    first = plans()
    schema.documents = Documents(schema.documents.limits)  # the parsed document forgotten
    await schema.execute(query)
    assert len(first) == 1 and first[0] is not None
    assert plans() == first


def manifest(tmp_path: Path, documents: dict[str, str]) -> str:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps(documents))
    return str(path)


@pytest.fixture
def trusted(tmp_path: Path) -> dict[str, str]:
    """A graphql-codegen manifest: one document under its sha256, one under another id."""
    return {sha256(VIEWER): VIEWER, "rename-v1": RENAME}


async def test_trusted_only_runs_the_manifests_documents_by_id(
    sqlite_template: Path, tmp_path: Path, trusted: dict[str, str]
) -> None:
    path = manifest(tmp_path, trusted)
    async with trusted_env(sqlite_template, tmp_path, path) as env:
        user = await env.user(email="trusted@example.com")
        by_hash = await post(env, user.token, {"extensions": persisted(sha256(VIEWER))})
        by_id = await post(env, user.token, {"extensions": persisted("rename-v1")})
    assert by_hash["data"]["viewer"]["email"] == "trusted@example.com"
    assert by_id["data"]["updateProfile"]["user"]["displayName"] == "Renamed"


async def test_trusted_only_refuses_any_other_document(
    sqlite_template: Path, tmp_path: Path, trusted: dict[str, str]
) -> None:
    other = "{ viewer { id } }"
    async with trusted_env(sqlite_template, tmp_path, manifest(tmp_path, trusted)) as env:
        user = await env.user()
        plain = await post(env, user.token, {"query": other})
        registering = await post(
            env, user.token, {"query": other, "extensions": persisted(sha256(other))}
        )
        trusted_text = await post(env, user.token, {"query": VIEWER})
    assert codes(plain) == codes(registering) == ["PERSISTED_QUERY_NOT_TRUSTED"]
    assert "GATEWAY_TRUSTED_DOCUMENTS" in plain["errors"][0]["message"]
    assert trusted_text["data"]["viewer"]["id"] == user.user_id


async def test_trusted_documents_without_only_still_register_others(
    sqlite_template: Path, tmp_path: Path, trusted: dict[str, str]
) -> None:
    other = unique("{ viewer { id } }")
    path = manifest(tmp_path, trusted)
    async with trusted_env(sqlite_template, tmp_path, path, only=False) as env:
        user = await env.user()
        from_manifest = await post(env, user.token, {"extensions": persisted("rename-v1")})
        await post(env, user.token, {"query": other, "extensions": persisted(sha256(other))})
        registered = await post(env, user.token, {"extensions": persisted(sha256(other))})
    assert not from_manifest.get("errors")
    assert registered["data"]["viewer"]["id"] == user.user_id


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[1, 2]", "must map ids to documents"),
        ("{not json", "cannot read"),
        (json.dumps({"0" * 64: VIEWER}), "is not the sha256 of its document"),
    ],
)
def test_an_unusable_manifest_is_a_configuration_error(
    tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=words):
        build_schema(base_settings(trusted_documents=str(path)))


def test_apollos_manifest_format_is_read(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    operations = [{"id": sha256(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER}]
    path.write_text(
        json.dumps({"format": "apollo-persisted-query-manifest", "operations": operations})
    )
    schema = build_schema(base_settings(trusted_documents=str(path)))
    assert schema.persisted.trusted is not None
    assert schema.persisted.trusted.by_id == {sha256(VIEWER): VIEWER}


@pytest.mark.skipif(not REDIS_URL, reason="GATEWAY_TEST_REDIS_URL not set")
async def test_processes_share_registered_queries_through_redis(
    sqlite_template: Path, tmp_path: Path
) -> None:
    query = unique(VIEWER)
    async with app_on(sqlite_template, tmp_path, redis_url=REDIS_URL) as one:
        user = await one.user(email="shared@example.com")
        await post(one, user.token, {"query": query, "extensions": persisted(sha256(query))})
        # Another process: its own app and caches, the same database file and Redis.
        other_settings = one.settings.model_copy()
        async with running_env(other_settings) as other:
            body = await post(other, user.token, {"extensions": persisted(sha256(query))})
    assert body["data"]["viewer"]["email"] == "shared@example.com"
