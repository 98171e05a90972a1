"""Usage loaders: a record by id, and history pages (newest first) of a user, an
organization, or a member in an organization. Pages hold read-only rows: nobody modifies a
usage record."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import bindparam
from sqlmodel import col

from gateway.db.models import UsageRecord
from resolvers.batching import BatchLoader
from resolvers.keyset import attribute, pages_by_parent
from resolvers.loaders.shapes import PageByParent, RowByKey
from resolvers.pagination import Page, PageArgs

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

# A member's usage pages: (organization id, user id, PageArgs).
MemberPageKey = tuple[str, str, PageArgs]

usage_by_id = RowByKey(UsageRecord, col(UsageRecord.id))
usage_pages_by_user_id = PageByParent(
    UsageRecord, col(UsageRecord.user_id), newest_first=True, plain=True
)
usage_pages_by_organization_id = PageByParent(
    UsageRecord, col(UsageRecord.organization_id), newest_first=True, plain=True
)

_USER_ID = attribute(col(UsageRecord.user_id))
_IN_ORGANIZATION = (col(UsageRecord.organization_id) == bindparam("organization_id"),)


def usage_pages_by_member(loaders: Loaders) -> BatchLoader[MemberPageKey, Page[UsageRecord]]:
    """(organization id, user id, PageArgs) → that member's usage in that org, newest first."""
    db = loaders.db

    async def batch(keys: list[MemberPageKey]) -> list[Page[UsageRecord]]:
        groups: dict[tuple[str, PageArgs], list[str]] = defaultdict(list)
        for org_id, user_id, args in keys:
            groups[(org_id, args)].append(user_id)
        results: dict[MemberPageKey, Page[UsageRecord]] = {}
        for (org_id, args), user_ids in groups.items():
            pages = await pages_by_parent(
                db,
                UsageRecord,
                _USER_ID,
                list(dict.fromkeys(user_ids)),
                args,
                where=_IN_ORGANIZATION,
                plain=True,
                params={"organization_id": org_id},
            )
            for user_id, page in pages.items():
                results[(org_id, user_id, args)] = page
        return [results[key] for key in keys]

    return BatchLoader(batch)
