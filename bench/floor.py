"""The floor: a minimal Starlette + asyncpg server answering the benchmark requests.

It returns the same JSON as the gateway for the benchmark's GraphQL operations (chosen by
`operationName`, the query text is not parsed) and REST routes, reading the same `bench`
schema with hand-written SQL: the speed a Python server on this stack can reach, to compare
the gateway with in the same run. It authenticates API keys like the gateway (lookup,
constant-time hash check, revoked/expired/deleted checks) but does not refresh
`last_used_at` (bench/run.py marks every key as just used before each measurement, so the
gateway does not write either). Not a product: only what the benchmark sends is served.

    .venv/bin/python bench/floor.py --port 8101 [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench"

# --- the benchmark's GraphQL operations (bench/run.py sends these texts) -------------------

USAGE_FIELDS = "modelName promptTokens completionTokens creditsUsed createdAt"
PAYMENT_FIELDS = "id status amountCents credits createdAt paidAt"

OPERATIONS: dict[str, str] = {
    # Q1, the organization dashboard: 20 members, each with its 5 newest usages in the org.
    "Dashboard": (
        "query Dashboard($id: ID!) { organization(id: $id) { id name"
        " members(first: 20) { nodes { id role user { email displayName }"
        f" usages(first: 5) {{ nodes {{ {USAGE_FIELDS} }} }} }} }} }} }}"
    ),
    # Q1 without the members' usages (for a gateway that has no Member.usages yet).
    "DashboardMembers": (
        "query DashboardMembers($id: ID!) { organization(id: $id) { id name"
        " members(first: 20) { nodes { id role user { email displayName } } } } }"
    ),
    # Q2, the user page: the 50 newest usages and 20 newest payments of the viewer.
    "UserPage": (
        "query UserPage($id: ID!) { user(id: $id) { id email displayName"
        f" usages(first: 50) {{ nodes {{ id {USAGE_FIELDS} }} }}"
        f" payments(first: 20) {{ nodes {{ {PAYMENT_FIELDS} }} }} }} }}"
    ),
    # Q2 without payments (for a gateway that has User.usages but no User.payments yet).
    "UserPageUsages": (
        "query UserPageUsages($id: ID!) { user(id: $id) { id email displayName"
        f" usages(first: 50) {{ nodes {{ id {USAGE_FIELDS} }} }} }} }}"
    ),
    # Q2 with only the user's own fields and memberships (what exists before usage lands).
    "UserPageProfile": (
        "query UserPageProfile($id: ID!) { user(id: $id) { id email displayName"
        " organizations { id role organizationId } } }"
    ),
}


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(("c1:" + item_id).encode()).decode().rstrip("=")


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def rest_error(status: int, message: str) -> Response:
    return json_response({"success": False, "error": message}, status)


# --- SQL -----------------------------------------------------------------------------------

SQL_AUTH = """
SELECT k.user_id, k.secret_hash, k.organization_id, k.revoked_at, k.expires_at, u.deleted_at
FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.lookup = $1
"""
SQL_MEMBERSHIP = """
SELECT m.id, m.role FROM members m JOIN organizations o ON o.id = m.organization_id
WHERE m.organization_id = $1 AND m.user_id = $2 AND o.deleted_at IS NULL
"""
SQL_ORG = "SELECT id, name FROM organizations WHERE id = $1"
SQL_MEMBERS = """
SELECT m.id, m.role, m.user_id, u.email, u.display_name, u.deleted_at
FROM members m JOIN users u ON u.id = m.user_id
WHERE m.organization_id = $1 ORDER BY m.id LIMIT $2
"""
SQL_MEMBERS_WITH_USAGES = """
SELECT m.id, m.role, m.user_id, u.email, u.display_name, u.deleted_at,
       r.model_name, r.prompt_tokens, r.completion_tokens, r.credits_used, r.created_at
