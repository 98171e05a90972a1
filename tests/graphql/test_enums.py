"""GraphQL enums restate the model enums: their values must stay the same."""

from __future__ import annotations

import enum

import pytest

from gateway.db import models
from schema import invite, member, payment, plan

PAIRS = [
    (member.Role, models.Role),
    (invite.InviteStatus, models.InviteStatus),
    (payment.PaymentStatus, models.PaymentStatus),
    (payment.PaymentKind, models.PaymentKind),
    (plan.SubscriptionStatus, models.SubscriptionStatus),
]


@pytest.mark.parametrize(("graphql_enum", "model_enum"), PAIRS, ids=lambda e: e.__name__)
def test_graphql_enum_has_the_model_values(
    graphql_enum: type[enum.Enum], model_enum: type[enum.Enum]
) -> None:
    assert {e.name: e.value for e in graphql_enum} == {e.name: e.value for e in model_enum}
