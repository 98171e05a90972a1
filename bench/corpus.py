"""The query corpus: GraphQL operations as frontends write them, each with its PostGraphile twin.

    .venv/bin/python bench/corpus.py --gateway http://127.0.0.1:8000 \\
        --postgraphile http://127.0.0.1:5678        # compare every operation's answers

Each operation is a pair of files in bench/corpus/: `<name>.graphql` for the gateway and
`<name>.postgraphile.graphql` for PostGraphile on the same `bench` schema. The gateway file
opens with comment lines: a description, `# as: owner|self` (who sends it: the owner of the
organization `$org`, or the user `$user` themself) and `# levels: N` (how deep its object
fields go, the root field counting 1: the most round trips to the database the operation may
cost, siblings included; tests/graphql/test_corpus.py holds the gateway to it). An optional
`# orgs: large` draws `$org` from the seed's large organizations (120 members each) instead.

Variables, drawn per request from bench/results/tokens.json by a seeded RNG: `$org` (an
organization the key's user owns), `$member` (a member of it), `$user` (the key's user).

Two answers are the same when their leaves (every scalar, in document order, nulls left out)
are the same after normalisation: timestamps as UTC instants, integers whatever their JSON
type (PostGraphile writes BigInt as strings), other strings compared without case (the
gateway's enums are upper case, the columns lower). The twins are written to select the same
values in the same order.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus"
RESULTS = Path(__file__).resolve().parent / "results"
_HEADER = re.compile(r"^#\s*(as|levels|orgs):\s*(\S+)\s*$")
_VARIABLE = re.compile(r"\$(\w+)\s*:")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class Operation:
    name: str
    description: str
    caller: str  # "owner" or "self"
    levels: int
    gateway: str
    postgraphile: str
    orgs: str = "all"  # or "large": the seed's large organizations

    @property
    def operation_name(self) -> str:
        return operation_name(self.gateway)


def operation_name(document: str) -> str:
    found = re.search(r"\bquery\s+(\w+)", document)
    assert found, "every corpus operation is named"
    return found.group(1)


def load(names: list[str] | None = None) -> list[Operation]:
    """The corpus's operations (all, or those named), in name order."""
    operations = []
    for path in sorted(CORPUS.glob("*.graphql")):
        if path.name.endswith(".postgraphile.graphql"):
            continue
        name = path.stem
        if names and name not in names:
            continue
        text = path.read_text()
        header: dict[str, str] = {}
        for line in text.splitlines():
            if match := _HEADER.match(line):
                header[match.group(1)] = match.group(2)
        twin = path.with_name(f"{name}.postgraphile.graphql")
        operations.append(
            Operation(
                name=name,
                description=text.splitlines()[0].lstrip("# ").strip(),
                caller=header["as"],
                levels=int(header["levels"]),
                gateway=text,
                postgraphile=twin.read_text(),
                orgs=header.get("orgs", "all"),
            )
        )
    unknown = set(names or ()) - {o.name for o in operations}
    if unknown:
        raise SystemExit(f"no corpus operation named {', '.join(sorted(unknown))}")
    return operations


def body(document: str, values: dict[str, str]) -> str:
    """A JSON request body with just the variables the document declares."""
    declared = dict.fromkeys(_VARIABLE.findall(document))
    variables = {k: values[k] for k in declared}
    return json.dumps(
        {"query": document, "variables": variables, "operationName": operation_name(document)}
    )


def draws(
    operation: Operation, tokens: dict[str, Any], count: int, seed: int
) -> list[tuple[str, dict[str, str]]]:
    """`count` (API key, variables) pairs for one operation, from a seeded RNG."""
    rng = random.Random(f"{seed}:corpus:{operation.name}")
    keys = tokens["keys"]
    owners = [(k, m["orgId"]) for k in keys for m in k["memberships"] if m["role"] == "owner"]
    out = []
    for _ in range(count):
        if operation.orgs == "large":
            org = rng.choice(sorted(tokens["largeOrganizations"]))
            large = tokens["largeOrganizations"][org]
            member = rng.choice(large["members"])["memberId"]
            values = {"org": org, "member": member, "user": large["userId"]}
            out.append((large["token"], values))
            continue
        if operation.caller == "owner":
            key, org = rng.choice(owners)
            member = rng.choice(tokens["organizations"][org])["memberId"]
            values = {"org": org, "member": member, "user": key["userId"]}
        else:
            key = rng.choice(keys)
            values = {"user": key["userId"]}
        out.append((key["token"], values))
    return out


def _leaf(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        if _TIMESTAMP.match(value):
            instant = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
            return instant.isoformat()
        return value.lower()
    return value


def leaves(value: Any) -> list[Any]:
    """Every scalar of an answer in document order, normalised; nulls and __typename left out."""
    out: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for key, item in v.items():
                if key != "__typename":
                    walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif v is not None:
            out.append(_leaf(v))

    walk(value)
    return out


def same(gateway: Any, postgraphile: Any) -> tuple[bool, str]:
    """Whether two answers hold the same data, and where they first differ."""
    for name, answer in (("gateway", gateway), ("postgraphile", postgraphile)):
        if not isinstance(answer, dict) or answer.get("errors") or answer.get("data") is None:
            return False, f"{name} answered {str(answer)[:300]}"
    ours, theirs = leaves(gateway["data"]), leaves(postgraphile["data"])
    for index, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            return False, f"leaf {index}: gateway {a!r} != postgraphile {b!r}"
    if len(ours) != len(theirs):
        return False, f"gateway has {len(ours)} leaves, postgraphile {len(theirs)}"
    if not ours:
        return False, "both answers are empty: the draw found no data to compare"
    return True, f"{len(ours)} leaves"


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="base URL of a gateway on `bench`")
    parser.add_argument("--postgraphile", required=True, help="base URL of PostGraphile")
    parser.add_argument("--operations", default="", help="comma-separated names (default all)")
    parser.add_argument("--count", type=int, default=10, help="draws per operation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    tokens = json.loads((RESULTS / "tokens.json").read_text())
    failures = 0
    with httpx.Client(timeout=30) as client:
        for operation in load([n for n in args.operations.split(",") if n]):
            results = []
            for token, values in draws(operation, tokens, args.count, args.seed):
                headers = {"Authorization": f"Bearer {token}"}
                ours = client.post(
                    f"{args.gateway}/graphql",
                    content=body(operation.gateway, values),
                    headers={**headers, "Content-Type": "application/json"},
                ).json()
                theirs = client.post(
                    f"{args.postgraphile}/graphql",
                    content=body(operation.postgraphile, values),
                    headers={"Content-Type": "application/json"},
                ).json()
                results.append(same(ours, theirs))
            good = sum(ok for ok, _ in results)
            first_bad = next((why for ok, why in results if not ok), "")
            print(f"{operation.name:<20} {good}/{len(results)} same  {first_bad}")
            failures += len(results) - good
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
