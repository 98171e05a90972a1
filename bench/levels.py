"""Request files for the dashboard one level at a time, to see what each level costs.

    .venv/bin/python bench/levels.py        # after bench/run.py wrote requests-q1.tsv
    .venv/bin/python bench/instructions.py q0,qa,qb,qc,qd,q1 --count 48

Writes `bench/results/requests-<level>.tsv` from `requests-q1.tsv` (the same organizations and
API keys): q0 is `{ __typename }` with authentication, then the dashboard with one level more
each time (bench/README.md, "Fourth pass").
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

ORGANIZATION = "organization(id: $id) { id name %s }"
MEMBERS = "members(first: 20) { nodes { id role %s } }"
LEVELS = {
    "q0": "query D { __typename }",
    "qa": "query D($id: ID!) { " + ORGANIZATION % "" + " }",
    "qb": "query D($id: ID!) { " + ORGANIZATION % (MEMBERS % "") + " }",
    "qc": "query D($id: ID!) { " + ORGANIZATION % (MEMBERS % "user { email displayName }") + " }",
    "qd": "query D($id: ID!) { "
    + ORGANIZATION % (MEMBERS % "user { email displayName } usages(first: 5) { nodes { id } }")
    + " }",
}


def main() -> None:
    lines = (RESULTS / "requests-q1.tsv").read_text().splitlines()
    for level, query in LEVELS.items():
        rows = []
        for line in lines:
            method, path, token, body = line.split("\t")
            variables = json.loads(body)["variables"] if "$id" in query else {}
            payload = {"query": query, "variables": variables, "operationName": "D"}
            rows.append("\t".join((method, path, token, json.dumps(payload))))
        (RESULTS / f"requests-{level}.tsv").write_text("\n".join(rows) + "\n")
        print(f"wrote {RESULTS / f'requests-{level}.tsv'}")


if __name__ == "__main__":
    main()
