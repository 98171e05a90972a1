"""SQLModel tables of the account domain; Alembic migrations mirror this file exactly."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import DateTime as SADateTime
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

from gateway.ids import new_id


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = SADateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # asyncpg's timestamptz are already UTC
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ID = String(30)


# The column helpers return what `sqlmodel.Field` returns (untyped), so that
# `id: str = _id(…)` keeps the attribute's declared type.
def _id(prefix: str) -> Any:
    return Field(default_factory=lambda: new_id(prefix), primary_key=True, sa_type=ID)


def _fk(target: str, *, nullable: bool = False, index: bool = True) -> Any:
    return Field(
        default=None if nullable else ...,
        foreign_key=target,
        sa_type=ID,
        nullable=nullable,
        index=index,
    )


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable)


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class InviteStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"


class PaymentKind(enum.StrEnum):
    CHECKOUT = "checkout"
    PURCHASE = "purchase"
    AUTO_TOP_UP = "auto_top_up"
    PROMOTION = "promotion"


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"


class AccountKind(enum.StrEnum):
    USER = "user"
    ORGANIZATION = "organization"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = _id("usr")
    email: str = Field(sa_type=String(320), unique=True, index=True)
    display_name: str = Field(default="", sa_type=String(200))
    photo_url: str = Field(default="", sa_type=String(2048))
    # "<issuer>|<subject>" of the identity provider that first presented this user.
    external_subject: str | None = Field(default=None, sa_type=String(512), unique=True)
    terms_accepted_at: datetime | None = _ts()
    active_organization_id: str | None = _fk("organizations.id", nullable=True, index=False)
    deleted_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    id: str = _id("org")
    name: str = Field(sa_type=String(200))
    remote_config_enabled: bool = Field(default=False)
    default_remote_config: str = Field(default="{}", sa_type=Text)
    external_organization_id: str | None = Field(default=None, sa_type=String(200))
    deleted_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Member(SQLModel, table=True):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", name="uq_members_org_user"),
        # An organization's members page, in id order (migration 0003).
        Index("ix_members_org_id", "organization_id", "id"),
    )

    id: str = _id("mbr")
    organization_id: str = _fk("organizations.id", index=False)
    user_id: str = _fk("users.id")
    role: str = Field(default=Role.MEMBER.value, sa_type=String(16))
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Invite(SQLModel, table=True):
    __tablename__ = "invites"
    __table_args__ = (Index("ix_invites_org_status", "organization_id", "status"),)

    id: str = _id("inv")
    organization_id: str = _fk("organizations.id", index=False)
    email: str = Field(sa_type=String(320), index=True)
    role: str = Field(default=Role.MEMBER.value, sa_type=String(16))
    token_hash: str = Field(sa_type=String(64), unique=True)
    status: str = Field(default=InviteStatus.PENDING.value, sa_type=String(16))
    invited_by_user_id: str = _fk("users.id", index=False)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    accepted_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Account(SQLModel, table=True):
    """A billing account: one per user (personal) and one per organization."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(
            "(user_id IS NULL) <> (organization_id IS NULL)", name="ck_accounts_one_owner"
        ),
    )

    id: str = _id("acc")
    kind: str = Field(sa_type=String(16))
    user_id: str | None = Field(
        default=None, foreign_key="users.id", sa_type=ID, nullable=True, unique=True
    )
    organization_id: str | None = Field(
        default=None, foreign_key="organizations.id", sa_type=ID, nullable=True, unique=True
    )
    balance: int = Field(default=0, sa_type=BigInteger)
    currency: str = Field(default="usd", sa_type=String(3))
    provider_customer_id: str | None = Field(default=None, sa_type=String(255))
    default_payment_method_id: str | None = Field(default=None, sa_type=String(255))
    auto_top_up_enabled: bool = Field(default=False)
    # Whether promotional credits may be live (gateway/billing/promotions.py): set with a
    # redemption, cleared by the settlement that finds none left, both under the account's
    # lock. False spares every balance read a look at the redemptions.
    holds_promotions: bool = Field(default=False)
    auto_top_up_threshold: int = Field(default=0, sa_type=BigInteger)
    auto_top_up_amount_cents: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class LedgerEntry(SQLModel, table=True):
    """Append-only: one row per balance change, written with the balance it changes."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_account_id", "account_id", "id"),)

    id: str = _id("led")
    account_id: str = _fk("accounts.id", index=False)
    amount: int = Field(sa_type=BigInteger)
    balance_after: int = Field(sa_type=BigInteger)
    reason: str = Field(sa_type=String(32))
    reference_id: str | None = Field(default=None, sa_type=String(64))
    idempotency_key: str = Field(sa_type=String(255), unique=True)
    created_at: datetime = _created()


class Plan(SQLModel, table=True):
    __tablename__ = "plans"

    id: str = _id("pln")
    name: str = Field(sa_type=String(100), unique=True)
    display_name: str = Field(sa_type=String(200))
    type: str = Field(sa_type=String(16))
    interval: str = Field(sa_type=String(16))
    price_per_seat_cents: int = Field(sa_type=BigInteger)
    features: list[str] = Field(default_factory=list, sa_type=JSON)
    provider_price_id: str | None = Field(default=None, sa_type=String(255))
    active: bool = Field(default=True)
    created_at: datetime = _created()


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"

    id: str = _id("sub")
    account_id: str = _fk("accounts.id")
    plan_id: str = _fk("plans.id", index=False)
    # A downgrade waiting for the end of the current period (plan changes, resolvers/plans).
    pending_plan_id: str | None = _fk("plans.id", nullable=True, index=False)
    seats: int = Field(default=1)
    status: str = Field(default=SubscriptionStatus.INCOMPLETE.value, sa_type=String(16))
    current_period_start: datetime | None = _ts()
    current_period_end: datetime | None = _ts()
    cancel_at: datetime | None = _ts()
    canceled_at: datetime | None = _ts()
    provider_subscription_id: str | None = Field(default=None, sa_type=String(255), unique=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class PlanHistory(SQLModel, table=True):
    __tablename__ = "plan_history"

    id: str = _id("plh")
    subscription_id: str = _fk("subscriptions.id")
    account_id: str = _fk("accounts.id", index=False)
    plan_id: str = _fk("plans.id", index=False)
    seats: int
    action: str = Field(sa_type=String(16))
    created_at: datetime = _created()


class Payment(SQLModel, table=True):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_account_id", "account_id", "id"),)

    id: str = _id("pay")
    account_id: str = _fk("accounts.id", index=False)
    kind: str = Field(sa_type=String(16))
    status: str = Field(default=PaymentStatus.PENDING.value, sa_type=String(16))
    amount_cents: int = Field(sa_type=BigInteger)
    credits: int = Field(sa_type=BigInteger)
    currency: str = Field(default="usd", sa_type=String(3))
    creator_user_id: str | None = _fk("users.id", nullable=True, index=False)
    provider: str = Field(sa_type=String(16))
    provider_payment_id: str | None = Field(default=None, sa_type=String(255), unique=True)
    client_secret: str | None = Field(default=None, sa_type=String(255))
    checkout_url: str | None = Field(default=None, sa_type=String(2048))
    failure_reason: str | None = Field(default=None, sa_type=String(500))
    # What refunds gave back so far, and the credits they took (gateway/billing/refunds.py).
    refunded_cents: int = Field(default=0, sa_type=BigInteger)
    refunded_credits: int = Field(default=0, sa_type=BigInteger)
    paid_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Promotion(SQLModel, table=True):
    __tablename__ = "promotions"

    id: str = _id("prm")
    code: str = Field(sa_type=String(64), unique=True)
    description: str = Field(default="", sa_type=String(500))
    credits: int = Field(sa_type=BigInteger)
    # None: offered to every account; else only to this one.
    account_id: str | None = _fk("accounts.id", nullable=True)
    # Redemptions end here; the credits of each redemption expire then too.
    starts_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # None: no cap. `redemption_count` is claimed by a conditional UPDATE (resolvers/promotions.py).
    max_redemptions: int | None = Field(default=None, sa_type=BigInteger)
    redemption_count: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = _created()


class PromotionRedemption(SQLModel, table=True):
    """A promotion credited to an account, and what is left of its credits: spent first, the
    rest leaves the balance at `expires_at` (gateway/billing/promotions.py)."""

    __tablename__ = "promotion_redemptions"
    __table_args__ = (
        UniqueConstraint("promotion_id", "account_id", name="uq_redemptions_promotion_account"),
    )

    id: int | None = Field(default=None, primary_key=True)
    promotion_id: str = _fk("promotions.id", index=False)
    account_id: str = _fk("accounts.id")
    redeemed_at: datetime = _created()
    credits: int = Field(default=0, sa_type=BigInteger)
    # Unspent credits as of `settled_at` (spending after it is replayed from the ledger).
    remaining: int = Field(default=0, sa_type=BigInteger)
    expires_at: datetime | None = _ts()
    settled_at: datetime | None = _ts()
    # When the unspent rest left the balance (null while it has not).
    expired_at: datetime | None = _ts()


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_user_id", "user_id", "id"),
        Index("ix_usage_org_id", "organization_id", "id"),
        Index("ix_usage_org_created", "organization_id", "created_at"),
        # A member's usage in an organization, newest first (migration 0002).
        Index("ix_usage_org_user_id", "organization_id", "user_id", "id"),
    )

    id: str = _id("usg")
    generation_id: str = Field(sa_type=String(255), unique=True)
    account_id: str = _fk("accounts.id", index=False)
    user_id: str = _fk("users.id", index=False)
    organization_id: str | None = _fk("organizations.id", nullable=True, index=False)
    provider_name: str = Field(default="", sa_type=String(100))
    model_name: str = Field(default="", sa_type=String(200))
    model_type_name: str = Field(default="", sa_type=String(100))
    operation: str | None = Field(default=None, sa_type=String(100))
    prompt_tokens: int = Field(default=0, sa_type=BigInteger)
    completion_tokens: int = Field(default=0, sa_type=BigInteger)
    total_tokens: int = Field(default=0, sa_type=BigInteger)
    # Provider cost in micro-USD (the wire shows it as a float in USD).
    cost_micro_usd: int = Field(default=0, sa_type=BigInteger)
    credits_used: int = Field(default=0, sa_type=BigInteger)
    metadata_: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSON, sa_column_kwargs={"name": "metadata"}
    )
    overdrawn: bool = Field(default=False)
    created_at: datetime = _created()


class UsageDaily(SQLModel, table=True):
    """An organization's usage per UTC day, user and model: rows counted and the measures
    summed (`resolvers.usage.measures.TOTALS`), kept by ingestion in the same transaction as
    the usage rows (resolvers/usage/rollups.py), so a period's totals read days, not rows."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        # A period's roll-ups by an index-only scan on PostgreSQL: rows of one organization and
        # day arrive all day long, between everyone else's, so their heap pages are scattered.
        Index(
            "ix_usage_daily_org_day",
            "organization_id",
            "day",
            postgresql_include=[
                "user_id",
                "model_name",
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "total_tokens",
                "credits_used",
                "cost_micro_usd",
            ],
        ),
    )

    organization_id: str = Field(primary_key=True, sa_type=ID)
    day: date = Field(primary_key=True, sa_type=Date)
    user_id: str = Field(primary_key=True, sa_type=ID)
    model_name: str = Field(primary_key=True, sa_type=String(200))
    requests: int = Field(default=0, sa_type=BigInteger)
    prompt_tokens: int = Field(default=0, sa_type=BigInteger)
    completion_tokens: int = Field(default=0, sa_type=BigInteger)
    total_tokens: int = Field(default=0, sa_type=BigInteger)
    credits_used: int = Field(default=0, sa_type=BigInteger)
    cost_micro_usd: int = Field(default=0, sa_type=BigInteger)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = _id("key")
    user_id: str = _fk("users.id")
    organization_id: str | None = _fk("organizations.id", nullable=True)
    name: str = Field(sa_type=String(200))
    # Public lookup part of the token (unique); the whole token is only stored hashed.
    lookup: str = Field(sa_type=String(32), unique=True)
    prefix: str = Field(sa_type=String(32))
    secret_hash: str = Field(sa_type=String(64))
    expires_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    created_at: datetime = _created()


