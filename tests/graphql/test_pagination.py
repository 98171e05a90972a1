"""Pages of several parents in one statement equal each parent's page on its own.

Several parents' pages are one window-function query on SQLite and one LATERAL join on
PostgreSQL; a single parent's page is a plain `ORDER BY id LIMIT n`. All must agree, forwards
and backwards, with and without cursors, as ORM objects and as plain rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.db.models import UsageRecord
from resolvers.keyset import pages_by_parent
from resolvers.loaders.usage import _IN_ORGANIZATION
from resolvers.pagination import PageArgs, encode_cursor
from tests.conftest import Env
from tests.usage.helpers import event, ingest_ok


def _shape(page: Any) -> tuple[list[str], bool, bool]:
    return [item.id for item in page.items], page.has_next_page, page.has_previous_page


async def test_pages_of_several_parents_equal_each_parents_own_page(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    users = [owner, await env.user(), await env.user()]
    for member in users[1:]:
        await env.add_member(org_id, member)
    for user, count in zip(users, [0, 3, 7], strict=True):
        if count:
            await ingest_ok(
                env, *[event(user.user_id, organizationId=org_id) for _ in range(count)]
            )
    await ingest_ok(env, event(users[2].user_id))  # personal usage: not in the organization
    ids = [user.user_id for user in users]
    async with env.sessions() as session:
        found = await session.scalars(
            select(UsageRecord.id).where(
                UsageRecord.user_id == ids[2], UsageRecord.organization_id == org_id
            )
        )
        in_org = sorted(found)
    middle = encode_cursor(in_org[3])

    def args(**kw: Any) -> PageArgs:
        return PageArgs.build(**kw, default=50, maximum=100)

    variants = [
        args(first=2),
        args(first=10),
        args(last=2),
        args(first=2, after=middle),
        args(last=2, before=middle),
        args(last=10, after=middle),
    ]
    for page_args in variants:
        for plain in (True, False):
            common: dict[str, Any] = {
                "where": _IN_ORGANIZATION,
                "plain": plain,
                "params": {"organization_id": org_id},
            }
            async with env.sessions() as session:
                together = await pages_by_parent(
                    session, UsageRecord, UsageRecord.user_id, ids, page_args, **common
                )
                alone = {
                    user_id: (
                        await pages_by_parent(
                            session,
                            UsageRecord,
                            UsageRecord.user_id,
                            [user_id],
                            page_args,
                            **common,
                        )
                    )[user_id]
                    for user_id in ids
                }
            got = {user_id: _shape(page) for user_id, page in together.items()}
            assert got == {user_id: _shape(page) for user_id, page in alone.items()}, page_args
            assert got[ids[0]][0] == []  # no usage in the organization
            assert len(got[ids[2]][0]) > 0


def test_a_joined_row_is_read_from_the_end_of_an_item_and_none_when_missing() -> None:
    from gateway.db.models import Member, User
    from resolvers.keyset import Joined, plain_row_type

    joined = Joined(User, Member.user_id, "user")
    user_fields = plain_row_type(User)._fields
    values = {name: f"v-{name}" for name in user_fields}
    member = ("mbr-1", "org-1", "usr-1")
    user = joined.row_of((*member, *values.values()))
    assert user is not None and user.id == "v-id" and user._asdict() == values
    assert joined.row_of((*member, *(None for _ in user_fields))) is None
    assert [c.key for c in joined.columns] == [f"user__{name}" for name in user_fields]
