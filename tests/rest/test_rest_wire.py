"""The hot list routes write their items without pydantic (`row_writer`): the same as the models'
dump; and what an `Out` model reads from its source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.db.models import UsageRecord
from gateway.rest.usage import (
    MemberUsageTransactionOut,
    UsageTransactionOut,
    member_usage_item,
    usage_item,
)
from resolvers.keyset import plain_row_type


def _records() -> list[Any]:
    base = {
        "id": "usg-01KBB4E998FYSQCYWA8TRAG1JN",
        "generation_id": "gen-1",
        "account_id": "acc-1",
        "user_id": "usr-1",
        "provider_name": "openai",
        "model_name": "gpt-4o",
        "model_type_name": "chat",
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "cost_micro_usd": 1_234_567,
        "credits_used": 2_000_000,
        "overdrawn": False,
    }
    variants: list[dict[str, Any]] = [
        {"organization_id": None, "operation": None, "metadata_": {}},
        {"organization_id": "org-1", "operation": "web_search", "metadata_": {"a": [1, "b"]}},
        {"organization_id": "org-2", "operation": None, "metadata_": {"nested": {"x": None}}},
    ]
    times = [
        datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 0, 0, 7, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
    ]
    records: list[Any] = []
    row_type = plain_row_type(UsageRecord)
    for variant, created_at in zip(variants, times, strict=True):
        fields = {**base, **variant, "created_at": created_at}
        records.append(UsageRecord(**fields))
        records.append(row_type(**{key: fields[key] for key in row_type._fields}))
    return records


def test_usage_item_equals_the_models_dump() -> None:
    for record in _records():
        expected = UsageTransactionOut.of(record).model_dump(mode="json", by_alias=True)
        assert usage_item(record) == expected
        assert list(usage_item(record)) == list(expected)


def test_member_usage_item_equals_the_models_dump() -> None:
    member = {"member_display_name": "Alice", "member_email": "a@x.com"}
    for record in _records():
        expected = MemberUsageTransactionOut.of(record, **member)
        dumped = expected.model_dump(mode="json", by_alias=True)
        assert member_usage_item(record, member) == dumped
        assert list(member_usage_item(record, member)) == list(dumped)


def test_row_writer_refuses_a_field_it_cannot_write_as_the_model_would() -> None:
    from gateway.rest.wire import Out, Timestamp, row_writer

    class Nested(Out):
        at: Timestamp | None

    with pytest.raises(TypeError, match=r"Nested\.at"):
        row_writer(Nested)


def test_row_writer_refuses_given_values_for_a_field_the_model_lacks() -> None:
    from gateway.rest.wire import row_writer

    with pytest.raises(TypeError, match="member_nickname"):
        row_writer(UsageTransactionOut, given=("member_nickname",))


def test_an_out_model_reads_its_fields_from_the_source_by_name_alias_and_path() -> None:
    from dataclasses import dataclass

    from pydantic import AliasPath, Field

    from gateway.rest.wire import EmptyIfNone, Out, Timestamp

    @dataclass
    class Payment:
        id: str
        creator_user_id: str | None

    @dataclass
    class Checkout:
        payment: Payment
        created_at: datetime

    class CheckoutOut(Out):
        payment_id: str = Field(validation_alias=AliasPath("payment", "id"))
        creator_id: EmptyIfNone = Field(validation_alias=AliasPath("payment", "creator_user_id"))
        created_at: Timestamp
        note: str

    source = Checkout(Payment("pay-1", None), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    dumped = CheckoutOut.of(source, note="given").model_dump(mode="json", by_alias=True)
    assert dumped == {
        "paymentId": "pay-1",
        "creatorId": "",
        "createdAt": "2026-01-02T03:04:05.000000Z",
        "note": "given",
    }
    # A value given by name wins over the source's attribute of that name.
    assert (
        CheckoutOut.of(
            source, note="n", created_at=datetime(2027, 1, 1, tzinfo=UTC)
        ).created_at.year
        == 2027
    )
