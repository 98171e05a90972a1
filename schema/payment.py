"""GraphQL payments and credits: Balance, Payment, the billing account's settings, and the
mutations that buy credits. Relation fields are attached to User and Organization with
`strawberry.field(resolver=…)` from here."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from gateway.db import models
from gateway.errors import NotFound
from resolvers import accounts, payments, permissions, promotions
from resolvers.context import Context
from schema import declare
from schema.errors import Payload, mutation
from schema.promotion import Promotion
from schema.relay import Node, connection
from schema.rows import FromReaders, from_row
from schema.scalars import BigInt, enum_of

if TYPE_CHECKING:
    from schema.organization import Organization


@strawberry.enum(description="Where a payment stands.")
class PaymentStatus(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"


@strawberry.enum(description="How a payment came about.")
class PaymentKind(enum.Enum):
    CHECKOUT = "checkout"
    PURCHASE = "purchase"
    AUTO_TOP_UP = "auto_top_up"
    PROMOTION = "promotion"


@strawberry.type(description="A credit balance in micro-credits (1 USD = 1,000,000).")
class Balance:
    amount: BigInt
    currency: str
    promotional_amount: BigInt = strawberry.field(
        description="The part of `amount` that is promotional credits: spent first, and "
        "what is left of them expires."
    )
    promotional_expires_at: datetime | None = strawberry.field(
        description="When the next promotional credits expire; null when none are left."
    )


@strawberry.type(description="A payment card, as the provider describes it (never its number).")
class PaymentMethod:
    id: strawberry.ID
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@strawberry.type(description="The payment provider's view of a payment.")
class ProviderPaymentDetails:
    provider: str
    provider_payment_id: str
    status: str
    amount_received_cents: int
    currency: str
    card_brand: str | None
    card_last4: str | None
    receipt_url: str | None


@strawberry.type
class Payment(Node, FromReaders[models.Payment]):
    id: strawberry.ID
    status: PaymentStatus
    kind: PaymentKind
    amount_cents: int
    credits: BigInt = strawberry.field(description="Micro-credits added when it succeeds.")
    currency: str
    creator_id: strawberry.ID | None = strawberry.field(
        description="The user who started it; null for automatic top-ups."
    )
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None
    _model: strawberry.Private[models.Payment]

    @strawberry.field(description="The payment provider's record of it (asks the provider).")
    async def provider_details(self, info: Info) -> ProviderPaymentDetails:
        return from_row(
            ProviderPaymentDetails, await payments.provider_view(info.context, self._model)
        )


def _status(value: str) -> PaymentStatus:
    return enum_of(PaymentStatus, value)


def _kind(value: str) -> PaymentKind:
    return enum_of(PaymentKind, value)


def _creator(user_id: str | None) -> strawberry.ID | None:
    return strawberry.ID(user_id) if user_id else None


Payment.readers = declare.RecordReaders(
    [
        ("id", "id", None),
        ("status", "status", _status),
        ("kind", "kind", _kind),
        ("amount_cents", "amount_cents", None),
        ("credits", "credits", None),
        ("currency", "currency", None),
        ("creator_id", "creator_user_id", _creator),
        ("failure_reason", "failure_reason", None),
        ("created_at", "created_at", None),
        ("updated_at", "updated_at", None),
        ("paid_at", "paid_at", None),
    ]
)
# What each Payment field reads of its row (schema/declare.py); the provider's view needs
# the whole row.
declare.node_type(
    "Payment",
    Payment.readers,
    always=("id", "account_id"),
    others={"providerDetails": None},
    model=models.Payment,
    enums={"status": PaymentStatus, "kind": PaymentKind},
)


@strawberry.type(description="Automatic purchase when the balance falls below a threshold.")
class AutoTopUp:
    enabled: bool
    threshold: BigInt = strawberry.field(description="Micro-credits.")
    amount_cents: int


@strawberry.type(description="A billing account (personal or an organization's) and its settings.")
class BillingAccount:
    id: strawberry.ID
    auto_top_up: AutoTopUp
    _model: strawberry.Private[models.Account]

    @classmethod
    def from_model(cls, account: models.Account) -> BillingAccount:
        return from_row(
            cls, account, auto_top_up=from_row(AutoTopUp, payments.auto_top_up(account))
        )

    @strawberry.field(description="The balance, with its promotional part.")
    async def balance(self, info: Info) -> Balance:
        return from_row(Balance, await accounts.settled_balance(info.context, self._model))

    @strawberry.field(description="The saved card charged off-session; null if none.")
    async def default_payment_method(self, info: Info) -> PaymentMethod | None:
        try:
            return from_row(
                PaymentMethod, await payments.default_payment_method(info.context, self._model)
            )
        except NotFound:
            return None

    promotions = connection(
        Promotion,
        promotions.promotions_page,
        description="Active promotions offered to this account, newest first.",
    )

    @strawberry.field(description="One of this account's payments.")
    async def payment(self, info: Info, id: strawberry.ID) -> Payment | None:
        try:
            return Payment.from_model(
                await payments.get_payment(info.context, self._model, str(id))
            )
        except NotFound:
            return None


# --- relation fields for User (your own only: null on other users) ---------------------------


@strawberry.type(description="The account a user's usage is billed to.")
class ActiveAccount:
    organization: Annotated[Organization, strawberry.lazy("schema.organization")] | None = (
        strawberry.field(description="The organization billed; null for the personal account.")
    )
    balance: Balance


async def user_active_account(root: Any, info: Info) -> ActiveAccount | None:
    """Where your usage is billed, with its balance; null on other users."""
    from schema.organization import Organization

    found = await accounts.active_account(info.context, root._model.id)
    if found is None:
        return None
    org = Organization.from_model(found.organization) if found.organization is not None else None
    return ActiveAccount(organization=org, balance=from_row(Balance, found.balance))


async def user_balance(root: Any, info: Info) -> Balance | None:
    """Your personal balance; null on other users."""
    account = await accounts.own_personal_account(info.context, root._model.id)
    if account is None:
        return None
    return from_row(Balance, await accounts.settled_balance(info.context, account))


async def user_billing_account(root: Any, info: Info) -> BillingAccount | None:
    """Your personal billing account; null on other users."""
    account = await accounts.own_personal_account(info.context, root._model.id)
    return BillingAccount.from_model(account) if account is not None else None


# --- relation fields for Organization ---------------------------------------------------------


@declare.reads_ahead(
    lambda org_id, info: accounts.organization_account_row_ahead(info.context, org_id)
)
async def organization_balance(root: Any, info: Info) -> Balance:
    """The organization's balance (any member)."""
    access = await permissions.member_access(info.context, root._model.id)
    return from_row(Balance, await accounts.organization_balance(access))


