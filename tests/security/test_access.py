"""The access objects resolvers take (resolvers/permissions.py): who gets which, and what a
refusal says, decided from the caller's one membership read."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.auth import Principal
from gateway.errors import Forbidden, NotFound, Unauthenticated
from resolvers import permissions
from resolvers.permissions import ManagerAccess, OrgAccess, OwnerAccess

ORG = "org-1"
OTHER_ORG = "org-2"


@dataclass
class Loader:
    """A loader over a dict that counts its loads (each would be a statement, uncached)."""

    found: dict[Any, Any]
    keys: list[Any] = field(default_factory=list)

    async def load(self, key: Any) -> Any:
        self.keys.append(key)
        value = self.found.get(key)
        if isinstance(value, Exception):
            raise value
        return value


@dataclass
class FakeContext:
    principal: Principal | None
    memberships: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        organization = SimpleNamespace(id=ORG, name="Acme")
        self.loaders = SimpleNamespace(
            live_member_by_organization_and_user=Loader(self.memberships),
            organization_row_by_id=Loader({ORG: organization}),
        )

    @property
    def user_id(self) -> str:
        if self.principal is None or self.principal.user_id is None:
            raise Unauthenticated("Authentication required")
        return self.principal.user_id


def caller(role: str | None, *, key_organization: str | None = None) -> FakeContext:
    principal = Principal(user_id="usr-1", via="api_key", api_key_organization_id=key_organization)
    member = SimpleNamespace(id="mbr-1", user_id="usr-1", organization_id=ORG, role=role)
    return FakeContext(principal, {(ORG, "usr-1"): member} if role is not None else {})


@pytest.mark.parametrize(
    ("role", "make", "kind"),
    [
        ("member", permissions.member_access, OrgAccess),
        ("admin", permissions.member_access, OrgAccess),
        ("admin", permissions.manager_access, ManagerAccess),
        ("owner", permissions.manager_access, ManagerAccess),
        ("owner", permissions.owner_access, OwnerAccess),
    ],
)
async def test_a_member_with_the_role_gets_the_organization_and_their_membership(
    role: str, make: Any, kind: type[OrgAccess]
) -> None:
    ctx = caller(role)
    access = await make(ctx, ORG)
    assert type(access) is kind
    assert (access.organization_id, access.organization.name) == (ORG, "Acme")
    assert (access.member.id, access.role) == ("mbr-1", role)
    assert access.is_manager == (role != "member")
    assert ctx.loaders.live_member_by_organization_and_user.keys == [(ORG, "usr-1")]


@pytest.mark.parametrize(
    ("role", "make", "message"),
    [
        ("member", permissions.manager_access, "Only organization owners and admins can do this"),
        ("member", permissions.owner_access, "Only organization owners can do this"),
        ("admin", permissions.owner_access, "Only organization owners can do this"),
    ],
)
async def test_too_low_a_role_is_forbidden(role: str, make: Any, message: str) -> None:
    with pytest.raises(Forbidden, match=f"^{message}$"):
        await make(caller(role), ORG)


@pytest.mark.parametrize(
    "make", [permissions.member_access, permissions.manager_access, permissions.owner_access]
)
async def test_a_stranger_is_told_the_organization_is_not_found(make: Any) -> None:
    with pytest.raises(NotFound, match=r"^Organization not found$"):
        await make(caller(None), ORG)


async def test_another_organizations_key_is_a_stranger_without_a_read() -> None:
    ctx = caller("owner", key_organization=OTHER_ORG)
    with pytest.raises(NotFound):
        await permissions.member_access(ctx, ORG)
    assert ctx.loaders.live_member_by_organization_and_user.keys == []


async def test_a_caller_without_a_user_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        await permissions.member_access(FakeContext(None), ORG)


def test_the_least_role_is_the_access_type() -> None:
    assert issubclass(OwnerAccess, ManagerAccess) and issubclass(ManagerAccess, OrgAccess)
    assert [k.minimum for k in (OrgAccess, ManagerAccess, OwnerAccess)] == [
        "member",
        "admin",
        "owner",
    ]


def test_personal_access_is_the_callers_own_account() -> None:
    assert permissions.personal_access(caller("member")).user_id == "usr-1"
    assert permissions.personal_access(caller("member"), "usr-1").user_id == "usr-1"


def test_personal_access_to_another_user_is_not_found() -> None:
    with pytest.raises(NotFound, match=r"^User not found$"):
        permissions.personal_access(caller("member"), "usr-2")


def test_an_organizations_key_has_no_personal_access() -> None:
    with pytest.raises(Forbidden, match="cannot use a personal account"):
        permissions.personal_access(caller("owner", key_organization=ORG))


@pytest.mark.parametrize("organizations", [[ORG, OTHER_ORG, ORG], [ORG], [OTHER_ORG]])
@pytest.mark.parametrize("role", ["member", "owner", None])
@pytest.mark.parametrize("key_organization", [None, OTHER_ORG])
async def test_the_batch_forms_decide_as_the_one_organization_forms(
    role: str | None, key_organization: str | None, organizations: list[str]
) -> None:
    """`member_accesses` and `visible_organizations` (a level's organizations at once) give
    each organization what `member_access` and `visible_organization` give it alone."""
    ctx = caller(role, key_organization=key_organization)
    accesses = await permissions.member_accesses(ctx, organizations)
    shown = await permissions.visible_organizations(ctx, organizations)
    for org_id, access, organization in zip(organizations, accesses, shown, strict=True):
        alone = caller(role, key_organization=key_organization)
        try:
            expected: object = await permissions.member_access(alone, org_id)
        except NotFound as error:
            expected = error
        if isinstance(expected, OrgAccess):
            assert type(access) is OrgAccess and access.organization_id == org_id
            assert (access.member, access.organization) == (expected.member, expected.organization)
        else:
            assert isinstance(access, NotFound) and str(access) == str(expected)
        assert organization == await permissions.visible_organization(alone, org_id)


async def test_an_organization_that_fails_to_load_fails_only_its_own_parent() -> None:
    """`visible_organizations` gives the failing organization its error, and the others their
    rows, as `member_accesses` does: one parent's failure is not the level's."""
    ctx = caller("member")
    ctx.memberships[(OTHER_ORG, "usr-1")] = SimpleNamespace(
        id="mbr-2", user_id="usr-1", organization_id=OTHER_ORG, role="member"
    )
    failure = RuntimeError("the organization's read failed")
    ctx.loaders.organization_row_by_id.found[OTHER_ORG] = failure
    shown = await permissions.visible_organizations(ctx, [ORG, OTHER_ORG])
    accesses = await permissions.member_accesses(ctx, [ORG, OTHER_ORG])
    assert getattr(shown[0], "name", None) == "Acme" and shown[1] is failure
    assert type(accesses[0]) is OrgAccess and accesses[1] is failure


async def test_the_batch_forms_refuse_a_caller_without_a_user() -> None:
    with pytest.raises(Unauthenticated):
        await permissions.member_accesses(FakeContext(None), [ORG])
    with pytest.raises(Unauthenticated):
        await permissions.visible_organizations(FakeContext(None), [ORG])
