"""The per-request `Loaders`: every DataLoader, by the name of what it loads, made on first use
from its domain's declaration (`resolvers/loaders/<domain>.py`, shapes in `shapes.py`)."""

from __future__ import annotations

from functools import cached_property

from gateway.context import RequestContext
from gateway.db.session import RequestDatabase
from resolvers.batching import BatchLoader, ComingReads, loader
from resolvers.loaders import (
    accounts,
    api_keys,
    invites,
    members,
    organizations,
    payments,
    plans,
    usage,
    users,
)


class Loaders:
    """Named `<entity>_by_<key>` (or `<entities>_pages_by_<key>`, `<entity>_count_by_<key>`);
    attribute access keeps call sites greppable. A request touches a handful of the ~40: each
    is built on first use (`loader`, a `cached_property` that names it, over its domain's
    declaration, which takes this object: its database, its context, the loaders it primes)
    and kept for the request."""

    def __init__(self, context: RequestContext) -> None:
        self.context = context

    def release(self) -> None:
        """Empty every loader's cache and drop the loaders (the end of a request)."""
        for value in list(vars(self).values()):
            if isinstance(value, BatchLoader):
                value.clear_all()
        vars(self).clear()

    @cached_property
    def db(self) -> RequestDatabase:
        """The request's database: plain reads on its connection, ORM loads on its session."""
        return self.context.db

    @property
    def coming_reads(self) -> ComingReads | None:
        """Told of each loader's queued batches (`BatchLoader.coming`), so that a level's
        direct reads wait for its loaders' in the same statement (gateway/db/coalesce.py)."""
        return self.context.db.coalescer

    user_by_id = loader(users.user_by_id)
    user_row_by_id = loader(users.user_row_by_id)

    organization_by_id = loader(organizations.organization_by_id)
    organization_row_by_id = loader(organizations.organization_row_by_id)

    member_by_id = loader(members.member_by_id)
    member_row_by_id = loader(members.member_row_by_id)
    members_by_user_id = loader(members.members_by_user_id)
    live_member_by_organization_and_user = loader(members.live_member_by_organization_and_user)
    member_with_user_by_id = loader(members.member_with_user_by_id)
    member_pages_by_organization_id = loader(members.member_pages_by_organization_id)
    member_count_by_organization_id = loader(members.member_count_by_organization_id)

    async def prime_membership_and_member(self, key: members.MembershipKey, member_id: str) -> None:
        """The caller's membership and another member, from one statement (members.py)."""
        await members.prime_membership_and_member(self, key, member_id)

    invite_by_id = loader(invites.invite_by_id)
    invite_pages_by_organization_id = loader(invites.invite_pages_by_organization_id)
    invite_count_by_organization_id = loader(invites.invite_count_by_organization_id)

    api_key_by_id = loader(api_keys.api_key_by_id)
    api_key_pages_by_user_id = loader(api_keys.api_key_pages_by_user_id)
    api_key_count_by_user_id = loader(api_keys.api_key_count_by_user_id)
    api_key_pages_by_organization_id = loader(api_keys.api_key_pages_by_organization_id)
    api_key_count_by_organization_id = loader(api_keys.api_key_count_by_organization_id)

    account_by_id = loader(accounts.account_by_id)
    account_by_user_id = loader(accounts.account_by_user_id)
    account_row_by_user_id = loader(accounts.account_row_by_user_id)
    account_by_organization_id = loader(accounts.account_by_organization_id)
    account_row_by_organization_id = loader(accounts.account_row_by_organization_id)

    plan_by_id = loader(plans.plan_by_id)
    plan_row_by_id = loader(plans.plan_row_by_id)
    subscription_by_id = loader(plans.subscription_by_id)
    current_subscription_by_account_id = loader(plans.current_subscription_by_account_id)
    current_subscription_row_by_organization_id = loader(
        plans.current_subscription_row_by_organization_id
    )
    plan_history_pages_by_organization_id = loader(plans.plan_history_pages_by_organization_id)
    latest_plan_history_id_by_subscription_id = loader(
        plans.latest_plan_history_id_by_subscription_id
    )

    payment_by_id = loader(payments.payment_by_id)
    organization_payment_pages_by_organization_id = loader(
        payments.organization_payment_pages_by_organization_id
    )
    succeeded_organization_payment_pages_by_organization_id = loader(
        payments.succeeded_organization_payment_pages_by_organization_id
    )
    personal_payment_pages_by_user_id = loader(payments.personal_payment_pages_by_user_id)
    succeeded_personal_payment_pages_by_user_id = loader(
        payments.succeeded_personal_payment_pages_by_user_id
    )
    payment_count_by_account_id = loader(payments.payment_count_by_account_id)
    succeeded_payment_count_by_account_id = loader(payments.succeeded_payment_count_by_account_id)
    personal_payment_count_by_user_id = loader(payments.personal_payment_count_by_user_id)
    succeeded_personal_payment_count_by_user_id = loader(
        payments.succeeded_personal_payment_count_by_user_id
    )

    usage_by_id = loader(usage.usage_by_id)
    usage_pages_by_user_id = loader(usage.usage_pages_by_user_id)
    usage_pages_by_organization_id = loader(usage.usage_pages_by_organization_id)
    usage_pages_by_member = loader(usage.usage_pages_by_member)
