"""Members' loaders: by id, by user, a caller's membership of a live organization, a member
with its user, and an organization's member pages and counts; read-only rows for reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from gateway.db.expressions import one_of
from gateway.db.models import Member, Organization, User
from gateway.db.session import fetch_rows
from resolvers.batching import BatchLoader
from resolvers.keyset import Joined, attribute, plain_columns, plain_row_type
from resolvers.loaders.shapes import CountByKey, PageByParent, PlainRowByKey, RowByKey

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

# A membership's key: (organization id, user id).
MembershipKey = tuple[str, str]


def _user_rows(loaders: Loaders) -> BatchLoader[str, User | None]:
    return loaders.user_row_by_id


member_by_id = RowByKey(Member, col(Member.id))
# Read-only rows, for members that are only shown (`node(id:)`; writers: `member_by_id`).
member_row_by_id = PlainRowByKey(Member, col(Member.id))
member_count_by_organization_id = CountByKey(Member, col(Member.organization_id))
# Read-only rows (`plain`): listed members are shown and checked, never modified here. A
# query that shows the members' users reads them in the same statement.
member_pages_by_organization_id = PageByParent(
    Member,
    col(Member.organization_id),
    newest_first=False,
    plain=True,
    related={"user": (Joined(User, attribute(col(Member.user_id)), "user"), _user_rows)},
)

# The caller's membership and the live organization in one statement (was three), both as
# read-only rows: the organization primes `organization_row_by_id`, which the membership check
# is usually followed by. (Writers load the ORM organization through `organization_by_id`.)
_MEMBER_COLUMNS = plain_columns(Member)
_ORGANIZATION_COLUMNS = tuple(
    column.element.label(f"org__{column.key}") for column in plain_columns(Organization)
)
_LIVE_MEMBER_BY_ORG_AND_USER = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .where(
        col(Member.organization_id) == bindparam("org"),
        col(Member.user_id) == bindparam("user"),
        col(Organization.deleted_at).is_(None),
    )
)
_LIVE_MEMBERS_BY_ORGS_AND_USERS = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .where(
        one_of(Member.organization_id, "orgs"),
        one_of(Member.user_id, "users"),
        col(Organization.deleted_at).is_(None),
    )
)


def live_member_by_organization_and_user(
    loaders: Loaders,
) -> BatchLoader[MembershipKey, Member | None]:
    """(organization id, user id) → Member (read-only row) of a live organization, or None;
    each role read is kept as the process's hint (`gateway/services.RolesSeen`)."""
    db = loaders.db
    member_row = plain_row_type(Member)._make
    organization_row = plain_row_type(Organization)._make
    split = len(_MEMBER_COLUMNS)

    async def batch(keys: list[MembershipKey]) -> list[Member | None]:
        org_ids = list({org for org, _ in keys})
        user_ids = list({user for _, user in keys})
        if len(keys) == 1:
            rows = await fetch_rows(
                db, _LIVE_MEMBER_BY_ORG_AND_USER, {"org": org_ids[0], "user": user_ids[0]}
            )
        else:
            rows = await fetch_rows(
                db, _LIVE_MEMBERS_BY_ORGS_AND_USERS, {"orgs": org_ids, "users": user_ids}
            )
        found: dict[MembershipKey, Member] = {}
        organizations = loaders.organization_row_by_id
        for row in rows:
            member = member_row(row[:split])
            found[(member.organization_id, member.user_id)] = member
            organizations.prime(member.organization_id, organization_row(row[split:]))
        answers = [found.get(key) for key in keys]
        services = loaders.context.services
        if services is not None:  # the hint for the next request's reads ahead
            for (org_id, user_id), member in zip(keys, answers, strict=True):
                services.roles_seen.saw(org_id, user_id, member.role if member else None)
        return answers

    return BatchLoader(batch)


# A user's memberships with their organizations (was two statements, one after the other).
_MEMBERS_WITH_ORGANIZATIONS = select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS).outerjoin_from(
    Member,
    Organization,
    (col(Organization.id) == col(Member.organization_id)) & col(Organization.deleted_at).is_(None),
)
# One user's (the viewer's: the common case) by `=`: planned once for every execution (a
# generic plan), `= ANY($1)` is guessed at ten users' memberships, which made PostgreSQL hash
# every organization rather than look up the user's few.
_MEMBERS_WITH_ORGANIZATIONS_BY_USER_ID = _MEMBERS_WITH_ORGANIZATIONS.where(
    col(Member.user_id) == bindparam("_key")
).order_by(col(Member.id))
_MEMBERS_WITH_ORGANIZATIONS_BY_USER_IDS = _MEMBERS_WITH_ORGANIZATIONS.where(
    one_of(Member.user_id, "_keys")
).order_by(col(Member.id))


