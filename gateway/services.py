"""Process-wide collaborators handed to resolvers on the Context (payment providers)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.billing.providers import PaymentProvider
    from gateway.billing.subscriptions import SubscriptionProvider


class RolesSeen:
    """The role each user last had in each organization, as this process last read it: a
    hint for the reads GraphQL starts before access is decided (resolvers/members.py
    `members_page_ahead`), never a decision. At most `size` pairs, the least recently seen
    dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._roles: OrderedDict[tuple[str, str], str] = OrderedDict()

    def get(self, organization_id: str, user_id: str) -> str | None:
        return self._roles.get((organization_id, user_id))

    def saw(self, organization_id: str, user_id: str, role: str | None) -> None:
        """The membership read for the pair: its role, or None for no membership."""
        key = (organization_id, user_id)
        roles = self._roles
        if role is None:
            roles.pop(key, None)
            return
        if self._size == 0:
            return
        roles[key] = role
        roles.move_to_end(key)
        if len(roles) > self._size:
            roles.popitem(last=False)


@dataclass
class Services:
    payments: PaymentProvider | None = None
    subscriptions: SubscriptionProvider | None = None
    roles_seen: RolesSeen = field(default_factory=lambda: RolesSeen(0))

    async def close(self) -> None:
        for provider in (self.payments, self.subscriptions):
            close = getattr(provider, "close", None)
            if close is not None:
                await close()


def build_services(settings: Settings) -> Services:
    from gateway.billing.providers import build_payment_provider
    from gateway.billing.subscriptions import build_subscription_provider

    return Services(
        payments=build_payment_provider(settings),
        subscriptions=build_subscription_provider(settings),
        roles_seen=RolesSeen(settings.read_ahead_roles_seen),
    )