FROM (SELECT id, role, user_id FROM members WHERE organization_id = $1 ORDER BY id LIMIT $2) m
JOIN users u ON u.id = m.user_id
LEFT JOIN LATERAL (
    SELECT id, model_name, prompt_tokens, completion_tokens, credits_used, created_at
    FROM usage_records
    WHERE organization_id = $1 AND user_id = m.user_id
    ORDER BY id DESC LIMIT $3
) r ON true
ORDER BY m.id, r.id DESC
"""
SQL_USER = "SELECT id, email, display_name FROM users WHERE id = $1 AND deleted_at IS NULL"
SQL_USER_MEMBERSHIPS = """
SELECT m.id, m.role, m.organization_id FROM members m
JOIN organizations o ON o.id = m.organization_id
WHERE m.user_id = $1 AND o.deleted_at IS NULL ORDER BY m.id
"""
USAGE_COLUMNS = (
    "id, generation_id, provider_name, model_name, model_type_name, operation, prompt_tokens,"
    " completion_tokens, total_tokens, cost_micro_usd, credits_used, organization_id, user_id,"
    " metadata, created_at"
)
SQL_USER_USAGES = (
    f"SELECT {USAGE_COLUMNS} FROM usage_records WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
)
SQL_MEMBER_USAGES = (
    f"SELECT {USAGE_COLUMNS} FROM usage_records WHERE organization_id = $1 AND user_id = $2"
    " ORDER BY id DESC LIMIT $3"
)
SQL_MEMBER = """
SELECT m.id, m.user_id, u.email, u.display_name FROM members m JOIN users u ON u.id = m.user_id
WHERE m.id = $1 AND m.organization_id = $2
"""
SQL_USER_PAYMENTS = """
SELECT p.id, p.status, p.amount_cents, p.credits, p.created_at, p.paid_at
FROM payments p WHERE p.account_id = (SELECT id FROM accounts WHERE user_id = $1)
ORDER BY p.id DESC LIMIT $2
"""


class Floor:
    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.url,
            min_size=4,
            # 20 connections in all: bench/run.py divides them among the worker processes.
            max_size=int(os.environ.get("BENCH_FLOOR_POOL_SIZE", "20")),
            server_settings={"search_path": SCHEMA, "application_name": "bench-floor"},
        )

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def user_id(self, conn: asyncpg.Connection, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith("gwk_"):
            return None
        parts = token.split("_", 2)
        if len(parts) != 3:
            return None
        row = await conn.fetchrow(SQL_AUTH, parts[1])
        expected = row["secret_hash"] if row else "0" * 64
        digest = hashlib.sha256(token.encode()).hexdigest()
        if not hmac.compare_digest(expected, digest) or row is None:
            return None
        if row["revoked_at"] is not None or row["deleted_at"] is not None:
            return None
        if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
            return None
        user_id: str = row["user_id"]
        return user_id

    # --- GraphQL ---------------------------------------------------------------------------

    async def graphql(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        name = body.get("operationName")
        variables = body.get("variables") or {}
        handler = self.OPERATION_HANDLERS.get(name)
        if handler is None:
            return json_response({"errors": [{"message": f"unknown operation {name!r}"}]}, 400)
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            viewer = await self.user_id(conn, request)
            if viewer is None:
                return json_response({"errors": [{"message": "Invalid API key"}]}, 200)
            data = await handler(self, conn, viewer, variables)
        return json_response({"data": data})

    async def _dashboard(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any], usages: bool
    ) -> dict[str, Any]:
        org_id = variables["id"]
        viewer_row = await conn.fetchrow(SQL_MEMBERSHIP, org_id, viewer)
        if viewer_row is None:
            return {"organization": None}
        org = await conn.fetchrow(SQL_ORG, org_id)
        members: list[dict[str, Any]] = []
        if usages:
            manager = viewer_row["role"] in ("owner", "admin")
            by_id: dict[str, dict[str, Any]] = {}
            for r in await conn.fetch(SQL_MEMBERS_WITH_USAGES, org_id, 20, 5):
                member = by_id.get(r["id"])
                if member is None:
                    visible = manager or r["id"] == viewer_row["id"]
                    member = {
                        "id": r["id"],
                        "role": r["role"].upper(),
                        "user": _user_ref(r),
                        "usages": {"nodes": []} if visible else None,
                    }
                    by_id[r["id"]] = member
                    members.append(member)
                if r["created_at"] is not None and member["usages"] is not None:
                    member["usages"]["nodes"].append(_usage_node(r))
        else:
            for r in await conn.fetch(SQL_MEMBERS, org_id, 20):
                members.append({"id": r["id"], "role": r["role"].upper(), "user": _user_ref(r)})
        return {
            "organization": {"id": org["id"], "name": org["name"], "members": {"nodes": members}}
        }

    async def op_dashboard(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._dashboard(conn, viewer, variables, usages=True)

    async def op_dashboard_members(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._dashboard(conn, viewer, variables, usages=False)

    async def _user_page(
        self,
        conn: asyncpg.Connection,
        viewer: str,
        variables: dict[str, Any],
        *,
        usages: bool,
        payments: bool,
        memberships: bool = False,
    ) -> dict[str, Any]:
        user_id = variables["id"]
        if user_id != viewer:  # the benchmark only asks for the viewer's own page
            return {"user": None}
        row = await conn.fetchrow(SQL_USER, user_id)
        if row is None:
            return {"user": None}
        user: dict[str, Any] = {
            "id": row["id"],
            "email": row["email"],
            "displayName": row["display_name"],
        }
        if memberships:
            user["organizations"] = [
                {"id": m["id"], "role": m["role"].upper(), "organizationId": m["organization_id"]}
                for m in await conn.fetch(SQL_USER_MEMBERSHIPS, user_id)
            ]
        if usages:
            user["usages"] = {
                "nodes": [
                    {"id": r["id"], **_usage_node(r)}
                    for r in await conn.fetch(SQL_USER_USAGES, user_id, 50)
                ]
            }
        if payments:
            user["payments"] = {
                "nodes": [
                    {
                        "id": p["id"],
                        "status": p["status"].upper(),
                        "amountCents": p["amount_cents"],
                        "credits": p["credits"],
                        "createdAt": rfc3339(p["created_at"]),
                        "paidAt": rfc3339(p["paid_at"]),
                    }
                    for p in await conn.fetch(SQL_USER_PAYMENTS, user_id, 20)
                ]
            }
        return {"user": user}

    async def op_user_page(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._user_page(conn, viewer, variables, usages=True, payments=True)

    async def op_user_page_usages(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._user_page(conn, viewer, variables, usages=True, payments=False)

    async def op_user_page_profile(
        self, conn: asyncpg.Connection, viewer: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._user_page(
            conn, viewer, variables, usages=False, payments=False, memberships=True
        )

    OPERATION_HANDLERS: dict[str, Callable[..., Any]] = {
        "Dashboard": op_dashboard,
        "DashboardMembers": op_dashboard_members,
        "UserPage": op_user_page,
        "UserPageUsages": op_user_page_usages,
        "UserPageProfile": op_user_page_profile,
    }

    # --- REST ------------------------------------------------------------------------------

    async def user_usages(self, request: Request) -> Response:
        user_id = request.path_params["id"]
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            viewer = await self.user_id(conn, request)
            if viewer is None:
                return rest_error(401, "Invalid API key")
            if user_id != viewer:
                return rest_error(404, "User not found")
            rows = await conn.fetch(SQL_USER_USAGES, user_id, 51)
        items = [_usage_transaction(r) for r in rows[:50]]
        next_cursor = cursor(rows[49]["id"]) if len(rows) > 50 else None
        return json_response({"success": True, "data": {"items": items, "nextCursor": next_cursor}})

    async def member_usages(self, request: Request) -> Response:
        org_id = request.path_params["orgId"]
        member_id = request.path_params["memberId"]
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            viewer = await self.user_id(conn, request)
            if viewer is None:
                return rest_error(401, "Invalid API key")
            viewer_row = await conn.fetchrow(SQL_MEMBERSHIP, org_id, viewer)
            if viewer_row is None:
                return rest_error(404, "Organization not found")
            member = await conn.fetchrow(SQL_MEMBER, member_id, org_id)
            if member is None:
                return rest_error(404, "Member not found")
            if viewer_row["id"] != member["id"] and viewer_row["role"] not in ("owner", "admin"):
                return rest_error(
                    403, "Only organization owners and admins can see other members' usage"
                )
            rows = await conn.fetch(SQL_MEMBER_USAGES, org_id, member["user_id"], 51)
        extra = {"memberDisplayName": member["display_name"], "memberEmail": member["email"]}
        items = [{**_usage_transaction(r), **extra} for r in rows[:50]]
        next_cursor = cursor(rows[49]["id"]) if len(rows) > 50 else None
        return json_response({"success": True, "data": {"items": items, "nextCursor": next_cursor}})


def _user_ref(r: Any) -> dict[str, Any] | None:
    if r["deleted_at"] is not None:
        return None
    return {"email": r["email"], "displayName": r["display_name"]}


def _usage_node(r: Any) -> dict[str, Any]:
    return {
        "modelName": r["model_name"],
        "promptTokens": r["prompt_tokens"],
        "completionTokens": r["completion_tokens"],
        "creditsUsed": r["credits_used"],
        "createdAt": rfc3339(r["created_at"]),
    }


def _usage_transaction(r: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": r["id"],
        "generationId": r["generation_id"],
        "aiInferenceProviderName": r["provider_name"],
        "aiModelName": r["model_name"],
        "aiModelTypeName": r["model_type_name"],
        "promptTokens": r["prompt_tokens"],
        "completionTokens": r["completion_tokens"],
        "totalTokens": r["total_tokens"],
        "costUsd": r["cost_micro_usd"] / 1_000_000,
        "creditsUsed": r["credits_used"],
    }
    if r["operation"] is not None:
        item["operation"] = r["operation"]
    item["organizationId"] = r["organization_id"] or ""
    item["userId"] = r["user_id"]
    item["metadata"] = orjson.loads(r["metadata"]) if r["metadata"] else {}
    item["createdAt"] = rfc3339(r["created_at"])
    return item


def create_app(url: str | None = None) -> Starlette:
    floor = Floor(url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await floor.start()
        try:
            yield
        finally:
            await floor.stop()

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/graphql", floor.graphql, methods=["POST"]),
            Route("/api/v1/users/{id}/usages", floor.user_usages, methods=["GET"]),
            Route(
                "/api/v1/organizations/{orgId}/members/{memberId}/usages",
                floor.member_usages,
                methods=["GET"],
            ),
        ],
        lifespan=lifespan,
    )


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description="the benchmark floor server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
    }
    if args.workers == 1:
        uvicorn.run(create_app(args.url), **options)
    else:  # each worker imports this module and makes its own app (and pool)
        os.environ["BENCH_DATABASE_URL"] = args.url
        uvicorn.run(
            "floor:create_app",
            factory=True,
            workers=args.workers,
            app_dir=str(Path(__file__).resolve().parent),
            **options,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
