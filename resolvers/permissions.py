"""Who may do what: the one place that decides authorization for GraphQL and REST alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from gateway.db.models import Member, Organization, Role
from gateway.errors import Forbidden, NotFound, Unauthenticated
from resolvers.batching import load_each
from resolvers.context import Context

ROLE_RANK = {Role.MEMBER.value: 0, Role.ADMIN.value: 1, Role.OWNER.value: 2}
MANAGERS = (Role.OWNER.value, Role.ADMIN.value)


# The rule of `Member.usages` for a page of an organization's members (`PageArgs.deciding`).
MEMBER_USAGE = "member_usage"


def may_see_every_member_usage(viewer: Member | None) -> bool | None:
    """Whether the viewer (their membership in the organization) may see every member's usage
    there (owners and admins), no one's (not a member), or only their own: None, it depends
    on the member (`may_see_member_usage`)."""
    return every_member_usage_of_role(None if viewer is None else viewer.role)


def every_member_usage_of_role(role: str | None) -> bool | None:
    """`may_see_every_member_usage` of a membership with `role` (None: no membership)."""
    if role is None:
        return False
    if role in MANAGERS:
        return True
    return None


def may_see_member_usage(viewer: Member | None, member: Member) -> bool:
    """A member's usage: theirs to see, and the organization's owners' and admins'."""
    every = may_see_every_member_usage(viewer)
    if every is not None:
        return every
    return viewer is not None and viewer.id == member.id


def require_service(ctx: Context) -> None:
    if ctx.principal is None or not ctx.principal.is_service:
        raise Unauthenticated("This operation needs the service token")


def is_self(ctx: Context, user_id: str) -> bool:
    """The caller is this user (GraphQL's own-only fields are null on anyone else)."""
    return ctx.principal is not None and ctx.principal.user_id == user_id


def key_scope(ctx: Context) -> str | None:
    """The organization the caller's API key is limited to, if it is an organization's key."""
    return ctx.principal.api_key_organization_id if ctx.principal is not None else None


PERSONAL_ACCOUNT_REFUSED = (
    "This API key belongs to an organization and cannot use a personal account"
)


def require_personal_account(ctx: Context) -> str:
    """The caller's user id, for anything that reads or changes the caller's personal account:
    the profile, terms, deletion, the active account, personal billing and usage, and acting
    as the person (creating organizations, joining others). An organization's API key only
    reaches its own organization, never its creator's personal account: 403 / FORBIDDEN."""
    user_id = ctx.user_id
    if key_scope(ctx) is not None:
        raise Forbidden(PERSONAL_ACCOUNT_REFUSED)
    return user_id


def may_use_personal_account(ctx: Context, user_id: str) -> bool:
    """`require_personal_account` as a test, for what shows an object or nothing
    (`node(id:)`): the caller's own personal account, not through an organization's key."""
    return is_self(ctx, user_id) and key_scope(ctx) is None


def owns_personal_account(ctx: Context, user_id: str) -> bool:
    """GraphQL's own-only personal-account fields of a User (balance, billing account,
    payments, usage, subscription): False (null) on anyone else; for the caller, True, unless
    the caller came with an organization's API key, which is refused here as on REST."""
    if not is_self(ctx, user_id):
        return False
    require_self(ctx, user_id)
    return True


def require_self(ctx: Context, user_id: str) -> str:
    """`/users/{id}/…`: only the caller's own id exists for the caller, and an organization's
    API key does not reach its creator's personal account (balance, payments, usage)."""
    if user_id != ctx.user_id:
        raise NotFound("User not found")
    return require_personal_account(ctx)


@dataclass(frozen=True)
class PersonalAccess:
    """The caller's access to their own personal account (balance, payments, usage, plan),
    already checked: made only by `personal_access`."""

    ctx: Context
    user_id: str


def personal_access(ctx: Context, user_id: str | None = None) -> PersonalAccess:
    """The caller's personal account, named by `/users/{id}/…` (another id: 404) or, with no
    id, the caller's own; an organization's API key never reaches it (403, `require_self`)."""
    return PersonalAccess(ctx, require_self(ctx, user_id if user_id is not None else ctx.user_id))


def _membership_key(ctx: Context, organization_id: str) -> tuple[str, str] | None:
    """(organization id, user id) to look the caller's membership up by, or None when the
    caller cannot be a member: no user, or an organization API key of another organization."""
    if ctx.principal is None or ctx.principal.user_id is None:
        return None
    scoped = key_scope(ctx)
    if scoped is not None and scoped != organization_id:
        return None  # an organization API key only reaches its own organization
    return organization_id, ctx.principal.user_id


async def organization_membership(ctx: Context, organization_id: str) -> Member | None:
    """The caller's membership in a live organization, or None."""
    key = _membership_key(ctx, organization_id)
    if key is None:
        return None
    # Membership in a live organization: one statement (Member joined to Organization).
    member: Member | None = await ctx.loaders.live_member_by_organization_and_user.load(key)
    return member


async def may_read_account(ctx: Context, account_id: str, *, managers_only: bool) -> bool:
    """Whether the caller may see what belongs to a billing account (a payment, a
    subscription): a personal account's only with its owner's own token (as `User.payments`,
    not through an organization's key), an organization's by its members, or by its owners
    and admins alone with `managers_only`."""
    account = await ctx.loaders.account_by_id.load(account_id)
    if account is None:
        return False
    if account.user_id is not None:
        return may_use_personal_account(ctx, account.user_id)
    member = await organization_membership(ctx, account.organization_id or "")
    return member is not None and (not managers_only or member.role in MANAGERS)


async def visible_organization(ctx: Context, organization_id: str) -> Organization | None:
    """The organization (a read-only row) if the caller is a member, else None: what every
    field that leads to an organization shows (`organization(id:)`, `node(id:)`,
    `Member.organization`, `Usage.organization`, …); never confirm another tenant's exists.
    A caller without a user (anonymous, a refused token, the service) is UNAUTHENTICATED."""
    ctx.user_id  # noqa: B018  (raises Unauthenticated, as `node(id:)` does)
    if await organization_membership(ctx, organization_id) is None:
        return None
    # Primed by the membership's statement, which reads the live organization with it.
    org: Organization | None = await ctx.loaders.organization_row_by_id.load(organization_id)
    return org


async def prefetch_membership_and_member(
    ctx: Context, organization_id: str, member_id: str
) -> None:
    """Read the caller's membership in the organization and a member (with its user) in one
    statement, for a route that checks the one and then shows the other. Nothing is decided
    here: `member_access` still decides, from what this read."""
    key = _membership_key(ctx, organization_id)
    if key is not None:
        await ctx.loaders.prime_membership_and_member(key, member_id)


async def organization_memberships(
    ctx: Context, organization_ids: Sequence[str]
) -> dict[str, Member | None]:
    """`organization_membership` of several organizations at once (one statement)."""
    found: dict[str, Member | None] = dict.fromkeys(organization_ids)
    keys = [key for org_id in found if (key := _membership_key(ctx, org_id)) is not None]
    loader = ctx.loaders.live_member_by_organization_and_user
    members = await load_each(loader, keys)
    for (org_id, _), member in zip(keys, members, strict=True):
        if isinstance(member, Exception):
            raise member
        found[org_id] = member
    return found


@dataclass(frozen=True)
class OrgAccess:
    """The caller's access to one live organization, already checked: the organization and the
    caller's membership, both read-only rows read by one statement. A resolver that takes one
    needs no check of its own; only `member_access` / `manager_access` / `owner_access` make
    them (Polar's `authz: AuthorizeOrg…` parameter), and the class says the least role it
    proves, which mypy then holds every caller to."""

    minimum: ClassVar[str] = Role.MEMBER.value
    refusal: ClassVar[str] = ""

    ctx: Context
    organization: Organization
    member: Member

    @property
    def organization_id(self) -> str:
        return self.organization.id

    @property
    def role(self) -> str:
        return self.member.role

    @property
    def is_manager(self) -> bool:
        return self.member.role in MANAGERS

    async def organization_to_change(self) -> Organization:
        """The organization as an ORM object, for a writer (`organization` is read-only)."""
        org = await self.ctx.loaders.organization_by_id.load(self.organization_id)
        if org is None:  # deleted since the access was granted, earlier in this request
            raise NotFound("Organization not found")
        return org


@dataclass(frozen=True)
class ManagerAccess(OrgAccess):
    """An owner's or an admin's access."""

    minimum: ClassVar[str] = Role.ADMIN.value
    refusal: ClassVar[str] = "Only organization owners and admins can do this"


@dataclass(frozen=True)
class OwnerAccess(ManagerAccess):
    """An owner's access."""

    minimum: ClassVar[str] = Role.OWNER.value
    refusal: ClassVar[str] = "Only organization owners can do this"


A = TypeVar("A", bound=OrgAccess)


async def _access(ctx: Context, organization_id: str, kind: type[A]) -> A:
    """`kind` of access to the organization: 404 for strangers (never confirm another
    tenant's organization exists), 403 for a member whose role is below `kind.minimum`."""
    ctx.user_id  # noqa: B018  (raises Unauthenticated for the service and anonymous callers)
    member = await organization_membership(ctx, organization_id)
    if member is None:
        raise NotFound("Organization not found")
    if ROLE_RANK[member.role] < ROLE_RANK[kind.minimum]:
        raise Forbidden(kind.refusal)
    # Primed by the membership's statement, which reads the live organization with it.
    org = await ctx.loaders.organization_row_by_id.load(organization_id)
    if org is None:  # deleted between the two reads
        raise NotFound("Organization not found")
    return kind(ctx, org, member)


async def _memberships_with_organizations(
    ctx: Context, organization_ids: Sequence[str]
) -> dict[str, tuple[Member, Organization | Exception | None]]:
    """The caller's membership and the organization (a read-only row, primed by the
    memberships' statement) of each of these organizations the caller is a member of: one
    load of the memberships, one of the organizations."""
    ctx.user_id  # noqa: B018  (raises Unauthenticated, as `visible_organization` does)
    memberships = await organization_memberships(ctx, organization_ids)
    shown = [(org_id, member) for org_id, member in memberships.items() if member is not None]
    rows = await load_each(ctx.loaders.organization_row_by_id, [org_id for org_id, _ in shown])
    return {org_id: (member, row) for (org_id, member), row in zip(shown, rows, strict=True)}


async def visible_organizations(
    ctx: Context, organization_ids: Sequence[str]
) -> list[Organization | Exception | None]:
    """`visible_organization` of several organizations at once, in order: each one's row,
    None, or the error its read failed with (that parent's alone, as in `member_accesses`)."""
    if len(organization_ids) == 1:  # a level of one: no dictionaries to make
        return [await visible_organization(ctx, organization_ids[0])]
    found = await _memberships_with_organizations(ctx, organization_ids)
    return [found[org_id][1] if org_id in found else None for org_id in organization_ids]


async def member_accesses(
    ctx: Context, organization_ids: Sequence[str]
) -> list[OrgAccess | Exception]:
    """`member_access` of several organizations at once, in order: each one's access, or the
    error `member_access` raises for it (404 for strangers)."""
    if len(organization_ids) == 1:  # a level of one: no dictionaries to make
        try:
            return [await _access(ctx, organization_ids[0], OrgAccess)]
        except (NotFound, Forbidden) as error:
            return [error]
    found = await _memberships_with_organizations(ctx, organization_ids)
    accesses: list[OrgAccess | Exception] = []
    for org_id in organization_ids:
        member, org = found.get(org_id, (None, None))
        if isinstance(org, Exception):
            accesses.append(org)
        elif member is None or org is None:  # a stranger, or deleted between the two reads
            accesses.append(NotFound("Organization not found"))
        else:  # any role is at least a member's (`_access` with `OrgAccess`)
            accesses.append(OrgAccess(ctx, org, member))
    return accesses


async def member_access(
    ctx: Context, organization_id: str, *, showing_member: str | None = None
) -> OrgAccess:
    """A member's access (any role) to the organization. `showing_member`: a member the
    caller is to be shown next, read (with its user) by the membership's statement; nothing
    of it is shown unless this access, and then the rule of what it shows, allow it."""
    if showing_member is not None:
        await prefetch_membership_and_member(ctx, organization_id, showing_member)
    return await _access(ctx, organization_id, OrgAccess)


async def manager_access(ctx: Context, organization_id: str) -> ManagerAccess:
    """An owner's or admin's access to the organization; 403 for plain members."""
    return await _access(ctx, organization_id, ManagerAccess)


async def owner_access(ctx: Context, organization_id: str) -> OwnerAccess:
    """An owner's access to the organization; 403 for admins and members."""
    return await _access(ctx, organization_id, OwnerAccess)


def assignable_roles(actor_role: str) -> list[str]:
    """Roles an actor may give: owners any, admins admin or member, members none."""
    if actor_role == Role.OWNER.value:
        return [Role.OWNER.value, Role.ADMIN.value, Role.MEMBER.value]
    if actor_role == Role.ADMIN.value:
        return [Role.ADMIN.value, Role.MEMBER.value]
    return []


def may_manage_member(actor: Member, target: Member) -> bool:
    """Owners manage everyone, admins manage non-owners, anyone may act on themself."""
    if actor.id == target.id:
        return True
    if actor.role == Role.OWNER.value:
        return True
    return actor.role == Role.ADMIN.value and target.role != Role.OWNER.value


async def can_see_user(ctx: Context, user_id: str) -> bool:
    """A user is visible to themself and to anyone sharing a live organization with them (with
    an organization's key: sharing that organization). A caller without a user (anonymous, a
    refused token, the service) is UNAUTHENTICATED, not told "nobody"."""
    if user_id == ctx.user_id:
        return True
    theirs = [m.organization_id for m in await ctx.loaders.members_by_user_id.load(user_id)]
    return bool(await visible_organization_ids(ctx, user_id, theirs))


async def visible_organization_ids(
    ctx: Context, user_id: str, organization_ids: Sequence[str]
) -> set[str]:
    """Which of a user's organizations the caller may see listed: only those the caller is a
    member of (a colleague's other organizations stay hidden), and with an organization's
    key only that one. The caller's own list, with a user's token, is all of it."""
    if is_self(ctx, user_id) and key_scope(ctx) is None:
        return set(organization_ids)
    found = await organization_memberships(ctx, organization_ids)
    return {org_id for org_id, member in found.items() if member is not None}