@declare.reads_ahead(
    lambda org_id, info: accounts.organization_account_row_ahead(info.context, org_id)
)
async def organization_billing_account(root: Any, info: Info) -> BillingAccount | None:
    """The organization's billing account (owners and admins)."""
    return BillingAccount.from_model(
        await managed_organization_account(info.context, root._model.id)
    )


async def managed_organization_account(ctx: Context, organization_id: str) -> models.Account:
    """The organization's account, for its owners and admins (its payments, its settings)."""
    return await accounts.organization_account_row(
        await permissions.manager_access(ctx, organization_id)
    )


# --- mutations --------------------------------------------------------------------------------


async def _account(info: Info, organization_id: strawberry.ID | None) -> models.Account:
    """The account a billing mutation acts on: the organization's, or (null) your personal one."""
    return await accounts.billing_account(
        info.context, organization_id=str(organization_id) if organization_id else None
    )


@strawberry.input
class StartCheckoutInput:
    amount_cents: int
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Buy for this organization; null for your personal account."
    )
    success_url: str | None = None
    cancel_url: str | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first checkout."
    )


@strawberry.type(description="What a frontend needs to complete a checkout.")
class Checkout:
    payment: Payment
    client_secret: str | None
    checkout_url: str | None


@strawberry.type
class StartCheckoutPayload(Payload):
    checkout: Checkout | None = None


