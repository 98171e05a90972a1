"""The payers of a batch of usage events: each event's live user, organization and membership,
and the billing account that pays for it, found in one statement per kind of row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Result,
    Select,
    String,
    and_,
    any_,
    column,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col

from gateway.db.models import Account, AccountKind, Member, Organization, User
from gateway.db.session import dialect_name
from gateway.errors import Unprocessable

T = TypeVar("T")
_Ts = TypeVarTuple("_Ts")
# A usage row's column values by attribute name (`ingestion.UsageValues`).
UsageValues = dict[str, Any]


def chunks(session: AsyncSession, values: Sequence[T]) -> list[Sequence[T]]:
    """`values` in lists that fit one statement's parameters: all of them on PostgreSQL (one
    array parameter, `one_of`), 500 elsewhere."""
    size = max(len(values), 1) if dialect_name(session) == "postgresql" else 500
    return [values[i : i + size] for i in range(0, len(values), size)]


def one_of(
    session: AsyncSession, column: Mapped[str] | Mapped[str | None], values: Sequence[str]
) -> ColumnElement[bool]:
    """`column IN (…)`; on PostgreSQL `= ANY($1)` with one array parameter, so the statement's
    text (and its prepared plan) is the same for any number of values."""
    if dialect_name(session) == "postgresql":
        return column == any_(literal(list(values), ARRAY(String())))
    return col(column).in_(values)


async def core(session: AsyncSession, statement: Select[*_Ts]) -> Result[*_Ts]:
    """A plain (Core) statement on the session's connection: rows of columns, without the
    ORM's result machinery (nothing is pending that a query would have to flush first)."""
    return await (await session.connection()).execute(statement)


async def memberships_of(
    session: AsyncSession, fresh: list[tuple[int, UsageValues]]
) -> list[tuple[str, str]]:
    """The (organization, user) pairs of the batch's organization events that are members."""
    wanted = sorted(
        {(r["organization_id"], r["user_id"]) for _, r in fresh if r["organization_id"]}
    )
    if not wanted:
        return []
    orgs, users = (list(side) for side in zip(*wanted, strict=True))
    found: list[tuple[str, str]] = []
    org_of, user_of = col(Member.organization_id), col(Member.user_id)
    if dialect_name(session) == "postgresql":
        # Exactly the batch's pairs (index lookups), not every member of its organizations.
        pairs = (
            func.unnest(literal(orgs, ARRAY(String())), literal(users, ARRAY(String())))
            .table_valued(column("organization_id", String()), column("user_id", String()))
            .render_derived(name="pairs")
        )
        stmt = select(org_of, user_of).join(
            pairs, and_(org_of == pairs.c.organization_id, user_of == pairs.c.user_id)
        )
        found += [(org, user) for org, user in await core(session, stmt)]
        return found
    for chunk in chunks(session, sorted(set(orgs))):
        stmt = select(org_of, user_of).where(
            org_of.in_(chunk), one_of(session, user_of, sorted(set(users)))
        )
        found += [(org, user) for org, user in await core(session, stmt)]
    return found


async def attach_accounts(
    session: AsyncSession, fresh: list[tuple[int, UsageValues]], *, single: bool
) -> None:
    """Set each row's paying account: the organization's (the user must be a member of it) or
    the user's own. Users, organizations and their accounts come in one query each."""

    def where(i: int, name: str) -> str:
        return name if single else f"events[{i}].{name}"

    user_ids = list({row["user_id"] for _, row in fresh})
    org_ids = list({row["organization_id"] for _, row in fresh if row["organization_id"]})
    # live user or organization id -> its account id (None when it has none yet)
    user_accounts: dict[str, str | None] = {}
    for chunk in chunks(session, user_ids):
        found = await core(
            session,
            select(col(User.id), col(Account.id))
            .outerjoin(Account, col(Account.user_id) == col(User.id))
            .where(one_of(session, col(User.id), chunk), col(User.deleted_at).is_(None)),
        )
        user_accounts.update(found.all())
    org_accounts: dict[str, str | None] = {}
    memberships: set[tuple[str, str]] = set()
    for chunk in chunks(session, org_ids):
        found = await core(
            session,
            select(col(Organization.id), col(Account.id))
            .outerjoin(Account, col(Account.organization_id) == col(Organization.id))
            .where(
                one_of(session, col(Organization.id), chunk),
                col(Organization.deleted_at).is_(None),
            ),
        )
        org_accounts.update(found.all())
    memberships.update(await memberships_of(session, fresh))
    for i, row in fresh:
        if row["user_id"] not in user_accounts:
            raise Unprocessable(f"{where(i, 'userId')}: user not found", field=where(i, "userId"))
        org_id = row["organization_id"]
        if org_id is not None:
            if org_id not in org_accounts:
                raise Unprocessable(
                    f"{where(i, 'organizationId')}: organization not found",
                    field=where(i, "organizationId"),
                )
            if (org_id, row["user_id"]) not in memberships:
                raise Unprocessable(
                    f"{where(i, 'organizationId')}: the user is not a member of this organization",
                    field=where(i, "organizationId"),
                )
    opened = False
    for _, row in fresh:
        org_id = row["organization_id"]
        accounts = org_accounts if org_id else user_accounts
        owner = org_id or row["user_id"]
        if accounts[owner] is None:
            # A payer without a billing account yet (created outside the usual paths): open it.
            account = (
                Account(kind=AccountKind.ORGANIZATION.value, organization_id=owner)
                if org_id
                else Account(kind=AccountKind.USER.value, user_id=owner)
            )
            session.add(account)
            accounts[owner] = account.id
            opened = True
        row["account_id"] = accounts[owner]
    if opened:
        await session.flush()
