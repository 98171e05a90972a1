"""The CI's constraint files stay on pyproject.toml's dependency ranges: the oldest pins each
library whose internals the gateway reads to its lower bound, the newest to the highest minor
its upper bound allows, so the two extra runs of `.ci/run` prove exactly the range declared."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import Specifier
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
# Read beyond their public API, each by one adapter: schema/engine/internals.py (Strawberry,
# graphql-core), gateway/db/sqlalchemy_internals.py (SQLAlchemy), resolvers/batching.py
# (aiodataloader).
READ_INTERNALS = {"strawberry-graphql", "graphql-core", "sqlalchemy", "aiodataloader"}


def dependencies() -> dict[NormalizedName, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = (Requirement(line) for line in project["dependencies"])
    return {canonicalize_name(r.name): r for r in found}


def constraints(bound: str) -> dict[NormalizedName, Specifier]:
    pinned: dict[NormalizedName, Specifier] = {}
    for line in (ROOT / ".ci" / f"constraints-{bound}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specifiers = list(requirement.specifier)
            assert len(specifiers) == 1 and specifiers[0].operator == "==", (
                f".ci/constraints-{bound}.txt: {line!r} is not one `==` pin"
            )
            pinned[canonicalize_name(requirement.name)] = specifiers[0]
    return pinned


def bounds(requirement: Requirement) -> tuple[Version, Version]:
    lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    upper = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
    assert len(lower) == 1 and len(upper) == 1, (
        f"pyproject.toml: {requirement} needs one `>=` and one `<` bound for CI to prove"
    )
    return lower[0], upper[0]


@pytest.mark.parametrize("bound", ["oldest", "newest"])
def test_the_constraint_files_pin_the_libraries_whose_internals_are_read(bound: str) -> None:
    pinned = set(constraints(bound))
    assert pinned >= READ_INTERNALS, (
        f".ci/constraints-{bound}.txt does not pin {sorted(READ_INTERNALS - pinned)}"
    )
    undeclared = pinned - set(dependencies())
    assert not undeclared, (
        f".ci/constraints-{bound}.txt pins {sorted(undeclared)}, which pyproject.toml's "
        "[project] dependencies do not name"
    )


def test_the_oldest_constraints_are_the_lower_bounds() -> None:
    declared = dependencies()
    for name, pin in constraints("oldest").items():
        lower, _ = bounds(declared[name])
        assert not pin.version.endswith(".*") and Version(pin.version) == lower, (
            f".ci/constraints-oldest.txt pins {name}=={pin.version}, but pyproject.toml's lower "
            f"bound is {lower}: CI would not prove the oldest version allowed"
        )


def test_the_newest_constraints_are_the_highest_allowed_minors() -> None:
    declared = dependencies()
    for name, pin in constraints("newest").items():
        assert pin.version.endswith(".*"), (
            f".ci/constraints-newest.txt: {name} should pin a minor (`=={pin.version}.*`), so "
            "pip takes its latest patch"
        )
        major, minor = Version(pin.version.removesuffix(".*")).release[:2]
        lower, upper = bounds(declared[name])
        assert lower.release[:2] <= (major, minor) and upper == Version(f"{major}.{minor + 1}"), (
            f".ci/constraints-newest.txt pins {name} {major}.{minor}, but pyproject.toml "
            f"allows {declared[name].specifier}: the newest allowed minor must be the one "
            "just below the upper bound, which excludes the next, unproven minor"
        )
