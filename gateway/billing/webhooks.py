"""Provider webhooks: `/webhooks/stripe`, verified, stored by event id, applied once."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def stripe_webhook(state: Any, request: Request) -> Response:
    return JSONResponse(
        {"success": False, "error": "Stripe webhooks are not enabled yet"}, status_code=501
    )
