"""REST handlers for balances, payments, credits, payment methods, auto top-up, promotions.

User routes (`/users/{id}/…`, `/users/credits/checkout`) act on the caller's personal account and
organization routes (`/organizations/{orgId}/…`) on the organization's: one handler serves both.
"""

from __future__ import annotations

from pydantic import Field

from gateway.db.models import Account, Payment
from gateway.rest.framework import Call, rest
from gateway.rest.wire import (
    NonNegativeInt64,
    PageQuery,
    PositiveInt64,
    Timestamp,
    Wire,
    WireIn,
    from_settings,
)
from resolvers import accounts, payments


async def _account(call: Call, *, manage: bool = True) -> Account:
    org_id = call.path.get("orgId")
    if org_id:
        return await accounts.organization_account(call.ctx, org_id, manage=manage)
    return await accounts.personal_account(call.ctx, call.path.get("id"))


class UserBalanceOut(Wire):
    balance: int = Field(description="Micro-USD (1 USD = 1,000,000)")
    user_id: str


class OrganizationBalanceOut(Wire):
    balance: int = Field(description="Micro-USD (1 USD = 1,000,000)")
    organization_id: str


class PaymentTransactionOut(Wire):
    paid_at: Timestamp
    creator_id: str = Field(description="User who paid; empty for automatic top-ups")
    amount_cents: int
    credits: int = Field(description="Micro-USD credited")
    id: str
    status: str


class PaymentTransactionsOut(Wire):
    payment_transactions: list[PaymentTransactionOut]
    next_cursor: str | None


class PaymentOut(Wire):
    id: str
    status: str
    kind: str
    amount_cents: int
    credits: int = Field(description="Micro-USD credited when the payment succeeds")
    currency: str
    creator_id: str = Field(description="User who started the payment; empty for automatic ones")
    created_at: Timestamp
    paid_at: Timestamp | None
    failure_reason: str | None

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            status=payment.status,
            kind=payment.kind,
            amount_cents=payment.amount_cents,
            credits=payment.credits,
            currency=payment.currency,
            creator_id=payment.creator_user_id or "",
            created_at=payment.created_at,
            paid_at=payment.paid_at,
            failure_reason=payment.failure_reason,
        )


class PaymentStatusOut(Wire):
    id: str
    status: str
    updated_at: Timestamp


class CardOut(Wire):
    brand: str | None
    last4: str | None


class ProviderPaymentOut(Wire):
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


class CheckoutOut(Wire):
    payment_id: str
    status: str
    amount_cents: int
    credits: int
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


class AutoTopUpOut(Wire):
    enabled: bool
    threshold: int
    amount_cents: int

    @classmethod
    def of(cls, value: payments.AutoTopUp) -> AutoTopUpOut:
        return cls(
            enabled=value.enabled, threshold=value.threshold, amount_cents=value.amount_cents
        )


class PaymentMethodOut(Wire):
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class SetupSessionIn(WireIn):
    return_url: str | None = Field(default=None, max_length=URL_MAX)


class SetupSessionOut(Wire):
    setup_intent_id: str
    client_secret: str
    url: str | None


class PromotionOut(Wire):
    id: str
    code: str
    description: str
    credits: int
    starts_at: Timestamp
    expires_at: Timestamp
    redeemed_at: Timestamp | None


class PromotionsOut(Wire):
    items: list[PromotionOut]


@rest(response=UserBalanceOut)
async def get_user_balance(call: Call) -> UserBalanceOut:
    balance = await accounts.user_balance(call.ctx, call.path["id"])
    return UserBalanceOut(balance=balance.amount, user_id=balance.user_id or "")


@rest(response=OrganizationBalanceOut)
async def get_organization_balance(call: Call) -> OrganizationBalanceOut:
    balance = await accounts.organization_balance(call.ctx, call.path["orgId"])
    return OrganizationBalanceOut(
        balance=balance.amount, organization_id=balance.organization_id or ""
    )


@rest(query=PageQuery, response=PaymentTransactionsOut)
async def list_payments(call: Call) -> PaymentTransactionsOut:
    account = await _account(call)
    page = await payments.payments_page(
        call.ctx, account, call.query.page_args(call.ctx), succeeded_only=True
    )
    return PaymentTransactionsOut(
        payment_transactions=[
            PaymentTransactionOut(
                paid_at=p.paid_at or p.updated_at,
                creator_id=p.creator_user_id or "",
                amount_cents=p.amount_cents,
                credits=p.credits,
                id=p.id,
                status=p.status,
            )
            for p in page.items
        ],
        next_cursor=page.next_cursor,
    )


@rest(response=ProviderPaymentOut)
async def get_provider_payment(call: Call) -> ProviderPaymentOut:
    view = await payments.provider_payment(call.ctx, await _account(call), call.path["paymentId"])
    card = (
        CardOut(brand=view.card_brand, last4=view.card_last4)
        if view.card_brand or view.card_last4
        else None
    )
    return ProviderPaymentOut(
        provider=view.provider,
        provider_payment_id=view.provider_payment_id,
        status=view.status,
        amount_received_cents=view.amount_received_cents,
        currency=view.currency,
        payment_method=card,
        receipt_url=view.receipt_url,
    )


@rest(response=PaymentOut)
async def get_payment(call: Call) -> PaymentOut:
    payment = await payments.get_payment(call.ctx, await _account(call), call.path["paymentId"])
    return PaymentOut.of(payment)


@rest(response=PaymentStatusOut)
async def get_payment_status(call: Call) -> PaymentStatusOut:
    payment = await payments.get_payment(call.ctx, await _account(call), call.path["paymentId"])
    return PaymentStatusOut(id=payment.id, status=payment.status, updated_at=payment.updated_at)


@rest(body=CheckoutIn, response=CheckoutOut, status=201, idempotent=True)
async def start_checkout(call: Call) -> CheckoutOut:
    result = await payments.start_checkout(
        call.ctx,
        await _account(call),
        amount_cents=call.body.amount_cents,
        success_url=call.body.success_url,
        cancel_url=call.body.cancel_url,
    )
    return CheckoutOut(
        payment_id=result.payment.id,
        status=result.payment.status,
        amount_cents=result.payment.amount_cents,
        credits=result.payment.credits,
        client_secret=result.client_secret,
        checkout_url=result.checkout_url,
    )


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
    return PaymentMethodOut(
        id=card.id,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
    )


@rest(body=SetupSessionIn, response=SetupSessionOut, status=201)
async def start_payment_method_setup(call: Call) -> SetupSessionOut:
    setup = await payments.start_payment_method_setup(
        call.ctx, await _account(call), return_url=call.body.return_url
    )
    return SetupSessionOut(
        setup_intent_id=setup.setup_intent_id, client_secret=setup.client_secret, url=setup.url
    )


@rest(response=PromotionsOut)
async def list_promotions(call: Call) -> PromotionsOut:
    found = await payments.promotions(call.ctx, await _account(call))
    return PromotionsOut(
        items=[
            PromotionOut(
                id=v.promotion.id,
                code=v.promotion.code,
                description=v.promotion.description,
                credits=v.promotion.credits,
                starts_at=v.promotion.starts_at,
                expires_at=v.promotion.expires_at,
                redeemed_at=v.redeemed_at,
            )
            for v in found
        ]
    )
