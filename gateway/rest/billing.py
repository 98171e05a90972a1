"""REST handlers for balances, payments, credits, payment methods, auto top-up, promotions.

User routes (`/users/{id}/…`, `/users/credits/checkout`) act on the caller's personal account and
organization routes (`/organizations/{orgId}/…`) on the organization's: one handler serves both.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasPath, Field

from gateway.db.models import Account
from gateway.rest.framework import Call, rest
from gateway.rest.wire import (
    EmptyIfNone,
    NonNegativeInt64,
    Out,
    PageQuery,
    PositiveInt64,
    Timestamp,
    WireIn,
    from_settings,
)
from resolvers import accounts, payments, permissions, promotions


async def _account(call: Call) -> Account:
    """The account a route acts on: the organization's, for its owners and admins, or the
    caller's personal one (`/users/{id}/…`: the caller's own id only)."""
    org_id = call.path.get("orgId")
    if org_id:
        return await accounts.organization_account(
            await permissions.manager_access(call.ctx, org_id)
        )
    return await accounts.personal_account(
        permissions.personal_access(call.ctx, call.path.get("id"))
    )


Balance = Annotated[
    int, Field(validation_alias="amount", description="Micro-USD (1 USD = 1,000,000)")
]


PromotionalBalance = Annotated[
    int,
    Field(
        validation_alias="promotional_amount",
        description="Micro-USD of `balance` that are promotional credits (spent first; they "
        "expire)",
    ),
]
PromotionalExpiresAt = Annotated[
    Timestamp | None,
    Field(
        validation_alias="promotional_expires_at",
        description="When the next promotional credits expire; null when none are left",
    ),
]


class UserBalanceOut(Out):
    balance: Balance
    user_id: EmptyIfNone
    promotional_balance: PromotionalBalance
    promotional_expires_at: PromotionalExpiresAt


class OrganizationBalanceOut(Out):
    balance: Balance
    organization_id: EmptyIfNone
    promotional_balance: PromotionalBalance
    promotional_expires_at: PromotionalExpiresAt


class PaymentTransactionOut(Out):
    paid_at: Timestamp
    creator_id: EmptyIfNone = Field(
        validation_alias="creator_user_id",
        description="User who paid; empty for automatic top-ups",
    )
    amount_cents: int
    credits: int = Field(description="Micro-USD credited")
    id: str
    status: str


class PaymentTransactionsOut(Out):
    payment_transactions: list[PaymentTransactionOut]
    next_cursor: str | None


class PaymentOut(Out):
    id: str
    status: str
    kind: str
    amount_cents: int
    credits: int = Field(description="Micro-USD credited when the payment succeeds")
    currency: str
    creator_id: EmptyIfNone = Field(
        validation_alias="creator_user_id",
        description="User who started the payment; empty for automatic ones",
    )
    created_at: Timestamp
    paid_at: Timestamp | None
    failure_reason: str | None


class PaymentStatusOut(Out):
    id: str
    status: str
    updated_at: Timestamp


class CardOut(Out):
    brand: str | None = Field(validation_alias="card_brand")
    last4: str | None = Field(validation_alias="card_last4")


class ProviderPaymentOut(Out):
    provider: str
    provider_payment_id: str
    status: str
    amount_received_cents: int
    currency: str
    payment_method: CardOut | None
    receipt_url: str | None


# A URL the provider sends the payer back to (the longest a column keeps).
URL_MAX = 2048


# Every charge: between GATEWAY_CHECKOUT_MIN_CENTS and GATEWAY_CHECKOUT_MAX_CENTS.
CHARGE_CENTS = from_settings(minimum="checkout_min_cents", maximum="checkout_max_cents")


class CheckoutIn(WireIn):
    amount_cents: PositiveInt64 = Field(
        description="Cents, between GATEWAY_CHECKOUT_MIN_CENTS and GATEWAY_CHECKOUT_MAX_CENTS",
        json_schema_extra=CHARGE_CENTS,
    )
    success_url: str | None = Field(default=None, max_length=URL_MAX)
    cancel_url: str | None = Field(default=None, max_length=URL_MAX)


class CheckoutOut(Out):
    payment_id: str = Field(validation_alias=AliasPath("payment", "id"))
    status: str = Field(validation_alias=AliasPath("payment", "status"))
    amount_cents: int = Field(validation_alias=AliasPath("payment", "amount_cents"))
    credits: int = Field(validation_alias=AliasPath("payment", "credits"))
    client_secret: str | None
    checkout_url: str | None


class PurchaseIn(WireIn):
    amount_cents: PositiveInt64 = Field(
        description="Cents, between GATEWAY_CHECKOUT_MIN_CENTS and GATEWAY_CHECKOUT_MAX_CENTS",
        json_schema_extra=CHARGE_CENTS,
    )


class AutoTopUpIn(WireIn):
    enabled: bool
    threshold: NonNegativeInt64 = Field(description="Micro-USD; a top-up starts below it")
    amount_cents: PositiveInt64 = Field(
        description="Cents per top-up, between GATEWAY_CHECKOUT_MIN_CENTS and "
        "GATEWAY_CHECKOUT_MAX_CENTS",
        json_schema_extra=CHARGE_CENTS,
    )


class AutoTopUpOut(Out):
    enabled: bool
    threshold: int
    amount_cents: int


class PaymentMethodOut(Out):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class SetupSessionIn(WireIn):
    return_url: str | None = Field(default=None, max_length=URL_MAX)


class SetupSessionOut(Out):
    setup_intent_id: str
    client_secret: str
    url: str | None


class PromotionOut(Out):
    id: str
    code: str
    description: str
    credits: int
    starts_at: Timestamp
    expires_at: Timestamp
    redeemed_at: Timestamp | None


class PromotionsOut(Out):
    items: list[PromotionOut]
    next_cursor: str | None


class RedeemPromotionIn(WireIn):
    code: str = Field(min_length=1, max_length=promotions.CODE_MAX)


@rest(response=UserBalanceOut)
async def get_user_balance(call: Call) -> UserBalanceOut:
    access = permissions.personal_access(call.ctx, call.path["id"])
    return UserBalanceOut.of(await accounts.user_balance(access))


@rest(response=OrganizationBalanceOut)
async def get_organization_balance(call: Call) -> OrganizationBalanceOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    balance = await accounts.organization_balance(access)
    return OrganizationBalanceOut.of(balance)


@rest(query=PageQuery, response=PaymentTransactionsOut)
async def list_payments(call: Call) -> PaymentTransactionsOut:
    ctx, org_id = call.ctx, call.path.get("orgId")
    args = call.query.page_args(ctx)
    if org_id:
        access = await permissions.manager_access(ctx, org_id)
        page = await payments.organization_payments_page(ctx, access, args, succeeded_only=True)
    else:
        personal = permissions.personal_access(ctx, call.path.get("id"))
        page = await payments.personal_payments(personal, args, succeeded_only=True)
    return PaymentTransactionsOut(
        # A payment without its time of payment shows when it last changed.
        payment_transactions=[
            PaymentTransactionOut.of(p, paid_at=p.paid_at or p.updated_at) for p in page.items
        ],
        next_cursor=page.next_cursor,
    )


@rest(response=ProviderPaymentOut)
async def get_provider_payment(call: Call) -> ProviderPaymentOut:
    view = await payments.provider_payment(call.ctx, await _account(call), call.path["paymentId"])
    card = CardOut.of(view) if view.card_brand or view.card_last4 else None
    return ProviderPaymentOut.of(view, payment_method=card)


@rest(response=PaymentOut)
async def get_payment(call: Call) -> PaymentOut:
    payment = await payments.get_payment(call.ctx, await _account(call), call.path["paymentId"])
    return PaymentOut.of(payment)


@rest(response=PaymentStatusOut)
async def get_payment_status(call: Call) -> PaymentStatusOut:
    payment = await payments.get_payment(call.ctx, await _account(call), call.path["paymentId"])
    return PaymentStatusOut.of(payment)


@rest(body=CheckoutIn, response=CheckoutOut, status=201, idempotent=True)
async def start_checkout(call: Call) -> CheckoutOut:
    result = await payments.start_checkout(
        call.ctx,
        await _account(call),
        amount_cents=call.body.amount_cents,
        success_url=call.body.success_url,
        cancel_url=call.body.cancel_url,
    )
    return CheckoutOut.of(result)


@rest(body=PurchaseIn, response=PaymentOut, status=201, idempotent=True)
async def purchase_credits(call: Call) -> PaymentOut:
    payment = await payments.purchase_credits(
        call.ctx, await _account(call), amount_cents=call.body.amount_cents
    )
    return PaymentOut.of(payment)


@rest(response=AutoTopUpOut)
async def get_auto_top_up(call: Call) -> AutoTopUpOut:
    return AutoTopUpOut.of(payments.auto_top_up(await _account(call)))


@rest(body=AutoTopUpIn, response=AutoTopUpOut)
async def put_auto_top_up(call: Call) -> AutoTopUpOut:
    updated = await payments.update_auto_top_up(
        call.ctx,
        await _account(call),
        enabled=call.body.enabled,
        threshold=call.body.threshold,
        amount_cents=call.body.amount_cents,
    )
    return AutoTopUpOut.of(updated)


@rest(response=PaymentMethodOut)
async def get_default_payment_method(call: Call) -> PaymentMethodOut:
    card = await payments.default_payment_method(call.ctx, await _account(call))
    return PaymentMethodOut.of(card)


@rest(body=SetupSessionIn, response=SetupSessionOut, status=201)
async def start_payment_method_setup(call: Call) -> SetupSessionOut:
    setup = await payments.start_payment_method_setup(
        call.ctx, await _account(call), return_url=call.body.return_url
    )
    return SetupSessionOut.of(setup)


@rest(query=PageQuery, response=PromotionsOut)
async def list_promotions(call: Call) -> PromotionsOut:
    account = await _account(call)
    page = await promotions.promotions_page(call.ctx, account.id, call.query.page_args(call.ctx))
    return PromotionsOut(
        items=[PromotionOut.of(v.promotion, redeemed_at=v.redeemed_at) for v in page.items],
        next_cursor=page.next_cursor,
    )


@rest(body=RedeemPromotionIn, response=PaymentOut, status=201, idempotent=True)
async def redeem_promotion(call: Call) -> PaymentOut:
    payment = await promotions.redeem_promotion(call.ctx, await _account(call), code=call.body.code)
    return PaymentOut.of(payment)
