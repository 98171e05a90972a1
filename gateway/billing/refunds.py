"""Refunds on the ledger: each refund takes its share of the payment's credits back, once.

Every refund, whether Stripe reports it in a webhook or an operator asks for it
(`gateway payments refund`), is a `RefundEvent` applied by `apply_refund`, idempotent per refund
id (ledger key `refund:<refund id>`). Rounding: after refunds totalling R of a payment of A cents
that granted C credits, floor(C * R / A) credits have been taken back in all; each refund takes
the difference from what earlier ones took. Several partial refunds therefore never take more
than C, and the refund that completes the amount takes exactly the rest (a full refund takes
them all). The balance may go negative when the credits were already spent: the ledger records
the provider's fact rather than refusing it.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.ledger import find_entry, post_entry
from gateway.billing.providers import PaymentProvider, RefundEvent
from gateway.db.models import Payment, PaymentStatus, utcnow
from gateway.errors import NotFound, Unprocessable, ValidationFailed

log = logging.getLogger("gateway.billing")

# The ledger's idempotency key column holds `refund:` and the id.
MAX_REFUND_ID = 200
# Reads of a payment that another refund changed in between (the row lock makes it rare).
_TRIES = 5
_REFUNDABLE = (PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value)


def refund_ledger_key(refund_id: str) -> str:
    return f"refund:{refund_id}"


def credits_taken_back(payment: Payment, refunded_cents: int) -> int:
    """Credits that refunds totalling `refunded_cents` take back in all (floor of the share)."""
    return payment.credits * min(refunded_cents, payment.amount_cents) // payment.amount_cents


async def _locked_payment(session: AsyncSession, provider_payment_id: str) -> Payment | None:
    # FOR UPDATE: two refunds of one payment (or two deliveries of one) apply one after the
    # other on PostgreSQL; SQLite runs one write transaction at a time.
    return (
        await session.execute(
            select(Payment)
            .where(col(Payment.provider_payment_id) == provider_payment_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def apply_refund(session: AsyncSession, event: RefundEvent) -> Payment | None:
    """Take a refund's share of the credits back once; runs in the caller's transaction.

    Returns the payment (refreshed), or None when the refund is about no payment of ours.
    """
    if not event.refund_id or len(event.refund_id) > MAX_REFUND_ID:
        raise ValueError(f"a refund id is 1 to {MAX_REFUND_ID} characters")
    if event.amount_cents <= 0:
        raise ValueError("a refund's amount is positive")
    key = refund_ledger_key(event.refund_id)
    for _ in range(_TRIES):
        payment = await _locked_payment(session, event.provider_payment_id)
        if payment is None or payment.status not in _REFUNDABLE or payment.amount_cents <= 0:
            log.info("refund %s of no refundable payment of ours ignored", event.refund_id)
            return None
        if await find_entry(session, key) is not None:
            return payment  # this refund was applied before
        before = payment.refunded_cents
        after = min(payment.amount_cents, before + event.amount_cents)
        if after == before:
            log.warning("refund %s beyond the payment %s ignored", event.refund_id, payment.id)
            return payment
        taken_before = payment.refunded_credits
        taken_after = credits_taken_back(payment, after)
        now = utcnow()
        status = (
            PaymentStatus.REFUNDED if after == payment.amount_cents else PaymentStatus.SUCCEEDED
        )
        # The condition on what was refunded before makes a concurrent refund's write (SQLite
        # has no row locks) show here as no row moved: read again and take the difference.
        moved = await session.execute(
            update(Payment)
            .where(col(Payment.id) == payment.id, col(Payment.refunded_cents) == before)
            .values(
                refunded_cents=after,
                refunded_credits=taken_after,
                status=status.value,
                updated_at=now,
            )
            .returning(col(Payment.id))
            .execution_options(synchronize_session=False)
        )
        if moved.scalar_one_or_none() is None:
            continue
        await post_entry(
            session,
            account_id=payment.account_id,
            amount=-(taken_after - taken_before),
            reason="refund",
            idempotency_key=key,
            reference_id=payment.id,
        )
        await session.refresh(payment)
        return payment
    raise RuntimeError(f"payment of refund {event.refund_id} kept changing under it")


async def refund_payment(
    session: AsyncSession,
    provider: PaymentProvider,
    payment_id: str,
    *,
    amount_cents: int | None = None,
) -> Payment:
    """An operator's refund of a succeeded payment: all that is left of it, or `amount_cents`.

    The provider gives the money back and names the refund; applying it is the webhook's code
    path, so Stripe's later `charge.refunded` for the same refund changes nothing. Commits.
    """
    payment = await session.get(Payment, payment_id, populate_existing=True)
    if payment is None:
        raise NotFound("Payment not found")
    if payment.provider != provider.name:
        raise Unprocessable(f"This payment was made with the {payment.provider} provider")
    if payment.status != PaymentStatus.SUCCEEDED.value or not payment.provider_payment_id:
        raise Unprocessable(
            f"Only a succeeded payment can be refunded (this one is {payment.status})"
        )
    left = payment.amount_cents - payment.refunded_cents
    amount = left if amount_cents is None else amount_cents
    if not 0 < amount <= left:
        raise ValidationFailed(f"amountCents must be 1 to {left}", field="amountCents")
    await session.commit()  # the provider call holds no transaction open
    event = await provider.refund(payment=payment, amount_cents=amount)
    refunded = await apply_refund(session, event)
    await session.commit()
    if refunded is None:  # the payment changed under us: show it as it is
        refunded = await session.get(Payment, payment_id, populate_existing=True)
    assert refunded is not None
    return refunded
