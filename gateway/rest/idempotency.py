"""`Idempotency-Key` on money-moving POSTs: a replay returns the first response, moving nothing.

The key is scoped to the caller and the route (with its path parameters); the request is the
validated body. See `gateway.billing.idempotency` for how a key is claimed, stored and released:
a 2xx response is stored and replayed (with `Idempotent-Replayed: true`), anything else releases
the key. The same key with a different body is 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from starlette.responses import Response

from gateway.billing import idempotency
from gateway.db.models import IdempotencyRecord
from gateway.rest.framework import Call, Endpoint

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"


def _scope(endpoint: Endpoint, call: Call) -> str:
    principal = call.ctx.principal
    owner = (principal.user_id if principal is not None else None) or "service"
    params = orjson.dumps(call.path, option=orjson.OPT_SORT_KEYS).decode()
    return idempotency.fit_scope(owner, f"{endpoint.method} {endpoint.path} {params}")


def _replay(record: IdempotencyRecord) -> Response:
    status = int(record.response_status or 200)
    return Response(
        content=None if status == 204 else (record.response_body or "").encode(),
        status_code=status,
        media_type=None if status == 204 else "application/json",
        headers={REPLAYED_HEADER: "true"},
    )


async def idempotency_hook(
    endpoint: Endpoint, call: Call, run: Callable[[], Awaitable[Response]]
) -> Response:
    raw_key = call.request.headers.get(HEADER)
    if raw_key is None:
        return await run()
    key = idempotency.check_key(raw_key, "Idempotency-Key")
    session = call.ctx.session
    scope = _scope(endpoint, call)
    body = call.body.model_dump(mode="json") if call.body is not None else None
    first = await idempotency.claim(session, scope, key, idempotency.request_hash(body))
    if first is not None:
        return _replay(first)
    try:
        response = await run()
    except BaseException:
        await idempotency.release(session, scope, key)
        raise
    if 200 <= response.status_code < 300:
        content = bytes(response.body).decode() if response.body else ""
        await idempotency.complete(session, scope, key, response.status_code, content)
    else:
        await idempotency.release(session, scope, key)
    return response
