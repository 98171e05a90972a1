"""Payments' loaders: by id, and an account's (or a user's personal account's) history pages
and counts, all or the succeeded ones; history rows are read-only (only ever shown)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlmodel import col

from gateway.db.models import Account, Payment
from gateway.db.session import orm_session
from resolvers.batching import BatchLoader
from resolvers.keyset import ParentOf
from resolvers.loaders.accounts import organization_account_of, personal_account_of
from resolvers.loaders.shapes import CountByKey, PageByParent, RowByKey, Where

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

_SUCCEEDED = (col(Payment.status) == "succeeded",)


class PersonalPaymentCount:
    """user id → how many payments (matching `where`) their personal account has."""

    def __init__(self, where: Where = ()) -> None:
        self.where = where

    def __call__(self, loaders: Loaders) -> BatchLoader[str, int]:
        db = loaders.db

        async def batch(keys: list[str]) -> list[int]:
            stmt = (
                select(col(Account.user_id), func.count())
                .select_from(Payment)
                .join(Account, col(Account.id) == col(Payment.account_id))
                .where(col(Account.user_id).in_(keys), *self.where)
                .group_by(col(Account.user_id))
            )
            counts = {key: n for key, n in (await orm_session(db).execute(stmt)).all()}
            return [int(counts.get(key, 0)) for key in keys]

        return BatchLoader(batch)


payment_by_id = RowByKey(Payment, col(Payment.id))


def _account_pages(
    account_of: ParentOf, *, where: Where = (), owners: str | None = None
) -> PageByParent[Payment]:
    """An account's payments found in the page's statement from its owner (no account read
    first: a user page's or an organization's billing page's payments go with their level's
    reads); `owners` (`PageByParent`): several owners' pages through their accounts' rows."""
    return PageByParent(
        Payment,
        col(Payment.account_id),
        newest_first=True,
        plain=True,
        where=where,
        parent_of=account_of,
        owners=owners,
    )


personal_payment_pages_by_user_id = _account_pages(personal_account_of)
succeeded_personal_payment_pages_by_user_id = _account_pages(personal_account_of, where=_SUCCEEDED)
_ORGANIZATION_ACCOUNTS = "account_row_by_organization_id"
organization_payment_pages_by_organization_id = _account_pages(
    organization_account_of, owners=_ORGANIZATION_ACCOUNTS
)
succeeded_organization_payment_pages_by_organization_id = _account_pages(
    organization_account_of, where=_SUCCEEDED, owners=_ORGANIZATION_ACCOUNTS
)
payment_count_by_account_id = CountByKey(Payment, col(Payment.account_id))
succeeded_payment_count_by_account_id = CountByKey(Payment, col(Payment.account_id), _SUCCEEDED)
personal_payment_count_by_user_id = PersonalPaymentCount()
succeeded_personal_payment_count_by_user_id = PersonalPaymentCount(_SUCCEEDED)
