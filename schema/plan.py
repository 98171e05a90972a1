"""GraphQL plans and subscriptions: the catalog, an account's subscription, seats, history."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import organizations, permissions, plan_changes, plans
from resolvers.batching import load_each
from schema import declare
from schema.declare import batched, resolve_one
from schema.errors import Payload, mutation
from schema.relay import Node
from schema.rows import FromReaders, stored_fields
from schema.scalars import enum_of

if TYPE_CHECKING:
    from schema.organization import Organization


@strawberry.enum(description="Who a plan is for.")
class PlanType(enum.Enum):
    INDIVIDUAL = "individual"
    TEAMS = "teams"


@strawberry.enum(description="How often a plan is billed.")
class PlanInterval(enum.Enum):
    MONTHLY = "Monthly"
    YEARLY = "Yearly"


@strawberry.enum
class SubscriptionStatus(enum.Enum):
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"


@strawberry.enum
class PlanHistoryAction(enum.Enum):
    SUBSCRIBED = "subscribed"
    SEATS_CHANGED = "seats_changed"
    CANCELED = "canceled"
    RENEWED = "renewed"
    PLAN_CHANGED = "plan_changed"


@strawberry.type(description="A plan of the catalog, priced per seat.")
class Plan(Node, FromReaders[models.Plan]):
    id: strawberry.ID
    name: str
    display_name: str
    type: PlanType
    interval: PlanInterval
    price_per_seat_cents: int
    features: list[str]
    active: bool = strawberry.field(description="Offered to new subscribers.")
    created_at: datetime


async def _plan(info: Info, plan_id: str) -> Plan:
    found: models.Plan = await info.context.loaders.plan_row_by_id.load(plan_id)
    return Plan.from_model(found)


async def _plans_of(
    roots: Sequence[Subscription | PlanHistoryEntry], info: Info
) -> list[Plan | Exception]:
    """`_plan_of` of a level's subscriptions or history entries at once (schema/declare.py):
    one load for all."""
    rows = await load_each(info.context.loaders.plan_row_by_id, [r._model.plan_id for r in roots])
    plans: list[Plan | Exception] = []
    for row in rows:
        try:
            plans.append(row if isinstance(row, Exception) else Plan.from_model(row))
        except Exception as error:  # no such plan: that parent's error, as `_plan`'s
            plans.append(error)
    return plans


@batched(_plans_of)
async def _plan_of(root: Subscription | PlanHistoryEntry, info: Info) -> Plan:
    """The `plan` of a subscription and of a history entry: the plan its row names."""
    plan: Plan = await resolve_one(_plans_of, root, info)
    return plan


@strawberry.type(description="An account's subscription to a plan, with its seats.")
class Subscription(Node, FromReaders[models.Subscription]):
    id: strawberry.ID
    seats: int
    status: SubscriptionStatus
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at: datetime | None = strawberry.field(description="When it ends, once canceled.")
    canceled_at: datetime | None = strawberry.field(
        description="When the cancellation was requested."
    )
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.Subscription]

    plan: Plan = strawberry.field(resolver=_plan_of)

    @strawberry.field(
        description="The plan a downgrade moves to at the end of the period; null otherwise."
    )
    async def pending_plan(self, info: Info) -> Plan | None:
        pending = self._model.pending_plan_id
        return await _plan(info, pending) if pending is not None else None

    @strawberry.field(
        description="Seats no member takes (a member joins only into a free seat); "
        "null for a personal subscription."
    )
    async def seats_available(self, info: Info) -> int | None:
        return await plan_changes.seats_available(info.context, self._model)

    @strawberry.field(description="The organization billed; null for a personal subscription.")
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        from schema.organization import Organization

        org_id = await plans.organization_of(info.context, self._model)
        if org_id is None:
            return None
        org = await organizations.get_organization(info.context, org_id)
        return Organization.from_model(org) if org is not None else None


@strawberry.type(description="One change of an account's plan.")
class PlanHistoryEntry(FromReaders[models.PlanHistory]):
    id: strawberry.ID
    subscription_id: strawberry.ID
    seats: int
    action: PlanHistoryAction
    created_at: datetime
    _model: strawberry.Private[models.PlanHistory]

    plan: Plan = strawberry.field(resolver=_plan_of)


# Built by generated readers (schema/declare.py `RecordReaders`): one dict per object, the
# enums by a dictionary lookup, instead of the dataclass constructor and the enum calls.
def _plan_type(value: str) -> PlanType:
    return enum_of(PlanType, value)


def _plan_interval(value: str) -> PlanInterval:
    return enum_of(PlanInterval, value)


def _features(value: list[str] | None) -> list[str]:
    return list(value or [])


def _subscription_status(value: str) -> SubscriptionStatus:
    return enum_of(SubscriptionStatus, value)


def _history_action(value: str) -> PlanHistoryAction:
    return enum_of(PlanHistoryAction, value)


def _same(names: tuple[str, ...], **converted: declare.Conversion) -> declare.RecordReaders:
    """Readers of the fields `names`, each its row's attribute of the same name, converted
    where `converted` says."""
    return declare.RecordReaders([(name, name, converted.get(name)) for name in names])


Plan.readers = _same(
    stored_fields(Plan), type=_plan_type, interval=_plan_interval, features=_features
)
Subscription.readers = _same(stored_fields(Subscription), status=_subscription_status)
PlanHistoryEntry.readers = _same(stored_fields(PlanHistoryEntry), action=_history_action)
# A plan history page may be written as JSON by PostgreSQL (schema/declare.py): its fields are
# columns, `action` an enum of one; `plan` reads the row's plan id.
declare.node_type(
    "PlanHistoryEntry",
    PlanHistoryEntry.readers,
    always=("id", "plan_id"),
    others={"plan": ("plan_id",)},
    model=models.PlanHistory,
    enums={"action": PlanHistoryAction},
)


# Fields of Organization and User, declared there with `strawberry.field(resolver=...)`.


async def organization_subscriptions(
    roots: Sequence[Any], info: Info
) -> list[Subscription | Exception | None]:
    """`Organization.subscription` of a level's organizations at once (schema/declare.py):
    their accesses in one load, their subscriptions in one more."""
    ctx = info.context
    accesses = await permissions.member_accesses(ctx, [root._model.id for root in roots])
    found = await plans.organization_subscriptions(accesses)
    return [
        row if row is None or isinstance(row, Exception) else Subscription.from_model(row)
        for row in found
    ]


@batched(organization_subscriptions)
@declare.reads_ahead(
    lambda org_id, info: plans.organization_subscription_ahead(info.context, org_id)
)
async def organization_subscription(root: Any, info: Info) -> Subscription | None:
    """The organization's current subscription (members)."""
    found: Subscription | None = await resolve_one(organization_subscriptions, root, info)
    return found


