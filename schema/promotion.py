"""GraphQL promotions: the Promotion type (listed on a billing account) and the operator's
mutations that create and end one (service token); redeeming is a payment (schema/payment.py)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import promotions
from schema.errors import Payload, mutation
from schema.rows import from_row
from schema.scalars import BigInt


@strawberry.type(description="Promotional credits offered to an account.")
class Promotion:
    id: strawberry.ID
    code: str
    description: str
    credits: BigInt = strawberry.field(description="Micro-credits a redemption adds.")
    starts_at: datetime
    expires_at: datetime = strawberry.field(
        description="Redemptions end then, and the credits redeemed expire then too."
    )
    redeemed_at: datetime | None = strawberry.field(
        description="When the account you look from redeemed it; null if it has not."
    )
    max_redemptions: BigInt | None = strawberry.field(
        description="How many accounts may redeem it; null for no cap."
    )
    redemption_count: BigInt

    @classmethod
    def from_model(cls, view: promotions.PromotionView) -> Promotion:
        return from_row(cls, view.promotion, redeemed_at=view.redeemed_at)

    @classmethod
    def for_operator(cls, promotion: models.Promotion) -> Promotion:
        return cls.from_model(promotions.PromotionView(promotion, None))


@strawberry.input
class CreatePromotionInput:
    code: str = strawberry.field(
        description="3 to 64 letters, digits, '-' or '_'; redeemed in any case."
    )
    credits: BigInt = strawberry.field(
        description="Micro-credits, 1 to GATEWAY_PROMOTION_MAX_CREDITS."
    )
    description: str = ""
    starts_at: datetime | None = strawberry.field(default=None, description="Default: now.")
    expires_at: datetime | None = strawberry.field(
        default=None, description="In the future; default: GATEWAY_PROMOTION_DEFAULT_DAYS on."
    )
    max_redemptions: BigInt | None = strawberry.field(
        default=None, description="At least 1; null for no cap."
    )
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Offer it to this organization only."
    )
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="Offer it to this user's personal account only."
    )


@strawberry.input
class EndPromotionInput:
    id: strawberry.ID


@strawberry.type
class PromotionPayload(Payload):
    promotion: Promotion | None = None


@strawberry.type
class PromotionMutation:
    @mutation("Create a promotion (service token).")
    async def create_promotion(self, info: Info, input: CreatePromotionInput) -> PromotionPayload:
        promotion = await promotions.create_promotion(
            info.context,
            promotions.NewPromotion(
                code=input.code,
                credits=int(input.credits),
                description=input.description,
                starts_at=input.starts_at,
                expires_at=input.expires_at,
                max_redemptions=(
                    int(input.max_redemptions) if input.max_redemptions is not None else None
                ),
                organization_id=str(input.organization_id) if input.organization_id else None,
                user_id=str(input.user_id) if input.user_id else None,
            ),
        )
        return PromotionPayload(promotion=Promotion.for_operator(promotion))

    @mutation("End a promotion now: no more redemptions; redeemed credits keep their expiry.")
    async def end_promotion(self, info: Info, input: EndPromotionInput) -> PromotionPayload:
        promotion = await promotions.end_promotion(info.context, str(input.id))
        return PromotionPayload(promotion=Promotion.for_operator(promotion))
