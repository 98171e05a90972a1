"""Payments on the ledger: one code path for every provider outcome, credited exactly once.

A payment row is written `pending` before the provider is asked to charge; whatever the provider
reports — in its direct answer, or later in a webhook, in any order and any number of times — goes
through `apply_payment_event`, which moves the payment to its final state with a conditional
UPDATE and credits the ledger under the key `payment:<payment id>`. Replays change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.ledger import post_entry
from gateway.billing.providers import PaymentEvent, PaymentProvider, ProviderError, SetupEvent
from gateway.db.models import Account, Payment, PaymentKind, PaymentStatus, utcnow
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.context import RequestContext

log = logging.getLogger("gateway.billing")

# A succeeded payment is final; a failed or canceled one may still succeed (a late webhook
# after a timeout, or the customer retrying the same PaymentIntent with another card).
_MAY_SUCCEED = (
    PaymentStatus.PENDING.value,
    PaymentStatus.FAILED.value,
    PaymentStatus.CANCELED.value,
)
PROVIDER_UNAVAILABLE = "The payment provider could not be reached; no money was taken"


def credits_for_cents(settings: Settings, amount_cents: int) -> int:
    return amount_cents * settings.credits_per_cent


def payment_ledger_key(payment_id: str) -> str:
    return f"payment:{payment_id}"


async def find_payment(session: AsyncSession, event: PaymentEvent) -> Payment | None:
    """The payment an event is about: by our id in the metadata, else by the provider's id."""
    if event.payment_id:
        payment = await session.get(Payment, event.payment_id, populate_existing=True)
        if payment is not None and payment.provider_payment_id in (
            None,
            event.provider_payment_id,
        ):
            return payment
    found = await session.execute(
        select(Payment)
        .where(col(Payment.provider_payment_id) == event.provider_payment_id)
        .execution_options(populate_existing=True)
    )
    return found.scalar_one_or_none()


async def apply_payment_event(session: AsyncSession, event: PaymentEvent) -> Payment | None:
    """Apply a provider outcome once; runs in the caller's transaction (the caller commits).

    Returns the payment (refreshed), or None when the event is about no payment of ours.
    """
    payment = await find_payment(session, event)
    if payment is None:
        log.info("payment event for unknown payment %s ignored", event.provider_payment_id)
        return None
    now = utcnow()
    if payment.provider_payment_id is None:
        await session.execute(
            update(Payment)
            .where(col(Payment.id) == payment.id, col(Payment.provider_payment_id).is_(None))
            .values(provider_payment_id=event.provider_payment_id)
            .execution_options(synchronize_session=False)
        )
    if event.outcome == "succeeded":
        await _move_and_post(
            session,
            payment,
            col(Payment.status).in_(_MAY_SUCCEED),
            {
                "status": PaymentStatus.SUCCEEDED.value,
                "paid_at": now,
                "failure_reason": None,
                "updated_at": now,
            },
            amount=payment.credits,
            reason=payment.kind,
            idempotency_key=payment_ledger_key(payment.id),
        )
    elif event.outcome in ("failed", "canceled"):
        status = (
            PaymentStatus.FAILED.value
            if event.outcome == "failed"
            else PaymentStatus.CANCELED.value
        )
        await session.execute(
            update(Payment)
            .where(
                col(Payment.id) == payment.id, col(Payment.status) == PaymentStatus.PENDING.value
            )
            .values(
                status=status,
                failure_reason=(event.failure_reason or "The payment failed")[:500]
                if event.outcome == "failed"
                else None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    await session.refresh(payment)
    return payment


async def _move_and_post(
    session: AsyncSession,
    payment: Payment,
    allowed: ColumnElement[bool],
    values: Mapping[str, object],
    *,
    amount: int,
    reason: str,
    idempotency_key: str,
) -> None:
    """Update the payment where `allowed` holds, and post its ledger entry only if this call
    moved it: a replayed event finds the payment already moved and posts nothing."""
    moved = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, allowed)
        .values(dict(values))
        .returning(col(Payment.id))
        .execution_options(synchronize_session=False)
    )
    if moved.scalar_one_or_none() is not None:
        await post_entry(
            session,
            account_id=payment.account_id,
            amount=amount,
            reason=reason,
            idempotency_key=idempotency_key,
            reference_id=payment.id,
        )


