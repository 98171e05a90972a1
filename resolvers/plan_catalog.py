"""The plan catalog's seed: the default plans, and creating or updating plans by name."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Required, TypedDict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.subscriptions import INTERVAL_MONTHS, PLAN_TYPES
from gateway.db.models import Plan
from gateway.errors import ValidationFailed


class PlanSpec(TypedDict, total=False):
    """A plan to seed, by name: the `Plan` fields a seed may set."""

    name: Required[str]
    display_name: Required[str]
    type: Required[str]
    interval: Required[str]
    price_per_seat_cents: Required[int]
    features: list[str]
    provider_price_id: str | None
    active: bool


DEFAULT_PLANS: tuple[PlanSpec, ...] = (
    {
        "name": "pro-monthly",
        "display_name": "Pro",
        "type": "individual",
        "interval": "Monthly",
        "price_per_seat_cents": 2_000,
        "features": ["All models", "Web search", "Priority support"],
    },
    {
        "name": "pro-yearly",
        "display_name": "Pro (yearly)",
        "type": "individual",
        "interval": "Yearly",
        "price_per_seat_cents": 20_000,
        "features": ["All models", "Web search", "Priority support", "Two months free"],
    },
    {
        "name": "teams-monthly",
        "display_name": "Teams",
        "type": "teams",
        "interval": "Monthly",
        "price_per_seat_cents": 3_000,
        "features": ["All models", "Web search", "Shared billing", "Usage by member"],
    },
    {
        "name": "teams-yearly",
        "display_name": "Teams (yearly)",
        "type": "teams",
        "interval": "Yearly",
        "price_per_seat_cents": 30_000,
        "features": ["All models", "Web search", "Shared billing", "Usage by member"],
    },
)


def _validated_plan_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A seed's plan checked against `PlanSpec` (a seed file's JSON: untyped until here)."""
    unknown = set(spec) - set(PlanSpec.__annotations__)
    if unknown:
        raise ValidationFailed(f"Unknown plan fields: {', '.join(sorted(unknown))}")
    for required in ("name", "display_name", "type", "interval", "price_per_seat_cents"):
        if required not in spec:
            raise ValidationFailed(f"A plan needs {required}", field=required)
    if spec["type"] not in PLAN_TYPES:
        raise ValidationFailed("type must be individual or teams", field="type")
    if spec["interval"] not in INTERVAL_MONTHS:
        raise ValidationFailed("interval must be Monthly or Yearly", field="interval")
    price = spec["price_per_seat_cents"]
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise ValidationFailed("price_per_seat_cents must be an integer >= 0")
    features = spec.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValidationFailed("features must be a list of strings", field="features")
    return spec


async def seed_plans(
    session: AsyncSession, specs: Iterable[Mapping[str, object]] = DEFAULT_PLANS
) -> list[tuple[Plan, bool]]:
    """Create or update plans by name (CLI `gateway seed-plans`); (plan, created) each.

    Fields not given keep their value, so a provider price id set by hand survives a re-seed.
    Does not commit.
    """
    done: list[tuple[Plan, bool]] = []
    for raw in specs:
        spec = _validated_plan_spec(dict(raw))
        plan = (
            await session.execute(select(Plan).where(col(Plan.name) == spec["name"]))
        ).scalar_one_or_none()
        created = plan is None
        if plan is None:
            plan = Plan(**spec)
        else:
            for key, value in spec.items():
                setattr(plan, key, value)
        session.add(plan)
        await session.flush()
        done.append((plan, created))
    return done
