"""REST handlers for the plan catalog and subscriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.context import Context
from gateway.db.models import Plan, PlanHistory, Subscription
from gateway.rest.framework import Call, rest
from gateway.rest.wire import PageQuery, Timestamp, Wire, WireIn
from resolvers import plans


class FeaturesOut(Wire):
    included: list[str]


class PlanOut(Wire):
    id: str
    name: str
    display_name: str
    type: str = Field(description='"individual" or "teams"')
    interval: str = Field(description='"Monthly" or "Yearly"')
    price_per_seat_cents: int
    features: FeaturesOut

    @classmethod
    def of(cls, plan: Plan) -> PlanOut:
        return cls(
            id=plan.id,
            name=plan.name,
            display_name=plan.display_name,
            type=plan.type,
            interval=plan.interval,
            price_per_seat_cents=plan.price_per_seat_cents,
            features=FeaturesOut(included=list(plan.features or [])),
        )


class SubscriptionOut(Wire):
    subscription_id: str
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


class UserPlanOut(Wire):
    subscription_id: str
    plan_history_id: str | None
    user_id: str
    plan: PlanOut
    current_period_start: Timestamp | None
    current_period_end: Timestamp | None
    cancel_at: Timestamp | None
    canceled_at: Timestamp | None


class PlanHistoryItemOut(Wire):
    id: str
    plan_id: str
    plan: PlanOut
    seats: int
    action: str = Field(description='"subscribed", "seats_changed", "canceled" or "renewed"')
    created_at: Timestamp


class PlanHistoryOut(Wire):
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


async def _plan(ctx: Context, plan_id: str) -> PlanOut:
    plan: Plan = await ctx.loaders.plan_by_id.load(plan_id)
    return PlanOut.of(plan)


async def subscription_out(ctx: Context, subscription: Subscription) -> SubscriptionOut:
    return SubscriptionOut(
        subscription_id=subscription.id,
        organization_id=await plans.organization_of(ctx, subscription) or "",
        plan=await _plan(ctx, subscription.plan_id),
        seats=subscription.seats,
        status=subscription.status,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        cancel_at=subscription.cancel_at,
        canceled_at=subscription.canceled_at,
        plan_history_id=await plans.latest_history_id(ctx, subscription),
    )


@rest(response=UserPlanOut)
async def get_user_plan(call: Call) -> UserPlanOut:
    ctx = call.ctx
    subscription = await plans.require_user_subscription(ctx)
    return UserPlanOut(
        subscription_id=subscription.id,
        plan_history_id=await plans.latest_history_id(ctx, subscription),
        user_id=ctx.user_id,
        plan=await _plan(ctx, subscription.plan_id),
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        cancel_at=subscription.cancel_at,
        canceled_at=subscription.canceled_at,
    )


@rest(query=PlansQuery, response=list[PlanOut])
async def list_plans(call: Call) -> list[PlanOut]:
    return [PlanOut.of(p) for p in await plans.list_plans(call.ctx, call.query.type)]


@rest(response=SubscriptionOut)
async def get_organization_plan(call: Call) -> SubscriptionOut:
    found = await plans.require_organization_subscription(call.ctx, call.path["orgId"])
    return await subscription_out(call.ctx, found)


@rest(query=PageQuery, response=PlanHistoryOut)
async def get_plan_history(call: Call) -> PlanHistoryOut:
    ctx = call.ctx
    page = await plans.plan_history_page(ctx, call.path["orgId"], call.query.page_args(ctx))
    found = await ctx.loaders.plan_by_id.load_many([entry.plan_id for entry in page.items])
    items = [
        _history_item(entry, PlanOut.of(plan))
        for entry, plan in zip(page.items, found, strict=True)
    ]
    return PlanHistoryOut(items=items, next_cursor=page.next_cursor)


def _history_item(entry: PlanHistory, plan: PlanOut) -> PlanHistoryItemOut:
    return PlanHistoryItemOut(
        id=entry.id,
        plan_id=entry.plan_id,
        plan=plan,
        seats=entry.seats,
        action=entry.action,
        created_at=entry.created_at,
    )


@rest(response=PlanDetailsOut)
async def get_plan_details(call: Call) -> PlanDetailsOut:
    ctx = call.ctx
    details = await plans.plan_details(ctx, call.path["orgId"], call.path["planId"])
    subscription = (
        await subscription_out(ctx, details.subscription) if details.subscription else None
    )
    return PlanDetailsOut(**PlanOut.of(details.plan).model_dump(), subscription=subscription)


@rest(body=SubscribeIn, response=SubscribedOut, status=201, idempotent=True)
async def subscribe(call: Call) -> SubscribedOut:
    ctx = call.ctx
    done = await plans.subscribe(
        ctx,
        organization_id=call.path["orgId"],
        plan_id=call.body.plan_id,
        seats=call.body.seats,
    )
    out = await subscription_out(ctx, done.subscription)
    return SubscribedOut(**out.model_dump(), client_secret=done.client_secret)


@rest(body=SeatsIn, response=SubscriptionOut, idempotent=True)
async def change_seats(call: Call) -> SubscriptionOut:
    found = await plans.change_seats(
        call.ctx, organization_id=call.path["orgId"], seats=call.body.seats
    )
    return await subscription_out(call.ctx, found)


@rest(response=SubscriptionOut)
async def cancel_plan(call: Call) -> SubscriptionOut:
    found = await plans.cancel_subscription(
        call.ctx, organization_id=call.path["orgId"], plan_id=call.path["planId"]
    )
    return await subscription_out(call.ctx, found)
