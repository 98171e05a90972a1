"""The contract's REST envelopes asserted in one place: a refusal's status and exact body, a
success's status and its data."""

from __future__ import annotations

from typing import Any

import httpx


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    """The response is the contract's error envelope, `{"success": false, "error": ...}`,
    with this status and exactly this message."""
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": error}


def data_of(response: httpx.Response, status: int = 200) -> Any:
    """The `data` of the contract's success envelope, `{"success": true, "data": ...}`, with
    this status."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]
