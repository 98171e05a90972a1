"""The contract's REST envelopes asserted in one place: a refusal's status and exact body."""

from __future__ import annotations

import httpx


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    """The response is the contract's error envelope, `{"success": false, "error": ...}`,
    with this status and exactly this message."""
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": error}