async def apply_setup_event(session: AsyncSession, event: SetupEvent) -> Account | None:
    """A saved payment method becomes the account's default (caller commits)."""
    account = (
        await session.execute(
            select(Account)
            .where(col(Account.provider_customer_id) == event.customer_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if account is None:
        log.info("setup event for unknown customer %s ignored", event.customer_id)
        return None
    account.default_payment_method_id = event.payment_method_id
    account.updated_at = utcnow()
    session.add(account)
    await session.flush()
    return account


async def ensure_customer(
    session: AsyncSession, provider: PaymentProvider, account: Account, email: str | None
) -> str:
    """The account's customer at the provider, created on first need (commits)."""
    current = account.provider_customer_id
    if current and current.startswith("sbx_") == (provider.name == "sandbox"):
        return current
    customer_id = await provider.create_customer(account_id=account.id, email=email)
    await session.execute(
        update(Account)
        .where(col(Account.id) == account.id)
        .values(provider_customer_id=customer_id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    await session.refresh(account)
    return customer_id


async def new_payment(
    session: AsyncSession,
    settings: Settings,
    provider: PaymentProvider,
    account: Account,
    *,
    kind: PaymentKind,
    amount_cents: int,
    creator_user_id: str | None,
) -> Payment:
    """A pending payment, committed before any money is asked for (so an early webhook finds it)."""
    payment = Payment(
        account_id=account.id,
        kind=kind.value,
        amount_cents=amount_cents,
        credits=credits_for_cents(settings, amount_cents),
        currency=account.currency,
        creator_user_id=creator_user_id,
        provider=provider.name,
    )
    session.add(payment)
    await session.commit()
    return payment


async def mark_unavailable(session: AsyncSession, payment: Payment) -> None:
    now = utcnow()
    await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.status) == PaymentStatus.PENDING.value)
        .values(
            status=PaymentStatus.FAILED.value, failure_reason=PROVIDER_UNAVAILABLE, updated_at=now
        )
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    await session.refresh(payment)


async def charge_default_method(
    session: AsyncSession, provider: PaymentProvider, account: Account, payment: Payment
) -> Payment:
    """Charge a `new_payment` to the account's default method off-session; a decline fails it."""
    assert account.provider_customer_id and account.default_payment_method_id
    try:
        event = await provider.charge_off_session(
            payment=payment,
            customer_id=account.provider_customer_id,
            payment_method_id=account.default_payment_method_id,
        )
    except ProviderError:
        log.exception("charge of payment %s failed at the provider", payment.id)
        await mark_unavailable(session, payment)
        return payment
    applied = await apply_payment_event(session, event)
    await session.commit()
    return applied or payment


async def maybe_auto_top_up(
    target: RequestContext | AsyncSession,
    account_id: str,
    *,
    provider: PaymentProvider | None = None,
    settings: Settings | None = None,
) -> Payment | None:
    """Start one auto top-up charge if the account's balance fell below its threshold.

    `target` is a request Context (its session, provider and settings are used) or an
    AsyncSession (then pass `provider` and `settings`). Call it after the debit is committed:
    it commits. At most one auto top-up is pending per account at a time (the account row is
    locked while checking); after a declined top-up, auto top-up is switched off so a failing
    card is not charged again on every debit (a provider outage does not switch it off).
    Returns the top-up payment, or None.
    """
    if isinstance(target, AsyncSession):
        session = target
    else:
        session = target.session
        services = target.services
        provider = provider or (services.payments if services is not None else None)
        settings = settings or target.settings
    if provider is None or settings is None:
        raise ValueError("maybe_auto_top_up needs a provider and settings with a bare session")
    await session.commit()  # start from a fresh transaction; the debit is already committed
    wanted = (
        await session.execute(
            select(col(Account.id)).where(
                col(Account.id) == account_id,
                col(Account.auto_top_up_enabled).is_(True),
                col(Account.balance) < col(Account.auto_top_up_threshold),
            )
        )
    ).scalar_one_or_none()
    if wanted is None:  # the common case, decided without taking the account's row lock
        await session.commit()
        return None
    account = await session.get(Account, account_id, with_for_update=True, populate_existing=True)
    if (
        account is None
        or not account.auto_top_up_enabled
        or account.auto_top_up_amount_cents <= 0
        or account.balance >= account.auto_top_up_threshold
        or not account.default_payment_method_id
        or not account.provider_customer_id
    ):
        await session.commit()
        return None
    pending = await session.scalar(
        select(col(Payment.id))
        .where(
            col(Payment.account_id) == account_id,
            col(Payment.kind) == PaymentKind.AUTO_TOP_UP.value,
            col(Payment.status) == PaymentStatus.PENDING.value,
        )
        .limit(1)
    )
    if pending is not None:
        await session.commit()
        return None
    payment = await new_payment(
        session,
        settings,
        provider,
        account,
        kind=PaymentKind.AUTO_TOP_UP,
        amount_cents=int(account.auto_top_up_amount_cents),
        creator_user_id=None,
    )
    payment = await charge_default_method(session, provider, account, payment)
    if (
        payment.status == PaymentStatus.FAILED.value
        and payment.failure_reason != PROVIDER_UNAVAILABLE
    ):
        await session.execute(
            update(Account)
            .where(col(Account.id) == account_id)
            .values(auto_top_up_enabled=False, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    return payment
