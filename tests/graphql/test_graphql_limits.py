"""GraphQL documents are refused past their limits before validation, in time linear in
their size: length, tokens, depth, aliases, cost (schema/limits.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from graphql import GraphQLError, parse

from schema import build_schema
from schema.engine.persisted import document_digest
from schema.engine.prepared import Documents
from schema.limits import QueryLimits, _Measurer, check_document
from tests.conftest import Env, base_settings

SCHEMA = build_schema(base_settings())._schema


def fan_out(levels: int) -> str:
    """Each fragment spreads the next twice: 2**levels spreads when followed naively."""
    fragments = "".join(
        f"fragment F{i} on User {{ id ...F{i + 1} ...F{i + 1} }} " for i in range(levels)
    )
    return f"query {{ viewer {{ ...F0 }} }} {fragments}fragment F{levels} on User {{ id }}"


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


async def test_fragment_fan_out_is_refused_as_too_complex(env: Env) -> None:
    for levels in (22, 31, 200):
        body = await env.anonymous.gql(fan_out(levels))
        assert body["data"] is None
        assert codes(body) == ["QUERY_TOO_COMPLEX"]


def test_fragments_are_measured_once_whatever_the_spreads(monkeypatch: pytest.MonkeyPatch) -> None:
    measured: list[object] = []
    original = _Measurer.selection_set

    def counting(self: _Measurer, selection_set: Any, type_: Any) -> Any:
        measured.append(selection_set)
        return original(self, selection_set, type_)

    monkeypatch.setattr(_Measurer, "selection_set", counting)
    document = parse(fan_out(60))
    errors = check_document(SCHEMA, document, QueryLimits())
    assert [e.extensions["code"] for e in errors] == ["QUERY_TOO_COMPLEX"]
    # The operation's two selection sets and one per fragment: 2**60 when followed naively.
    assert len(measured) == 2 + 61


def test_a_chain_of_fragments_longer_than_the_recursion_limit_is_measured() -> None:
    levels = 3_000
    fragments = "".join(f"fragment F{i} on User {{ ...F{i + 1} }} " for i in range(levels))
    document = parse(f"{{ viewer {{ ...F0 }} }} {fragments}fragment F{levels} on User {{ id }}")
    assert check_document(SCHEMA, document, QueryLimits()) == []


def test_a_fragment_cycle_is_left_to_validation() -> None:
    document = parse("{ viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }")
    assert check_document(SCHEMA, document, QueryLimits()) == []


async def test_a_fragment_cycle_is_a_validation_error(env: Env) -> None:
    body = await env.anonymous.gql(
        "{ viewer { ...A } } fragment A on User { id ...B } fragment B on User { ...A }"
    )
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_a_query_longer_than_the_limit_is_refused_unparsed(env: Env) -> None:
    query = "{ viewer { id } }" + " " * 65_536
    body = await env.anonymous.gql(query)
    assert codes(body) == ["QUERY_TOO_LARGE"]
    assert body["errors"][0]["message"] == (
        f"The query has {len(query)} characters; at most 65536 are accepted"
    )


async def test_a_query_with_too_many_tokens_is_refused(env: Env) -> None:
    body = await env.anonymous.gql("{ viewer { " + "id " * 3_000 + "} }")
    assert codes(body) == ["QUERY_TOO_LARGE"]


async def test_a_query_with_too_many_comments_is_refused(env: Env) -> None:
    body = await env.anonymous.gql("#\n" * 3_001 + "{ viewer { id } }")
    assert codes(body) == ["QUERY_TOO_LARGE"]


async def test_too_many_aliases_are_refused(env: Env) -> None:
    aliases = " ".join(f"a{i}: id" for i in range(101))
    body = await env.anonymous.gql(f"{{ viewer {{ {aliases} }} }}")
    assert codes(body) == ["TOO_MANY_ALIASES"]
    assert body["errors"][0]["message"] == "The operation has 101 aliases; the maximum is 100"


async def test_aliases_in_a_fragment_count_at_every_spread(env: Env) -> None:
    aliases = " ".join(f"a{i}: id" for i in range(60))
    body = await env.anonymous.gql(
        f"{{ viewer {{ ...A }} me: viewer {{ ...A }} }} fragment A on User {{ {aliases} }}"
    )
    assert codes(body) == ["TOO_MANY_ALIASES"]


NESTED_PAGES = """query($org: ID!) { organization(id: $org) { members(first: %d) { nodes {
  user { id email } usages(first: %d) { nodes { id modelName promptTokens creditsUsed } } } } } }"""


async def test_nested_pages_beyond_the_cost_are_refused(env: Env) -> None:
    body = await env.anonymous.gql(NESTED_PAGES % (100, 100), {"org": "org-x"})
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["message"].startswith("The operation may cost 5")


async def test_a_wide_dashboard_is_within_the_cost(env: Env) -> None:
    owner = await env.user()
    org = await env.organization(owner)
    data = await owner.gql_data(NESTED_PAGES % (100, 20), {"org": org})
    assert len(data["organization"]["members"]["nodes"]) == 1


def test_a_page_size_from_a_variable_counts_as_the_largest_page() -> None:
    def cost(first: str) -> list[Any]:
        document = parse(
            f"query($n: Int) {{ viewer {{ apiKeys(first: {first}) {{ nodes {{ id name }} }} }} }}"
        )
        return check_document(SCHEMA, document, QueryLimits(max_cost=1 + 1 + 1 + 3 * 50))

    assert cost("50") == []
    assert [e.extensions["code"] for e in cost("$n")] == ["QUERY_TOO_COMPLEX"]


def test_nodes_cost_as_many_ids_as_given() -> None:
    limits = QueryLimits(max_cost=1 + 2 * 2)  # the field, and two fields per id
    fits = parse('{ nodes(ids: ["a", "b"]) { id ... on User { email } } }')
    assert check_document(SCHEMA, fits, limits) == []
    over = parse('{ nodes(ids: ["a", "b", "c"]) { id ... on User { email } } }')
    assert [e.extensions["code"] for e in check_document(SCHEMA, over, limits)] == [
        "QUERY_TOO_COMPLEX"
    ]


@pytest.mark.settings(graphql_max_depth=3, graphql_max_aliases=1, graphql_max_cost=5)
async def test_limits_are_settings(env: Env) -> None:
    body = await env.anonymous.gql(
        "{ viewer { organizations { organization { members { nodes { id } } } } } }"
    )
    assert "QUERY_TOO_DEEP" in codes(body)
    body = await env.anonymous.gql("{ a: viewer { id email } b: viewer { id email } }")
    assert codes(body) == ["TOO_MANY_ALIASES", "QUERY_TOO_COMPLEX"]


async def test_refusals_are_not_logged_as_errors(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await env.anonymous.gql(fan_out(40))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_document_cache_is_bounded_by_the_characters_it_holds() -> None:
    documents = Documents(QueryLimits(), max_entries=100, max_characters=10_000)
    texts = [f"{{ viewer {{ id {'email ' * 200} }} }} # {i}" for i in range(20)]
    for text in texts:
        documents.prepare(SCHEMA, text)
    by_digest = {document_digest(text): text for text in texts}
    held = [by_digest[digest] for digest in documents._entries.keys()]  # kept by their sha256
    assert sum(map(len, held)) <= 10_000
    assert held == texts[-len(held) :]  # the most recent ones
    assert documents.prepare(SCHEMA, texts[-1]) is documents.prepare(SCHEMA, texts[-1])


def test_refused_texts_are_not_kept() -> None:
    documents = Documents(QueryLimits(max_depth=1))
    for text in ("{ viewer { id }", "{ viewer { organizations { role } } }"):
        with pytest.raises(GraphQLError):
            documents.prepare(SCHEMA, text)
    assert not len(documents._entries)


def test_the_ides_introspection_query_is_within_the_limits() -> None:
    from graphql import get_introspection_query

    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    assert check_document(SCHEMA, parse(query), QueryLimits()) == []


async def test_graphiql_can_introspect_the_schema(env: Env) -> None:
    from graphql import get_introspection_query

    data = await env.anonymous.gql_data(get_introspection_query(descriptions=True))
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_an_undeclared_argument_on_a_list_field_is_a_validation_error(env: Env) -> None:
    """The cost is measured before validation: an argument the field does not declare is
    validation's to report, not a 500 from the measure."""
    alice = await env.user()
    body = await alice.gql("{ viewer { organizations(first: 5, ids: [1, 2]) { id } } }")
    (first, *_) = body["errors"]
    assert first["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "first" in first["message"] or "ids" in first["message"]
