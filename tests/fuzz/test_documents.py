"""Broken and hostile GraphQL documents: none may answer 5xx or an unexpected error.

Schemathesis (test_fuzz.py) sends documents that the schema makes valid. Attackers and buggy
clients send the rest: documents cut short, braces doubled, fragments spread into themselves,
integers past 2^63, NUL bytes, unknown directives, deep nesting. This fuzzer starts from the
benchmark's corpus (bench/corpus/, real frontend operations) and mutates it with a seeded RNG:
`GATEWAY_FUZZ_EXAMPLES` x 10 documents per database, repeatable, each failure reported with
the document that caused it.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from tests.conftest import Env

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "10")) * 10
CORPUS = Path(__file__).resolve().parents[2] / "bench" / "corpus"
SEEDS = [
    p.read_text()
    for p in sorted(CORPUS.glob("*.graphql"))
    if not p.name.endswith(".postgraphile.graphql")
]
# Pieces an attacker (or a broken client) puts where they do not belong.
PIECES = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "...",
    "...F",
    "fragment F on Organization { ...F }",
    "fragment F on User { id ...F }",
    "... on Nope { id }",
    "@include(if: $nope)",
    "@skip(if: true)",
    "@deprecated",
    "@unknown(x: 1)",
    "__typename",
    "__schema { types { name } }",
    "__type(name: 1) { name }",
    "$org",
    "$undefined",
    "first: 9223372036854775808",
    "first: -1",
    "first: 1e400",
    "first: null",
    'id: "\\u0000"',
    'id: "' + "x" * 5000 + '"',
    '"""unterminated',
    '"\\ud800"',
    "\x00",
    "\u202e",
    "mutation { x }",
    "subscription { x }",
    "query Q",
    "query Q($a: Int = 1, $a: Int = 2)",
    "alias: organization(id: $org) { id }",
    "node(id: $org) { ... on Member { id } }",
    "nodes(ids: [])",
    "# comment\n",
    ",,,,",
    "\ufeff",
]


def _mutate(rng: random.Random, document: str) -> str:
    """One to three edits: cut, double, swap or insert a hostile piece, or nest deeply."""
    for _ in range(rng.randint(1, 3)):
        n = len(document)
        a, b = sorted(rng.randrange(n + 1) for _ in range(2))
        choice = rng.randrange(6)
        if choice == 0:
            document = document[:a] + document[b:]
        elif choice == 1:
            document = document[:b] + document[a:b] + document[b:]
        elif choice == 2:
            document = document[:a] + rng.choice(PIECES) + document[a:]
        elif choice == 3:
            document = document[:a] + " ".join(rng.choices(PIECES, k=5)) + document[b:]
        elif choice == 4:
            depth = rng.choice((10, 100, 1000))
            document = document[:a] + "{ a " * depth + "}" * depth + document[a:]
        else:
            document = document[:a]
    return document


def _problem(status: int, body: Any) -> str | None:
    if status >= 500:
        return f"HTTP {status}"
    if status >= 400 and not isinstance(body, dict):
        return None  # the HTTP layer's refusal (e.g. no query at all): a clear client error
    if not isinstance(body, dict) or not ("data" in body or "errors" in body):
        return f"not a GraphQL response: {str(body)[:300]}"
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        if code in (None, "INTERNAL_SERVER_ERROR"):
            return f"unexpected error: {error}"
    return None


async def test_mutated_documents_never_fail_the_server(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    rng = random.Random(f"documents:{env.backend}")
    variables = {"org": org_id, "user": owner.user_id, "member": org_id}
    failures = []
    for _ in range(EXAMPLES):
        document = _mutate(rng, rng.choice(SEEDS))
        response = await env.http.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {owner.token}"},
        )
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        problem = _problem(response.status_code, body)
        if problem is not None:
            failures.append(f"{problem}\n--- document:\n{document[:2000]}")
    assert not failures, f"{len(failures)} of {EXAMPLES}:\n\n" + "\n\n".join(failures[:5])
