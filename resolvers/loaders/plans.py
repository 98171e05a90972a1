"""Plans' and subscriptions' loaders: by id, an account's current subscription, plan history."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.models import Plan, PlanHistory, Subscription, SubscriptionStatus
from resolvers.loaders.shapes import LatestIdByKey, PageByParent, PlainRowByKey, RowByKey

_NOT_CANCELED = (col(Subscription.status) != SubscriptionStatus.CANCELED.value,)

plan_by_id = RowByKey(Plan, col(Plan.id))
subscription_by_id = RowByKey(Subscription, col(Subscription.id))
current_subscription_by_account_id = RowByKey(
    Subscription, col(Subscription.account_id), _NOT_CANCELED
)
# Read-only rows, for reads (writers: `current_subscription_by_account_id`).
current_subscription_row_by_account_id = PlainRowByKey(
    Subscription, col(Subscription.account_id), _NOT_CANCELED
)
# Read-only rows (`plain`): the history is shown, never modified.
plan_history_pages_by_account_id = PageByParent(
    PlanHistory, col(PlanHistory.account_id), newest_first=True, plain=True
)
latest_plan_history_id_by_subscription_id = LatestIdByKey(
    col(PlanHistory.subscription_id), col(PlanHistory.id)
)
