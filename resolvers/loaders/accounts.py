"""Billing accounts' loaders: by id, by their user (personal) or organization."""

from __future__ import annotations

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
