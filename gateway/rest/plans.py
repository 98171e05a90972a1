"""REST handlers for the plan catalog and subscriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from gateway.billing.subscriptions import PLAN_CHANGED, SUBSCRIBED
from gateway.db.models import Subscription
from gateway.errors import NotFound
from gateway.rest.framework import Call, rest
from gateway.rest.wire import Out, PageQuery, Timestamp, Wire, WireIn
from resolvers import permissions, plan_changes, plans
from resolvers.context import Context


class FeaturesOut(Out):
    included: list[str]


class PlanOut(Out):
    id: str
    name: str
    display_name: str
    type: str = Field(description='"individual" or "teams"')
    interval: str = Field(description='"Monthly" or "Yearly"')
    price_per_seat_cents: int
    # The plan stores the list; the contract wraps it (`{"included": [...]}`).
    features: Annotated[FeaturesOut, BeforeValidator(lambda names: {"included": list(names or [])})]


class SubscriptionOut(Out):
    subscription_id: str = Field(validation_alias="id")
    organization_id: str
    plan: PlanOut
    seats: int
    status: str = Field(description='"active", "past_due", "canceled" or "incomplete"')
    current_period_start: Timestamp | None
    current_period_end: Timestamp | None
    cancel_at: Timestamp | None = Field(description="When it ends, once canceled")
    canceled_at: Timestamp | None = Field(description="When the cancellation was requested")
    plan_history_id: str | None = Field(description="The latest plan history entry")


class SubscribedOut(SubscriptionOut):
    client_secret: str | None = Field(
        description="Set when the first payment needs confirmation on the client"
    )


class UserPlanOut(Out):
    subscription_id: str = Field(validation_alias="id")
    plan_history_id: str | None
    user_id: str
    plan: PlanOut
    current_period_start: Timestamp | None
    current_period_end: Timestamp | None
    cancel_at: Timestamp | None
    canceled_at: Timestamp | None


class ChangedPlanOut(SubscriptionOut):
    pending_plan: PlanOut | None = Field(
        description="The plan a downgrade moves to at the end of the period, else null"
    )


# CONTRACT.md's history actions are a closed list that clients may switch on: a plan change
# is shown as what it is to them, the new plan subscribed (GraphQL has PLAN_CHANGED).
_WIRE_ACTIONS = {PLAN_CHANGED: SUBSCRIBED}


class PlanHistoryItemOut(Out):
    id: str
    plan_id: str
    plan: PlanOut
    seats: int
    action: Annotated[str, BeforeValidator(lambda action: _WIRE_ACTIONS.get(action, action))] = (
        Field(
            description='"subscribed" (also a change of plan), "seats_changed", "canceled" or "renewed"'
        )
    )
    created_at: Timestamp


class PlanHistoryOut(Out):
    items: list[PlanHistoryItemOut]
    next_cursor: str | None


class PlanDetailsOut(PlanOut):
    subscription: SubscriptionOut | None = Field(
        description="The organization's subscription to this plan, or null"
    )


class PlansQuery(Wire):
    type: Literal["individual", "teams"] | None = None


Seats = Annotated[int, Field(ge=1, le=plans.MAX_SEATS)]


class SubscribeIn(WireIn):
    plan_id: str = Field(min_length=1, max_length=64)
    seats: Seats


class SeatsIn(WireIn):
    seats: Seats


class ChangePlanIn(WireIn):
    plan_id: str = Field(min_length=1, max_length=64)
    seats: Seats | None = Field(default=None, description="Kept when absent")


async def _plan(ctx: Context, plan_id: str) -> PlanOut:
    plan = await ctx.loaders.plan_by_id.load(plan_id)
    if plan is None:  # a subscription's plan is kept (a foreign key); never seen
        raise NotFound("Plan not found")
    return PlanOut.of(plan)


async def _subscription_values(ctx: Context, subscription: Subscription) -> dict[str, object]:
    """What `SubscriptionOut` shows beside the subscription's own columns."""
    return {
        "organization_id": await plans.organization_of(ctx, subscription) or "",
        "plan": await _plan(ctx, subscription.plan_id),
        "plan_history_id": await plans.latest_history_id(ctx, subscription),
    }


