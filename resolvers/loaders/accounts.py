"""Billing accounts' loaders: by id, by their user (personal) or organization."""

from __future__ import annotations

from sqlalchemy import ColumnElement, ScalarSelect, select
from sqlmodel import col

from gateway.db.models import Account
from resolvers.loaders.shapes import PlainRowByKey, RowByKey

account_by_id = RowByKey(Account, col(Account.id))
account_by_user_id = RowByKey(Account, col(Account.user_id))
# Personal accounts as read-only rows, for reads (writers: `account_by_user_id`).
account_row_by_user_id = PlainRowByKey(Account, col(Account.user_id))
account_by_organization_id = RowByKey(Account, col(Account.organization_id))
# Organizations' accounts as read-only rows, for reads (writers: `account_by_organization_id`).
account_row_by_organization_id = PlainRowByKey(Account, col(Account.organization_id))


# An account's id from its owner's, as a scalar subquery (one unique index lookup), for pages
# by account that find it in their own statement (`PageByParent(parent_of=…)`): no account
# read first, so a page goes with its level's other reads. No account yet: no rows.
def personal_account_of(user_id: ColumnElement[str]) -> ScalarSelect[str]:
    """The id of the user's personal account."""
    return select(col(Account.id)).where(col(Account.user_id) == user_id).scalar_subquery()


def organization_account_of(organization_id: ColumnElement[str]) -> ScalarSelect[str]:
    """The id of the organization's account."""
    return (
        select(col(Account.id))
        .where(col(Account.organization_id) == organization_id)
        .scalar_subquery()
    )