def members_by_user_id(loaders: Loaders) -> BatchLoader[str, list[Member]]:
    """user id → the user's members (read-only rows), oldest first, in live organizations or
    not. Their live organizations come in the same statement and prime what their own loaders
    would read: `organization_row_by_id` (None for a deleted one) and the membership of
    (organization, user), `live_member_by_organization_and_user`."""
    db = loaders.db
    member_row = plain_row_type(Member)._make
    organization_row = plain_row_type(Organization)._make
    split = len(_MEMBER_COLUMNS)

    async def batch(keys: list[str]) -> list[list[Member]]:
        if len(keys) == 1:
            rows = await fetch_rows(db, _MEMBERS_WITH_ORGANIZATIONS_BY_USER_ID, {"_key": keys[0]})
        else:
            rows = await fetch_rows(db, _MEMBERS_WITH_ORGANIZATIONS_BY_USER_IDS, {"_keys": keys})
        grouped: dict[str, list[Member]] = {key: [] for key in keys}
        organizations = loaders.organization_row_by_id
        memberships = loaders.live_member_by_organization_and_user
        for row in rows:
            member = member_row(row[:split])
            grouped[member.user_id].append(member)
            live = row[split] is not None  # the organization's id: None when deleted
            organizations.prime(
                member.organization_id, organization_row(row[split:]) if live else None
            )
            memberships.prime((member.organization_id, member.user_id), member if live else None)
        return [grouped[key] for key in keys]

    return BatchLoader(batch)


# A member and its user in one statement (was two).
_USER_COLUMNS = tuple(column.element.label(f"user__{column.key}") for column in plain_columns(User))
_MEMBER_WITH_USER_BY_ID = (
    select(*_MEMBER_COLUMNS, *_USER_COLUMNS)
    .outerjoin_from(Member, User, col(User.id) == col(Member.user_id))
    .where(col(Member.id) == bindparam("_key"))
)
_MEMBERS_WITH_USERS_BY_IDS = (
    select(*_MEMBER_COLUMNS, *_USER_COLUMNS)
    .outerjoin_from(Member, User, col(User.id) == col(Member.user_id))
    .where(one_of(Member.id, "_keys"))
)
# A member with its user (None for a deleted user's), as read-only rows.
MemberWithUser = tuple[Member, User | None]


def member_with_user_by_id(loaders: Loaders) -> BatchLoader[str, MemberWithUser | None]:
    """member id → (Member, its User or None) as read-only rows, or None. The users it reads
    prime `user_row_by_id`, where `Member.user` finds them (a read ahead:
    resolvers/members.py `member_user_ahead`)."""
    db = loaders.db
    member_row = plain_row_type(Member)._make
    user_row = plain_row_type(User)._make
    split = len(_MEMBER_COLUMNS)

    async def batch(keys: list[str]) -> list[MemberWithUser | None]:
        if len(keys) == 1:
            rows = await fetch_rows(db, _MEMBER_WITH_USER_BY_ID, {"_key": keys[0]})
        else:
            rows = await fetch_rows(db, _MEMBERS_WITH_USERS_BY_IDS, {"_keys": keys})
        found: dict[str, MemberWithUser] = {}
        users = loaders.user_row_by_id
        for row in rows:
            member = member_row(row[:split])
            user = user_row(row[split:]) if row[split] is not None else None
            found[member.id] = (member, user)
            users.prime(member.user_id, user)
        return [found.get(key) for key in keys]

    return BatchLoader(batch)


# The caller's membership (with the live organization) and another member with its user, in
# one statement: for routes that check the one and then show the other.
_TARGET = aliased(Member, name="target")
_TARGET_USER = aliased(User, name="target_user")
_TARGET_COLUMNS = tuple(
    getattr(_TARGET, column.key).label(f"target__{column.key}") for column in _MEMBER_COLUMNS
)
_TARGET_USER_COLUMNS = tuple(
    getattr(_TARGET_USER, column.key).label(f"target_user__{column.key}")
    for column in plain_columns(User)
)
_MEMBERSHIP_AND_MEMBER = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS, *_TARGET_COLUMNS, *_TARGET_USER_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .outerjoin(_TARGET, col(_TARGET.id) == bindparam("member"))
    .outerjoin(_TARGET_USER, col(_TARGET_USER.id) == col(_TARGET.user_id))
    .where(
        col(Member.organization_id) == bindparam("org"),
        col(Member.user_id) == bindparam("user"),
        col(Organization.deleted_at).is_(None),
    )
)


async def prime_membership_and_member(loaders: Loaders, key: MembershipKey, member_id: str) -> None:
    """`live_member_by_organization_and_user[key]` (and its organization) and, when that
    membership exists, `member_with_user_by_id[member_id]`, from one statement."""
    org_id, user_id = key
    rows = await fetch_rows(
        loaders.db, _MEMBERSHIP_AND_MEMBER, {"org": org_id, "user": user_id, "member": member_id}
    )
    if not rows:
        loaders.live_member_by_organization_and_user.prime(key, None)
        return
    row = rows[0]
    member_row, user_row = plain_row_type(Member)._make, plain_row_type(User)._make
    organization = len(_MEMBER_COLUMNS)
    target = organization + len(_ORGANIZATION_COLUMNS)
    target_user = target + len(_TARGET_COLUMNS)
    loaders.live_member_by_organization_and_user.prime(key, member_row(row[:organization]))
    loaders.organization_row_by_id.prime(
        org_id, plain_row_type(Organization)._make(row[organization:target])
    )
    found = None
    if row[target] is not None:
        user = user_row(row[target_user:]) if row[target_user] is not None else None
        found = (member_row(row[target:target_user]), user)
    loaders.member_with_user_by_id.prime(member_id, found)
