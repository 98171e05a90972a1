"""Promotions' loaders: how many redemptions of an account still hold promotional credits, so
that a page of balances settles only the accounts that have any (one statement a level)."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.models import PromotionRedemption
from resolvers.loaders.shapes import CountByKey

live_redemption_count_by_account_id = CountByKey(
    PromotionRedemption,
    col(PromotionRedemption.account_id),
    where=(
        col(PromotionRedemption.remaining) > 0,
        col(PromotionRedemption.expired_at).is_(None),
    ),
)
