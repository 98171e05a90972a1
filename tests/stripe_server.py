"""Run localstripe for the tests: bound to 127.0.0.1 on a given port, nothing kept on disk.

`python -m tests.stripe_server <port>`. localstripe's own entry point listens on every
interface and pickles its store to a fixed file in /tmp shared by every run; neither suits tests.
localstripe has no Checkout Sessions, so this adds the one call the gateway makes
(`POST /v1/checkout/sessions`), answering with the shape Stripe records for a new session.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

from aiohttp import web
from localstripe import resources, server


async def create_checkout_session(request: web.Request) -> web.Response:
    data: dict[str, Any] = await server.get_post_data(request) or {}
    try:
        items = data["line_items"]
        amount = sum(
            int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)) for item in items
        )
        currency = items[0]["price_data"]["currency"]
        assert data.get("mode") == "payment" and data.get("success_url")
    except (KeyError, IndexError, TypeError, ValueError, AssertionError):
        return web.json_response(
            {"error": {"type": "invalid_request_error", "message": "Bad request"}}, status=400
        )
    session_id = "cs_test_" + secrets.token_hex(12)
    host = request.host
    return web.json_response(
        {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": amount,
            "currency": currency,
            "customer": data.get("customer"),
            "client_reference_id": data.get("client_reference_id"),
            "metadata": data.get("metadata") or {},
            "payment_intent": None,
            "success_url": data["success_url"],
            "cancel_url": data.get("cancel_url"),
            "url": f"http://{host}/c/pay/{session_id}",
            "livemode": False,
        }
    )


def main() -> None:
    port = int(sys.argv[1])
    # An instance attribute shadows the method the store calls after every write.
    resources.store.dump_to_disk = lambda: None  # type: ignore[method-assign]
    server.app.router.add_post("/v1/checkout/sessions", create_checkout_session)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
