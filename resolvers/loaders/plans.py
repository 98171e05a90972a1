"""Plans' and subscriptions' loaders: by id, an account's current subscription, plan history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select
from sqlmodel import col

from gateway.db.expressions import constant, one_of
from gateway.db.models import Account, Plan, PlanHistory, Subscription, SubscriptionStatus
from gateway.db.session import fetch_rows
from resolvers.batching import BatchLoader
from resolvers.keyset import plain_columns, plain_row_type
from resolvers.loaders.accounts import organization_account_of
from resolvers.loaders.shapes import LatestIdByKey, PageByParent, PlainRowByKey, RowByKey

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

_NOT_CANCELED = (col(Subscription.status) != constant(SubscriptionStatus.CANCELED.value),)

plan_by_id = RowByKey(Plan, col(Plan.id))
# Read-only rows, for plans that are only shown (a subscription's, a history entry's).
plan_row_by_id = PlainRowByKey(Plan, col(Plan.id))
subscription_by_id = RowByKey(Subscription, col(Subscription.id))
current_subscription_by_account_id = RowByKey(
    Subscription, col(Subscription.account_id), _NOT_CANCELED
)

# An organization's current subscription with its plan (was two statements, one per level).
_PLAN_COLUMNS = tuple(column.element.label(f"plan__{column.key}") for column in plain_columns(Plan))
_SUBSCRIPTIONS_WITH_PLANS = (
    select(*plain_columns(Subscription), col(Account.organization_id).label("by_key"))
    .add_columns(*_PLAN_COLUMNS)
    .join_from(Subscription, Account, col(Subscription.account_id) == col(Account.id))
    .outerjoin(Plan, col(Plan.id) == col(Subscription.plan_id))
    .where(*_NOT_CANCELED)
)
_SUBSCRIPTION_WITH_PLAN_BY_ORGANIZATION_ID = _SUBSCRIPTIONS_WITH_PLANS.where(
    col(Account.organization_id) == bindparam("_key")
)
_SUBSCRIPTIONS_WITH_PLANS_BY_ORGANIZATION_IDS = _SUBSCRIPTIONS_WITH_PLANS.where(
    one_of(Account.organization_id, "_keys")
)


def current_subscription_row_by_organization_id(
    loaders: Loaders,
) -> BatchLoader[str, Subscription | None]:
    """organization id → its current subscription as a read-only row (for reads; writers use
    `current_subscription_by_account_id`), found by the account's organization: no account
    read before it, so a query level's other reads share its statement. Its plan comes in the
    same statement and primes `plan_row_by_id`, which the subscription's `plan` field reads."""
    db = loaders.db
    plan_row = plain_row_type(Plan)._make
    split = len(plain_columns(Subscription)) + 1  # the subscription's columns and `by_key`

    async def batch(keys: list[str]) -> list[Subscription | None]:
        if len(keys) == 1:
            rows = await fetch_rows(
                db, _SUBSCRIPTION_WITH_PLAN_BY_ORGANIZATION_ID, {"_key": keys[0]}
            )
        else:
            rows = await fetch_rows(
                db, _SUBSCRIPTIONS_WITH_PLANS_BY_ORGANIZATION_IDS, {"_keys": keys}
            )
        found: dict[str, Subscription] = {}
        for row in rows:
            found[row.by_key] = row  # its extra `plan__` attributes are not the subscription's
            if row[split] is not None:  # the plan's id (a foreign key: always there)
                loaders.plan_row_by_id.prime(row.plan_id, plan_row(row[split:]))
        return [found.get(key) for key in keys]

    return BatchLoader(batch)


# Read-only rows (`plain`): the history is shown, never modified.
# An organization's plan changes, its account found in the page's statement.
plan_history_pages_by_organization_id = PageByParent(
    PlanHistory,
    col(PlanHistory.account_id),
    newest_first=True,
    plain=True,
    parent_of=organization_account_of,
    owners="account_row_by_organization_id",
)
latest_plan_history_id_by_subscription_id = LatestIdByKey(
    col(PlanHistory.subscription_id), col(PlanHistory.id)
)
