"""Prefixed ULID identifiers: `<prefix>-<26-char ULID>`, globally unique and time-sortable."""

from __future__ import annotations

import re
from datetime import datetime

from ulid import ULID

PREFIXES = {
    "usr": "User",
    "org": "Organization",
    "mbr": "Member",
    "inv": "Invite",
    "pay": "Payment",
    "key": "ApiKey",
    "pln": "Plan",
    "sub": "Subscription",
    "usg": "Usage",
    "acc": "Account",
    "led": "LedgerEntry",
    "plh": "PlanHistory",
    "prm": "Promotion",
    "eml": "OutboxEmail",
}

_ID_RE = re.compile(r"^([a-z]{3})-([0-9A-HJKMNP-TV-Z]{26})$")


def new_id(prefix: str, at: datetime | None = None) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    value = ULID.from_datetime(at) if at is not None else ULID()
    return f"{prefix}-{value}"


def prefix_of(value: str) -> str | None:
    """The prefix of a well-formed id, or None for anything else."""
    match = _ID_RE.match(value)
    return match.group(1) if match else None