async def subscription_out(ctx: Context, subscription: Subscription) -> SubscriptionOut:
    return SubscriptionOut.of(subscription, **await _subscription_values(ctx, subscription))


@rest(response=UserPlanOut)
async def get_user_plan(call: Call) -> UserPlanOut:
    ctx = call.ctx
    subscription = await plans.require_user_subscription(permissions.personal_access(ctx))
    return UserPlanOut.of(
        subscription,
        plan_history_id=await plans.latest_history_id(ctx, subscription),
        user_id=ctx.user_id,
        plan=await _plan(ctx, subscription.plan_id),
    )


@rest(query=PlansQuery, response=list[PlanOut])
async def list_plans(call: Call) -> list[PlanOut]:
    return [PlanOut.of(p) for p in await plans.list_plans(call.ctx, call.query.type)]


@rest(response=SubscriptionOut)
async def get_organization_plan(call: Call) -> SubscriptionOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    found = await plans.require_organization_subscription(access)
    return await subscription_out(call.ctx, found)


@rest(query=PageQuery, response=PlanHistoryOut)
async def get_plan_history(call: Call) -> PlanHistoryOut:
    ctx = call.ctx
    args = call.query.page_args(ctx)
    access = await permissions.member_access(ctx, call.path["orgId"])
    page = await plans.plan_history_page(ctx, access, args)
    found = await ctx.loaders.plan_by_id.load_many([entry.plan_id for entry in page.items])
    items = [
        PlanHistoryItemOut.of(entry, plan=plan)
        for entry, plan in zip(page.items, found, strict=True)
    ]
    return PlanHistoryOut(items=items, next_cursor=page.next_cursor)


@rest(response=PlanDetailsOut)
async def get_plan_details(call: Call) -> PlanDetailsOut:
    ctx = call.ctx
    access = await permissions.member_access(ctx, call.path["orgId"])
    details = await plans.plan_details(access, call.path["planId"])
    subscription = (
        await subscription_out(ctx, details.subscription) if details.subscription else None
    )
    return PlanDetailsOut.of(details.plan, subscription=subscription)


@rest(body=SubscribeIn, response=SubscribedOut, status=201, idempotent=True)
async def subscribe(call: Call) -> SubscribedOut:
    ctx = call.ctx
    done = await plans.subscribe(
        ctx,
        organization_id=call.path["orgId"],
        plan_id=call.body.plan_id,
        seats=call.body.seats,
    )
    values = await _subscription_values(ctx, done.subscription)
    return SubscribedOut.of(done.subscription, **values, client_secret=done.client_secret)


@rest(body=SeatsIn, response=SubscriptionOut, idempotent=True)
async def change_seats(call: Call) -> SubscriptionOut:
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    found = await plans.change_seats(access, seats=call.body.seats)
    return await subscription_out(call.ctx, found)


@rest(response=SubscriptionOut)
async def cancel_plan(call: Call) -> SubscriptionOut:
    found = await plans.cancel_subscription(
        call.ctx, organization_id=call.path["orgId"], plan_id=call.path["planId"]
    )
    return await subscription_out(call.ctx, found)


@rest(body=ChangePlanIn, response=ChangedPlanOut, idempotent=True)
async def change_plan(call: Call) -> ChangedPlanOut:
    ctx = call.ctx
    found = await plan_changes.change_plan(
        ctx, organization_id=call.path["orgId"], plan_id=call.body.plan_id, seats=call.body.seats
    )
    pending = await _plan(ctx, found.pending_plan_id) if found.pending_plan_id else None
    return ChangedPlanOut.of(found, **await _subscription_values(ctx, found), pending_plan=pending)


@rest(response=SubscriptionOut)
async def resume_plan(call: Call) -> SubscriptionOut:
    found = await plan_changes.resume_subscription(call.ctx, organization_id=call.path["orgId"])
    return await subscription_out(call.ctx, found)