@strawberry.input
class PurchaseCreditsInput:
    amount_cents: int
    organization_id: strawberry.ID | None = None
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key returns the first payment."
    )


@strawberry.type
class PaymentPayload(Payload):
    payment: Payment | None = None


@strawberry.input
class RefundPaymentInput:
    payment_id: strawberry.ID
    amount_cents: int | None = strawberry.field(
        default=None, description="A partial refund's amount; all that is left when absent."
    )


@strawberry.input
class StartPaymentMethodSetupInput:
    organization_id: strawberry.ID | None = None
    return_url: str | None = None


@strawberry.type(description="A started payment-method setup (a SetupIntent on Stripe).")
class PaymentMethodSetup:
    setup_intent_id: str
    client_secret: str
    url: str | None


@strawberry.type
class StartPaymentMethodSetupPayload(Payload):
    setup: PaymentMethodSetup | None = None


@strawberry.input
class UpdateAutoTopUpInput:
    enabled: bool
    threshold: BigInt = strawberry.field(description="Micro-credits; a top-up starts below it.")
    amount_cents: int
    organization_id: strawberry.ID | None = None


@strawberry.type
class UpdateAutoTopUpPayload(Payload):
    auto_top_up: AutoTopUp | None = None


@strawberry.input
class RedeemPromotionInput:
    code: str
    organization_id: strawberry.ID | None = None


@strawberry.type
class PaymentMutation:
    @mutation("Start buying credits; complete it with the client secret.")
    async def start_checkout(self, info: Info, input: StartCheckoutInput) -> StartCheckoutPayload:
        account = await _account(info, input.organization_id)
        result = await payments.start_checkout(
            info.context,
            account,
            amount_cents=input.amount_cents,
            success_url=input.success_url,
            cancel_url=input.cancel_url,
            idempotency_key=input.idempotency_key,
        )
        checkout = from_row(Checkout, result, payment=Payment.from_model(result.payment))
        return StartCheckoutPayload(checkout=checkout)

    @mutation("Buy credits with the default payment method, off-session.")
    async def purchase_credits(self, info: Info, input: PurchaseCreditsInput) -> PaymentPayload:
        account = await _account(info, input.organization_id)
        payment = await payments.purchase_credits(
            info.context,
            account,
            amount_cents=input.amount_cents,
            idempotency_key=input.idempotency_key,
        )
        return PaymentPayload(payment=Payment.from_model(payment))

    @mutation("Start saving a card; it becomes the default payment method.")
    async def start_payment_method_setup(
        self, info: Info, input: StartPaymentMethodSetupInput
    ) -> StartPaymentMethodSetupPayload:
        account = await _account(info, input.organization_id)
        setup = await payments.start_payment_method_setup(
            info.context, account, return_url=input.return_url
        )
        return StartPaymentMethodSetupPayload(setup=from_row(PaymentMethodSetup, setup))

    @mutation("Change auto top-up (enabling needs a default payment method).")
    async def update_auto_top_up(
        self, info: Info, input: UpdateAutoTopUpInput
    ) -> UpdateAutoTopUpPayload:
        account = await _account(info, input.organization_id)
        value = await payments.update_auto_top_up(
            info.context,
            account,
            enabled=input.enabled,
            threshold=int(input.threshold),
            amount_cents=input.amount_cents,
        )
        return UpdateAutoTopUpPayload(auto_top_up=from_row(AutoTopUp, value))

    @mutation(
        "Refund a succeeded payment (service token): all that is left of it, or amountCents; "
        "its share of the credits leaves the balance, which may go negative."
    )
    async def refund_payment(self, info: Info, input: RefundPaymentInput) -> PaymentPayload:
        payment = await payments.refund_payment(
            info.context, str(input.payment_id), input.amount_cents
        )
        return PaymentPayload(payment=Payment.from_model(payment))

    @mutation("Add an active promotion's credits to an account, once.")
    async def redeem_promotion(self, info: Info, input: RedeemPromotionInput) -> PaymentPayload:
        account = await _account(info, input.organization_id)
        payment = await promotions.redeem_promotion(info.context, account, code=input.code)
        return PaymentPayload(payment=Payment.from_model(payment))