class WebhookEvent(SQLModel, table=True):
    """Provider events by id, so a replay is recognised and changes nothing twice."""

    __tablename__ = "webhook_events"

    id: str = Field(primary_key=True, sa_type=String(255))
    provider: str = Field(sa_type=String(16))
    type: str = Field(sa_type=String(100))
    received_at: datetime = _created()


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a money-moving request, replayed for the same Idempotency-Key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(sa_type=String(255))
    key: str = Field(sa_type=String(255))
    request_hash: str = Field(sa_type=String(64))
    response_status: int | None = Field(default=None)
    response_body: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _created()


class OutboxEmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class OutboxEmail(SQLModel, table=True):
    """An e-mail to send, written in the transaction of what it tells (gateway/mail/)."""

    __tablename__ = "outbox_emails"
    # The worker's claim: pending rows whose next attempt is due, oldest due first.
    __table_args__ = (Index("ix_outbox_emails_due", "status", "next_attempt_at"),)

    id: str = _id("eml")
    kind: str = Field(sa_type=String(32))
    reference_id: str | None = Field(default=None, sa_type=String(64))
    recipient: str = Field(sa_type=String(320))
    subject: str = Field(sa_type=String(500))
    # Holds secrets (an invite's accept link): emptied once the mail is sent or given up.
    body: str = Field(sa_type=Text)
    status: str = Field(default=OutboxEmailStatus.PENDING.value, sa_type=String(16))
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _created()
    last_error: str | None = Field(default=None, sa_type=String(1000))
    sent_at: datetime | None = _ts()
    created_at: datetime = _created()
    updated_at: datetime = _created()
