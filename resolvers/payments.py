"""Payment operations on a billing account: history, checkout, purchase, payment methods and
auto top-up (promotions: resolvers/promotions.py). Each takes an Account already resolved (and authorized) by
`resolvers.accounts`, so user-level and organization-level routes share one implementation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col

from gateway.billing import idempotency, refunds
from gateway.billing.payments import (
    apply_payment_event,
    apply_setup_event,
    charge_default_method,
    ensure_customer,
    mark_unavailable,
    new_payment,
)
from gateway.billing.providers import (
    CardDetails,
    CheckoutRequest,
    PaymentProvider,
    ProviderError,
    ProviderPayment,
)
from gateway.db.models import (
    Account,
    Payment,
    PaymentKind,
    User,
    utcnow,
)
from gateway.errors import DomainError, NotFound, Unprocessable, ValidationFailed
from gateway.inputs import INT64_MAX, range_message
from resolvers import permissions
from resolvers.accounts import organization_account_row
from resolvers.context import Context
from resolvers.pagination import Page, PageArgs
from resolvers.permissions import ManagerAccess, PersonalAccess

NO_DEFAULT_METHOD = "No default payment method"


class ProviderUnavailable(DomainError):
    code = "PROVIDER_UNAVAILABLE"
    status = 502


def _provider(ctx: Context) -> PaymentProvider:
    provider: PaymentProvider | None = getattr(ctx.services, "payments", None)
    if provider is None:
        raise ProviderUnavailable("Payments are not configured")
    return provider


async def _email(ctx: Context, account: Account) -> str | None:
    if account.user_id is None:
        return None
    user: User | None = await ctx.loaders.user_by_id.load(account.user_id)
    return user.email if user is not None else None


async def _customer(ctx: Context, account: Account) -> str:
    try:
        return await ensure_customer(
            ctx.session, _provider(ctx), account, await _email(ctx, account)
        )
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc


def _check_amount(ctx: Context, amount_cents: int, field: str = "amountCents") -> None:
    low, high = ctx.settings.checkout_min_cents, ctx.settings.checkout_max_cents
    if not low <= amount_cents <= high:
        raise ValidationFailed(f"{field} must be between {low} and {high} cents", field=field)


def _check_url(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("https://", "http://")) or len(value) > 2048:
        raise ValidationFailed(f"{field} must be an http(s) URL", field=field)
    return value


# --- history -------------------------------------------------------------------------------


async def organization_payments_page(
    ctx: Context, access: ManagerAccess, args: PageArgs, *, succeeded_only: bool = False
) -> Page[Payment]:
    """The organization's payments, newest first, for its owners and admins (succeeded ones
    only for the REST history), read with its account in one statement: an organization
    without an account yet has none."""
    return await organization_payments_page_ahead(
        ctx, access.organization_id, args, succeeded_only=succeeded_only
    )


def organization_payments_page_ahead(
    ctx: Context, organization_id: str, args: PageArgs, *, succeeded_only: bool = False
) -> Awaitable[Page[Payment]]:
    """The read `organization_payments_page` makes, started before access is decided (a read
    ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    loader = (
        ctx.loaders.succeeded_organization_payment_pages_by_organization_id
        if succeeded_only
        else ctx.loaders.organization_payment_pages_by_organization_id
    )
    page: Awaitable[Page[Payment]] = loader.load((organization_id, args))
    return page


async def personal_payments(
    access: PersonalAccess, args: PageArgs, *, succeeded_only: bool = False
) -> Page[Payment]:
    """The caller's personal payments, newest first (succeeded ones only for the REST history),
    read with their account in one statement: a user without an account yet has none (the
    account is made when something is bought)."""
    loaders = access.ctx.loaders
    loader = (
        loaders.succeeded_personal_payment_pages_by_user_id
        if succeeded_only
        else loaders.personal_payment_pages_by_user_id
    )
    # Only ever the caller's own page: nothing to batch with.
    page: Page[Payment] = await loader.fetch((access.user_id, args))
    return page


async def personal_payments_page(
    ctx: Context, user_id: str, args: PageArgs, *, succeeded_only: bool = False
) -> Page[Payment] | None:
    """`User.payments`: `personal_payments` of the caller; None on anyone else."""
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    access = permissions.personal_access(ctx, user_id)
    return await personal_payments(access, args, succeeded_only=succeeded_only)


async def organization_payment_count(
    ctx: Context, access: ManagerAccess, *, succeeded_only: bool = False
) -> int:
    """How many payments the organization has (`organization_payments_page`'s `totalCount`)."""
    account = await organization_account_row(access)
    loader = (
        ctx.loaders.succeeded_payment_count_by_account_id
        if succeeded_only
        else ctx.loaders.payment_count_by_account_id
    )
    return int(await loader.load(account.id))


async def personal_payment_count(
    ctx: Context, user_id: str, *, succeeded_only: bool = False
) -> int | None:
    """How many personal payments the caller has (`personal_payments_page`'s `totalCount`);
    None on anyone else."""
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    loader = (
        ctx.loaders.succeeded_personal_payment_count_by_user_id
        if succeeded_only
        else ctx.loaders.personal_payment_count_by_user_id
    )
    return int(await loader.load(user_id))


async def get_payment(ctx: Context, account: Account, payment_id: str) -> Payment:
    payment: Payment | None = await ctx.loaders.payment_by_id.load(payment_id)
    if payment is None or payment.account_id != account.id:
        raise NotFound("Payment not found")
    return payment


async def visible_payment(ctx: Context, payment_id: str) -> Payment | None:
    """A payment of the caller's personal account or of an organization they manage."""
    payment = await ctx.loaders.payment_by_id.load(payment_id)
    if payment is None:
        return None
    seen = await permissions.may_read_account(ctx, payment.account_id, managers_only=True)
    return payment if seen else None


async def provider_payment(ctx: Context, account: Account, payment_id: str) -> ProviderPayment:
    """The provider's view of one of the account's payments."""
    return await provider_view(ctx, await get_payment(ctx, account, payment_id))


async def provider_view(ctx: Context, payment: Payment) -> ProviderPayment:
    """The provider's view of a payment the caller was already allowed to see."""
    from gateway.billing.providers.sandbox import SandboxProvider

    provider = _provider(ctx)
    source: PaymentProvider
    if payment.provider == provider.name:
        source = provider
    elif payment.provider == SandboxProvider.name:
        source = SandboxProvider()
    else:
        raise NotFound("This payment has no provider record")
    if not payment.provider_payment_id and payment.provider != SandboxProvider.name:
        raise NotFound("This payment has no provider record yet")
    try:
        return await source.retrieve_payment(payment)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider could not answer: {exc}") from exc


# --- buying credits ------------------------------------------------------------------------


async def _once(
    ctx: Context,
    account: Account,
    *,
    operation: str,
    key: str | None,
    request: Mapping[str, object],
    produce: Callable[[], Awaitable[Payment]],
) -> Payment:
    """Run `produce` once per idempotency key (GraphQL's `idempotencyKey`); a replay with
    the same request returns the first payment and moves no money."""
    if key is None:
        return await produce()
    key = idempotency.check_key(key, "idempotencyKey")
    session = ctx.session
    scope = idempotency.fit_scope(ctx.user_id, f"graphql {operation} {account.id}")
    first = await idempotency.claim(session, scope, key, idempotency.request_hash(request))
    if first is not None:
        replayed = await session.get(Payment, first.response_body or "", populate_existing=True)
        if replayed is None:
            raise NotFound("Payment not found")
        return replayed
    try:
        payment = await produce()
    except BaseException:
        await idempotency.release(session, scope, key)
        raise
    await idempotency.complete(session, scope, key, 200, payment.id)
    return payment


@dataclass(frozen=True)
class CheckoutResult:
    payment: Payment
    client_secret: str | None
    checkout_url: str | None


async def start_checkout(
    ctx: Context,
    account: Account,
    *,
    amount_cents: int,
    success_url: str | None = None,
    cancel_url: str | None = None,
    idempotency_key: str | None = None,
) -> CheckoutResult:
    """A pending payment and what a frontend needs to complete it (client secret or URL)."""
    _check_amount(ctx, amount_cents)
    success_url = _check_url(success_url, "successUrl")
    cancel_url = _check_url(cancel_url, "cancelUrl")

    async def produce() -> Payment:
        return await _checkout(ctx, account, amount_cents, success_url, cancel_url)

    request = {"amountCents": amount_cents, "successUrl": success_url, "cancelUrl": cancel_url}
    payment = await _once(
        ctx, account, operation="checkout", key=idempotency_key, request=request, produce=produce
    )
    return CheckoutResult(payment, payment.client_secret, payment.checkout_url)


async def _checkout(
    ctx: Context,
    account: Account,
    amount_cents: int,
    success_url: str | None,
    cancel_url: str | None,
) -> Payment:
    provider = _provider(ctx)
    customer_id = await _customer(ctx, account)
    session = ctx.session
    payment = await new_payment(
        session,
        ctx.settings,
        provider,
        account,
        kind=PaymentKind.CHECKOUT,
        amount_cents=amount_cents,
        creator_user_id=ctx.user_id,
    )
    try:
        checkout = await provider.start_checkout(
            CheckoutRequest(
                customer_id=customer_id,
                payment_id=payment.id,
                amount_cents=amount_cents,
                currency=payment.currency,
                success_url=success_url,
                cancel_url=cancel_url,
            )
        )
    except ProviderError as exc:
        await mark_unavailable(session, payment)
        raise ProviderUnavailable(f"The payment provider refused the checkout: {exc}") from exc
    await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id)
        .values(
            provider_payment_id=checkout.provider_payment_id,
            client_secret=checkout.client_secret,
            checkout_url=checkout.checkout_url,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if checkout.event is not None:
        await apply_payment_event(session, checkout.event)
    await session.commit()
    await session.refresh(payment)
    return payment


async def purchase_credits(
    ctx: Context, account: Account, *, amount_cents: int, idempotency_key: str | None = None
) -> Payment:
    """Charge the default payment method off-session; a decline is a failed payment."""
    _check_amount(ctx, amount_cents)

    async def produce() -> Payment:
        if not account.default_payment_method_id:
            raise Unprocessable(NO_DEFAULT_METHOD)
        await _customer(ctx, account)
        provider = _provider(ctx)
        payment = await new_payment(
            ctx.session,
            ctx.settings,
            provider,
            account,
            kind=PaymentKind.PURCHASE,
            amount_cents=amount_cents,
            creator_user_id=ctx.user_id,
        )
        return await charge_default_method(ctx.session, provider, account, payment)

    return await _once(
        ctx,
        account,
        operation="purchase",
        key=idempotency_key,
        request={"amountCents": amount_cents},
        produce=produce,
    )


# --- payment methods -----------------------------------------------------------------------


async def default_payment_method(ctx: Context, account: Account) -> CardDetails:
    if not account.default_payment_method_id:
        raise NotFound(NO_DEFAULT_METHOD)
    try:
        card = await _provider(ctx).card_details(account.default_payment_method_id)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider could not answer: {exc}") from exc
    if card is None:
        raise NotFound(NO_DEFAULT_METHOD)
    return card


@dataclass(frozen=True)
class SetupResult:
    setup_intent_id: str
    client_secret: str
    url: str | None


async def start_payment_method_setup(
    ctx: Context, account: Account, *, return_url: str | None = None
) -> SetupResult:
    """Start saving a card for off-session use; it becomes the default once set up."""
    return_url = _check_url(return_url, "returnUrl")
    provider = _provider(ctx)
    customer_id = await _customer(ctx, account)
    try:
        setup = await provider.start_setup(customer_id=customer_id, return_url=return_url)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the setup: {exc}") from exc
    if setup.event is not None:
        await apply_setup_event(ctx.session, setup.event)
        await ctx.session.commit()
    return SetupResult(setup.setup_intent_id, setup.client_secret, setup.url)


# --- auto top-up ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoTopUp:
    enabled: bool
    threshold: int
    amount_cents: int


def auto_top_up(account: Account) -> AutoTopUp:
    return AutoTopUp(
        enabled=account.auto_top_up_enabled,
        threshold=int(account.auto_top_up_threshold),
        amount_cents=int(account.auto_top_up_amount_cents),
    )


async def update_auto_top_up(
    ctx: Context, account: Account, *, enabled: bool, threshold: int, amount_cents: int
) -> AutoTopUp:
    # Each top-up is a charge like a checkout: the same bounds (no one-cent charges).
    _check_amount(ctx, amount_cents)
    if not 0 <= threshold <= INT64_MAX:
        raise ValidationFailed(range_message("threshold", 0), field="threshold")
    if enabled and not account.default_payment_method_id:
        raise Unprocessable(f"{NO_DEFAULT_METHOD}: add one before enabling auto top-up")
    account.auto_top_up_enabled = enabled
    account.auto_top_up_threshold = threshold
    account.auto_top_up_amount_cents = amount_cents
    account.updated_at = utcnow()
    ctx.session.add(account)
    await ctx.session.commit()
    return auto_top_up(account)


# --- refunds (operators) ---------------------------------------------------------------------


async def refund_payment(ctx: Context, payment_id: str, amount_cents: int | None = None) -> Payment:
    """An operator's refund (the service token; `gateway payments refund` runs this too): all
    that is left of a succeeded payment, or `amount_cents` of it, through its provider, and its
    share of the credits taken back as Stripe's refund webhooks would (gateway/billing/refunds)."""
    permissions.require_service(ctx)
    if amount_cents is not None and not 0 < amount_cents <= INT64_MAX:
        raise ValidationFailed(range_message("amountCents", 1, INT64_MAX), field="amountCents")
    try:
        return await refunds.refund_payment(
            ctx.session, _provider(ctx), payment_id, amount_cents=amount_cents
        )
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the refund: {exc}") from exc