async def user_subscription(root: Any, info: Info) -> Subscription | None:
    """Your individual subscription; null for other users."""
    found = await plans.visible_user_subscription(info.context, root._model.id)
    return Subscription.from_model(found) if found is not None else None


@strawberry.type
class PlanQuery:
    @strawberry.field(description="Plans on offer, cheapest first; optionally of one type.")
    async def plans(self, info: Info, type: PlanType | None = None) -> list[Plan]:
        found = await plans.list_plans(info.context, type.value if type is not None else None)
        return [Plan.from_model(p) for p in found]

    @strawberry.field(description="A plan by id.")
    async def plan(self, info: Info, id: strawberry.ID) -> Plan | None:
        found = await plans.get_plan(info.context, str(id))
        return Plan.from_model(found) if found is not None else None


@strawberry.input
class SubscribeToPlanInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The organization to subscribe; null for your personal account"
    )
    plan_id: strawberry.ID
    seats: int = strawberry.field(
        default=1, description="At least the organization's member count; 1 for individual plans"
    )


@strawberry.type
class SubscribeToPlanPayload(Payload):
    subscription: Subscription | None = None
    client_secret: str | None = strawberry.field(
        default=None, description="Set when the first payment needs confirmation on the client."
    )


@strawberry.input
class ChangeSeatsInput:
    organization_id: strawberry.ID
    seats: int


@strawberry.input
class CancelSubscriptionInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="null for your personal subscription"
    )
    plan_id: strawberry.ID


@strawberry.input
class ChangePlanInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="null for your personal subscription"
    )
    plan_id: strawberry.ID
    seats: int | None = strawberry.field(
        default=None, description="Kept when null; at least the organization's member count"
    )


@strawberry.input
class ResumeSubscriptionInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="null for your personal subscription"
    )


@strawberry.type
class SubscriptionPayload(Payload):
    subscription: Subscription | None = None


def _organization_id(value: strawberry.ID | None) -> str | None:
    """An input's organization, or None (also for "") for the caller's personal account."""
    return str(value) if value else None


def _payload(found: models.Subscription) -> SubscriptionPayload:
    return SubscriptionPayload(subscription=Subscription.from_model(found))


@strawberry.type
class PlanMutation:
    @mutation("Subscribe an organization (owner/admin) or yourself.")
    async def subscribe_to_plan(
        self, info: Info, input: SubscribeToPlanInput
    ) -> SubscribeToPlanPayload:
        done = await plans.subscribe(
            info.context,
            organization_id=_organization_id(input.organization_id),
            plan_id=str(input.plan_id),
            seats=input.seats,
        )
        return SubscribeToPlanPayload(
            subscription=Subscription.from_model(done.subscription),
            client_secret=done.client_secret,
        )

    @mutation("Set the organization's seats (at least its member count).")
    async def change_seats(self, info: Info, input: ChangeSeatsInput) -> SubscriptionPayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        found = await plans.change_seats(access, seats=input.seats)
        return _payload(found)

    @mutation("Cancel a subscription at the end of its current period.")
    async def cancel_subscription(
        self, info: Info, input: CancelSubscriptionInput
    ) -> SubscriptionPayload:
        found = await plans.cancel_subscription(
            info.context,
            organization_id=_organization_id(input.organization_id),
            plan_id=str(input.plan_id),
        )
        return _payload(found)

    @mutation(
        "Move to another plan: an upgrade (more per seat per month) at once and prorated, a "
        "downgrade at the end of the period (`pendingPlan` until then). Withdraws a pending "
        "cancellation."
    )
    async def change_plan(self, info: Info, input: ChangePlanInput) -> SubscriptionPayload:
        found = await plan_changes.change_plan(
            info.context,
            organization_id=_organization_id(input.organization_id),
            plan_id=str(input.plan_id),
            seats=input.seats,
        )
        return _payload(found)

    @mutation("Undo a cancellation or a downgrade that has not taken effect yet.")
    async def resume_subscription(
        self, info: Info, input: ResumeSubscriptionInput
    ) -> SubscriptionPayload:
        found = await plan_changes.resume_subscription(
            info.context,
            organization_id=_organization_id(input.organization_id),
        )
        return _payload(found)
