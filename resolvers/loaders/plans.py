"""Plans' and subscriptions' loaders: by id, an account's current subscription, plan history."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.expressions import constant
from gateway.db.models import Account, Plan, PlanHistory, Subscription, SubscriptionStatus
from resolvers.loaders.shapes import LatestIdByKey, PageByParent, PlainRowByKey, RowByKey

_NOT_CANCELED = (col(Subscription.status) != constant(SubscriptionStatus.CANCELED.value),)

plan_by_id = RowByKey(Plan, col(Plan.id))
# Read-only rows, for plans that are only shown (a subscription's, a history entry's).
plan_row_by_id = PlainRowByKey(Plan, col(Plan.id))
subscription_by_id = RowByKey(Subscription, col(Subscription.id))
current_subscription_by_account_id = RowByKey(
    Subscription, col(Subscription.account_id), _NOT_CANCELED
)
# Read-only rows, for reads (writers: `current_subscription_by_account_id`), by the account's
# organization: no account read before it (a query level's other reads share its statement).
current_subscription_row_by_organization_id = PlainRowByKey(
    Subscription,
    col(Account.organization_id),
    (col(Subscription.account_id) == col(Account.id), *_NOT_CANCELED),
)
# Read-only rows (`plain`): the history is shown, never modified.
plan_history_pages_by_account_id = PageByParent(
    PlanHistory, col(PlanHistory.account_id), newest_first=True, plain=True
)
latest_plan_history_id_by_subscription_id = LatestIdByKey(
    col(PlanHistory.subscription_id), col(PlanHistory.id)
)
