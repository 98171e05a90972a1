"""Promotions: the operator creates and ends them (service token), an account lists and redeems
them, and expired promotional credits are swept (gateway/billing/promotions.py decides how)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.expression import ColumnElement
from sqlmodel import col

from gateway.billing import promotions as credits
from gateway.billing.ledger import lock_account, post_entry
from gateway.db.models import (
    Account,
    Organization,
    Payment,
    PaymentKind,
    PaymentStatus,
    Promotion,
    PromotionRedemption,
    User,
)
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.ids import prefix_of
from gateway.inputs import INT64_MAX
from resolvers import accounts, permissions
from resolvers.batching import BatchLoader
from resolvers.context import Context
from resolvers.keyset import page_of
from resolvers.pagination import Page, PageArgs

NOT_FOUND = "Promotion not found"
ALREADY_REDEEMED = "Promotion already redeemed"
FULLY_REDEEMED = "Promotion fully redeemed"

# What a promotion can be offered to: a user or an organization (neither when deleted).
Owner = TypeVar("Owner", Organization, User)

# Codes are typed by people: letters, digits, `-` and `_`, compared in upper case.
CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]*")
CODE_MIN, CODE_MAX = 3, 64
DESCRIPTION_MAX = 500


@dataclass(frozen=True)
class PromotionView:
    """A promotion as an account sees it: with when that account redeemed it."""

    promotion: Promotion
    redeemed_at: datetime | None

    @property
    def id(self) -> str:  # a page's cursor
        return self.promotion.id


def _offered_to(account_id: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        (col(Promotion.account_id).is_(None)) | (col(Promotion.account_id) == account_id),
        col(Promotion.starts_at) <= now,
        col(Promotion.expires_at) > now,
    ]


async def promotions_page(ctx: Context, account_id: str, args: PageArgs) -> Page[PromotionView]:
    """Active promotions offered to the account, newest first, with its redemption time."""
    page = await page_of(ctx.session, Promotion, args, where=_offered_to(account_id, ctx.now))
    ids = [p.id for p in page.items]
    redeemed: dict[str, datetime] = {}
    if ids:
        rows = await ctx.session.execute(
            select(
                col(PromotionRedemption.promotion_id), col(PromotionRedemption.redeemed_at)
            ).where(
                col(PromotionRedemption.account_id) == account_id,
                col(PromotionRedemption.promotion_id).in_(ids),
            )
        )
        redeemed = {promotion_id: at for promotion_id, at in rows.all()}
    return Page(
        [PromotionView(p, redeemed.get(p.id)) for p in page.items],
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
    )


# --- the operator's side -----------------------------------------------------------------


@dataclass(frozen=True)
class NewPromotion:
    """What an operator asks for; `expires_at` defaults to GATEWAY_PROMOTION_DEFAULT_DAYS."""

    code: str
    credits: int
    description: str = ""
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    max_redemptions: int | None = None
    # Offered to one account only (at most one of them); neither: to every account.
    organization_id: str | None = None
    user_id: str | None = None


def clean_code(code: str) -> str:
    code = code.strip().upper()
    if not CODE_MIN <= len(code) <= CODE_MAX or not CODE.fullmatch(code):
        raise ValidationFailed(
            f"code must be {CODE_MIN} to {CODE_MAX} letters, digits, '-' or '_'", field="code"
        )
    return code


def _instant(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailed(f"{field} needs a timezone (use Z for UTC)", field=field)
    return value.astimezone(UTC)


async def _live(
    loader: BatchLoader[str, Owner | None], owner_id: str, prefix: str, name: str
) -> Owner:
    """The live user or organization `owner_id` names (an id of another kind names none)."""
    owner = await loader.load(owner_id) if prefix_of(owner_id) == prefix else None
    if owner is None or owner.deleted_at is not None:
        raise NotFound(f"{name} not found")
    return owner


async def _target(ctx: Context, new: NewPromotion) -> str | None:
    """The account a promotion is offered to, or None for every account."""
    if new.organization_id and new.user_id:
        raise ValidationFailed("Give organizationId or userId, not both", field="organizationId")
    if new.organization_id:
        org = await _live(
            ctx.loaders.organization_by_id, new.organization_id, "org", "Organization"
        )
        return (await accounts.owner_account(ctx, user_id=None, organization_id=org.id)).id
    if new.user_id:
        user = await _live(ctx.loaders.user_by_id, new.user_id, "usr", "User")
        return (await accounts.owner_account(ctx, user_id=user.id, organization_id=None)).id
    return None


async def create_promotion(ctx: Context, new: NewPromotion) -> Promotion:
    """A new promotion (service token only), checked before anything is written."""
    permissions.require_service(ctx)
    settings, now = ctx.settings, ctx.now
    code = clean_code(new.code)
    if not 1 <= new.credits <= settings.promotion_max_credits:
        raise ValidationFailed(
            f"credits must be between 1 and {settings.promotion_max_credits}", field="credits"
        )
    description = new.description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise ValidationFailed(
            f"description must be at most {DESCRIPTION_MAX} characters", field="description"
        )
    starts_at = _instant(new.starts_at, "startsAt") if new.starts_at is not None else now
    if new.expires_at is not None:
        expires_at = _instant(new.expires_at, "expiresAt")
    else:
        expires_at = max(starts_at, now) + timedelta(days=settings.promotion_default_days)
    if expires_at <= now:
        raise ValidationFailed("expiresAt must be in the future", field="expiresAt")
    if expires_at <= starts_at:
        raise ValidationFailed("expiresAt must be after startsAt", field="expiresAt")
    if new.max_redemptions is not None and not 1 <= new.max_redemptions <= INT64_MAX:
        raise ValidationFailed(
            "maxRedemptions must be at least 1 (leave it out for no cap)", field="maxRedemptions"
        )
    promotion = Promotion(
        code=code,
        description=description,
        credits=new.credits,
        account_id=await _target(ctx, new),
        starts_at=starts_at,
        expires_at=expires_at,
        max_redemptions=new.max_redemptions,
    )
    session = ctx.session
    try:
        async with session.begin_nested():
            session.add(promotion)
            await session.flush()
    except IntegrityError:
        raise Conflict("A promotion with this code already exists", field="code") from None
    await session.commit()
    await session.refresh(promotion)
    return promotion


async def end_promotion(ctx: Context, promotion_id: str) -> Promotion:
    """End a promotion now (service token only): no more redemptions. Credits already
    redeemed keep their expiry: they were given."""
    permissions.require_service(ctx)
    session = ctx.session
    promotion = (
        await session.get(Promotion, promotion_id) if prefix_of(promotion_id) == "prm" else None
    )
    if promotion is None:
        raise NotFound(NOT_FOUND)
    now = ctx.now
    if promotion.expires_at > now:
        promotion.expires_at = max(now, promotion.starts_at)
        session.add(promotion)
        await session.commit()
        await session.refresh(promotion)
    return promotion


@dataclass(frozen=True)
class Sweep:
    accounts: int
    expired: int


async def expire_due(ctx: Context, *, batch: int = 100) -> Sweep:
    """Expire every account's promotional credits that are past due, one account per
    transaction (service token only): `gateway promotions expire` and the periodic sweep."""
    permissions.require_service(ctx)
    session, settled, expired = ctx.session, 0, 0
    seen: set[str] = set()
    while True:
        now = ctx.now
        due = [a for a in await credits.accounts_due(session, now, batch) if a not in seen]
        await session.rollback()
        if not due:
            return Sweep(settled, expired)
        for account_id in due:
            seen.add(account_id)
            part = await credits.settle(session, account_id, now)
            await session.commit()
            settled += 1
            expired += part.expired


# --- redeeming ---------------------------------------------------------------------------


async def redeem_promotion(ctx: Context, account: Account, *, code: str) -> Payment:
    """Credit an active promotion to the account, once: a `promotion` payment on the ledger,
    within the promotion's cap however many redeem it at once."""
    code = code.strip().upper()
    if not code:
        raise ValidationFailed("code is required", field="code")
    if len(code) > CODE_MAX:
        raise ValidationFailed(f"code must be at most {CODE_MAX} characters", field="code")
    session, now = ctx.session, ctx.now
    promotion = (
        await session.execute(
            select(Promotion).where(col(Promotion.code) == code, *_offered_to(account.id, now))
        )
    ).scalar_one_or_none()
    if promotion is None:
        raise NotFound(NOT_FOUND)
    # One redemption at a time per account, and on SQLite the transaction begins here, with
    # a write: a SAVEPOINT that began it would commit at its RELEASE (pysqlite's way).
    await lock_account(session, account.id)
    # Spending so far is settled before these credits join, so it is never charged to them.
    await credits.settle(session, account.id, now, write=True)
    payment = Payment(
        account_id=account.id,
        kind=PaymentKind.PROMOTION.value,
        status=PaymentStatus.SUCCEEDED.value,
        amount_cents=0,
        credits=int(promotion.credits),
        currency=account.currency,
        creator_user_id=ctx.user_id,
        provider="promotion",
        paid_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(
                PromotionRedemption(
                    promotion_id=promotion.id,
                    account_id=account.id,
                    redeemed_at=now,
                    credits=int(promotion.credits),
                    remaining=int(promotion.credits),
                    expires_at=promotion.expires_at,
                    settled_at=now,
                )
            )
            session.add(payment)
            await session.flush()
    except IntegrityError:
        raise Conflict(ALREADY_REDEEMED) from None
    # The cap is claimed by the statement that counts: under concurrency one claim of the
    # last slot matches (PostgreSQL re-checks the condition on the row it waited for; SQLite
    # runs one writer at a time).
    claimed = (
        await session.execute(
            update(Promotion)
            .where(
                col(Promotion.id) == promotion.id,
                col(Promotion.max_redemptions).is_(None)
                | (col(Promotion.redemption_count) < col(Promotion.max_redemptions)),
            )
            .values(redemption_count=col(Promotion.redemption_count) + 1)
            .returning(col(Promotion.id))
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if claimed is None:
        raise Conflict(FULLY_REDEEMED)
    posted = await post_entry(
        session,
        account_id=account.id,
        amount=int(promotion.credits),
        reason=PaymentKind.PROMOTION.value,
        idempotency_key=f"promotion:{promotion.id}:{account.id}",
        reference_id=payment.id,
    )
    if not posted.applied:
        raise Conflict(ALREADY_REDEEMED)
    await credits.holds_promotions(session, account.id)
    await session.commit()
    await session.refresh(payment)
    return payment
