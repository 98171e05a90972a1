"""Seed the PostgreSQL schema `bench` for the load benchmarks (deterministic, COPY-fast).

    .venv/bin/python bench/seed.py [--url postgresql://postgres@127.0.0.1:5432/test]

Drops and recreates the schema, applies the Alembic migrations (the same ones the gateway
runs), then COPYs: 10,000 users with personal accounts, 1,000 organizations x 20 members
with organization accounts, 1,000,000 usage records over 90 days and 50,000 payments; then
what the query corpus (bench/corpus/) reads beyond them: three team plans, a subscription
(with its history) for 70 % of the organizations, 0 to 8 invites and 1 to 3 organization
API keys per organization (drawn from a second RNG, so the rows above stay as they were);
then, from a third RNG, 10 large organizations of 120 members with 25 usage records each in
the organization, for the corpus's large pages (`# orgs: large`; their owners' keys are listed
apart in tokens.json, so the other operations draw exactly as before).
Every id is `<prefix>-<ULID>` whose time part is the row's created_at, so id order is time
order. Rows come from one seeded RNG and a fixed anchor time: the same arguments give the
same rows. API keys (for every organization owner and for as many other users) are made
with gateway.auth.issue_api_key, which is random by design; their tokens, with the ids the
load scripts need, go to bench/results/tokens.json (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from gateway.auth import issue_api_key  # noqa: E402
from gateway.db.engine import create_engine  # noqa: E402
from gateway.db.migrate import upgrade  # noqa: E402
from gateway.db.session import create_session_factory  # noqa: E402
from resolvers.usage import rollups  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench"
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ANCHOR = "2026-11-25T00:00:00+00:00"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits at a time

MODELS = [
    ("openai", "gpt-4o", "chat"),
    ("openai", "gpt-4o-mini", "chat"),
    ("openai", "text-embedding-3-small", "embedding"),
    ("anthropic", "claude-sonnet-4", "chat"),
    ("anthropic", "claude-haiku-4", "chat"),
    ("google", "gemini-2.5-pro", "chat"),
    ("google", "gemini-2.5-flash", "chat"),
    ("mistral", "mistral-large", "chat"),
]


def ulid_at(rng: random.Random, at: datetime) -> str:
    """A ULID whose 48-bit time part is `at` (ms) and whose 80 random bits come from rng."""
    value = (int(at.timestamp() * 1000) << 80) | rng.getrandbits(80)
    # 128 bits -> 26 chars of 5 bits (the first holds the top 3): 1 + 1 + 12 pairs.
    out = [_CROCKFORD[value >> 125], _CROCKFORD[(value >> 120) & 31]]
    for shift in range(110, -1, -10):
        out.append(_PAIRS[(value >> shift) & 0x3FF])
    return "".join(out)


def new_id(rng: random.Random, prefix: str, at: datetime) -> str:
    return f"{prefix}-{ulid_at(rng, at)}"


class Data:
    """Every row to COPY, generated in memory from one seeded RNG."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed)
        self.anchor = datetime.fromisoformat(args.anchor).astimezone(UTC)
        self.args = args
        self.users: list[tuple[Any, ...]] = []
        self.orgs: list[tuple[Any, ...]] = []
        self.members: list[tuple[Any, ...]] = []
        self.accounts: list[tuple[Any, ...]] = []
        self.usages: list[tuple[Any, ...]] = []
        self.payments: list[tuple[Any, ...]] = []
        self.api_keys: list[tuple[Any, ...]] = []
        self.plans: list[tuple[Any, ...]] = []
        self.subscriptions: list[tuple[Any, ...]] = []
        self.plan_history: list[tuple[Any, ...]] = []
        self.invites: list[tuple[Any, ...]] = []
        self.tokens: list[dict[str, Any]] = []
        self.large: dict[str, dict[str, Any]] = {}  # large org -> its owner's key and members

    def _time_before(self, lo_days: float, hi_days: float) -> datetime:
        seconds = self.rng.uniform(lo_days * 86400, hi_days * 86400)
        return self.anchor - timedelta(seconds=seconds)

    def build(self) -> None:
        a = self.args
        rng = self.rng
        # Users and their personal accounts, created 100..400 days before the anchor.
        user_times = sorted(self._time_before(100, 400) for _ in range(a.users))
        self.user_ids: list[str] = []
        self.user_account: dict[str, str] = {}
        for i, at in enumerate(user_times):
            uid = new_id(rng, "usr", at)
            self.user_ids.append(uid)
            self.users.append(
                (uid, f"user{i:05d}@bench.example", f"Bench User {i:05d}", "", at, at, at)
            )
            acc = new_id(rng, "acc", at)
            self.user_account[uid] = acc
            balance = rng.randrange(0, 50_000_000)
            self.accounts.append(
                (acc, "user", uid, None, balance, "usd", False, 0, 0, at, at, False)
            )

        # Organizations with 20 distinct members each: one owner, two admins, the rest members.
        org_times = sorted(self._time_before(95, 100) for _ in range(a.orgs))
        self.org_ids: list[str] = []
        self.org_account: dict[str, str] = {}
        self.org_members: dict[str, list[tuple[str, str, str]]] = {}  # org -> (mbr, usr, role)
        self.memberships: list[tuple[str, str]] = []  # (org, user)
        for j, at in enumerate(org_times):
            oid = new_id(rng, "org", at)
            self.org_ids.append(oid)
            self.orgs.append((oid, f"Bench Org {j:04d}", False, "{}", at, at))
            acc = new_id(rng, "acc", at)
            self.org_account[oid] = acc
            balance = rng.randrange(0, 500_000_000)
            self.accounts.append(
                (acc, "organization", None, oid, balance, "usd", False, 0, 0, at, at, False)
            )
            picked = rng.sample(self.user_ids, a.members_per_org)
            rows = []
            for k, uid in enumerate(picked):
                role = "owner" if k == 0 else "admin" if k < 3 else "member"
                joined = at + timedelta(minutes=k)
                mid = new_id(rng, "mbr", joined)
                self.members.append((mid, oid, uid, role, joined, joined))
                rows.append((mid, uid, role))
                self.memberships.append((oid, uid))
            self.org_members[oid] = rows

        self._build_usages()
        self._build_payments()
        self._build_api_keys()
        self._build_corpus_rows(random.Random(a.seed + 1))
        self._build_large_orgs(random.Random(a.seed + 2))

    def _build_usages(self) -> None:
        a, rng = self.args, self.rng
        span = 90 * 86400 * 1_000_000  # microseconds
        rows = []
        for _ in range(a.usages):
            at = self.anchor - timedelta(microseconds=rng.randrange(span))
            if rng.random() < a.org_share:
                org, uid = self.memberships[rng.randrange(len(self.memberships))]
                account = self.org_account[org]
            else:
                org, uid = None, self.user_ids[rng.randrange(len(self.user_ids))]
                account = self.user_account[uid]
            provider, model, kind = MODELS[rng.randrange(len(MODELS))]
            prompt = rng.randrange(10, 4000)
            completion = 0 if kind == "embedding" else rng.randrange(0, 2000)
            cost = (prompt * 3 + completion * 12) // 10  # micro-USD
            credits = cost * 12 // 10
            operation = "web_search" if rng.random() < 0.05 else None
            rows.append(
                (
                    new_id(rng, "usg", at),
                    account,
                    uid,
                    org,
                    provider,
                    model,
                    kind,
                    operation,
                    prompt,
                    completion,
                    prompt + completion,
                    cost,
                    credits,
                    at,
                )
            )
        rows.sort(key=lambda r: r[0])  # insertion in time order, like an append-only log
        self.usages = [
            (r[0], f"gen_bench_{n:07d}", *r[1:13], "{}", False, r[13]) for n, r in enumerate(rows)
        ]

    def _build_payments(self) -> None:
        a, rng = self.args, self.rng
        rows = []
        for n in range(a.payments):
            at = self._time_before(0, 365)
            if rng.random() < 0.8:
                uid = self.user_ids[rng.randrange(len(self.user_ids))]
                account, creator = self.user_account[uid], uid
            else:
                oid = self.org_ids[rng.randrange(len(self.org_ids))]
                account = self.org_account[oid]
                creator = self.org_members[oid][rng.randrange(3)][1]  # an owner or admin
            cents = rng.choice((500, 1000, 2000, 5000, 10_000, 25_000))
            roll = rng.random()
            status = (
                "succeeded"
                if roll < 0.9
                else "failed"
                if roll < 0.95
                else "canceled"
                if roll < 0.98
                else "pending"
            )
            kind = rng.choice(("checkout", "checkout", "purchase", "auto_top_up"))
            paid = at + timedelta(seconds=rng.randrange(1, 30)) if status == "succeeded" else None
            failure = "card_declined" if status == "failed" else None
            rows.append(
                (
                    new_id(rng, "pay", at),
                    account,
                    kind,
                    status,
                    cents,
                    cents * 10_000,
                    "usd",
                    creator,
                    "sandbox",
                    f"bench_pi_{n:06d}",
                    failure,
                    paid,
                    at,
                    paid or at,
                )
            )
        rows.sort(key=lambda r: r[0])
        self.payments = rows

    def _build_api_keys(self) -> None:
        a, rng = self.args, self.rng
        owners = [rows[0][1] for rows in self.org_members.values()]
        owner_set = set(owners)
        others = [u for u in self.user_ids if u not in owner_set]
        holders = list(dict.fromkeys(owners)) + rng.sample(others, min(a.other_keys, len(others)))
        by_user: dict[str, list[dict[str, str]]] = {}
        for oid, rows in self.org_members.items():
            for mid, uid, role in rows:
                by_user.setdefault(uid, []).append({"orgId": oid, "memberId": mid, "role": role})
        created = self.anchor - timedelta(days=1)
        for uid in holders:
            issued = issue_api_key()
            self.api_keys.append(
                (
                    new_id(rng, "key", created),
                    uid,
                    None,
                    "bench",
                    issued.lookup,
                    issued.prefix,
                    issued.secret_hash,
                    created,
                )
            )
            self.tokens.append(
                {"userId": uid, "token": issued.token, "memberships": by_user.get(uid, [])}
            )

    def _build_corpus_rows(self, rng: random.Random) -> None:
        """Plans, subscriptions, invites and organization keys, for the corpus's pages."""
        made = self.anchor - timedelta(days=400)
        plans = []
        for name, cents, features in (
            ("teams-basic", 1_500, ["seats", "usage"]),
            ("teams-pro", 4_000, ["seats", "usage", "sso"]),
            ("teams-enterprise", 9_000, ["seats", "usage", "sso", "audit"]),
        ):
            pid = new_id(rng, "pln", made)
            plans.append(pid)
            title = name.split("-")[1].title()
            row = (pid, name, f"Teams {title}", "teams", "Monthly", cents, json.dumps(features))
            self.plans.append((*row, True, made))
        period_start = self.anchor - timedelta(days=10)
        for oid in self.org_ids:
            rows = self.org_members[oid]
            created = self.anchor - timedelta(days=rng.uniform(20, 90))
            if rng.random() < 0.7:
                sid, pid = new_id(rng, "sub", created), rng.choice(plans)
                seats = len(rows) + rng.randrange(0, 10)
                account = self.org_account[oid]
                self.subscriptions.append(
                    (
                        sid,
                        account,
                        pid,
                        seats,
                        "active",
                        period_start,
                        period_start + timedelta(days=30),
                        created,
                        created,
                    )
                )
                self.plan_history.append(
                    (new_id(rng, "plh", created), sid, account, pid, seats, "subscribed", created)
                )
            for _ in range(rng.randrange(0, 9)):
                at = self.anchor - timedelta(days=rng.uniform(0, 30))
                status = rng.choice(("pending", "pending", "accepted", "revoked"))
                self.invites.append(
                    (
                        new_id(rng, "inv", at),
                        oid,
                        f"invitee{rng.randrange(10**9)}@bench.example",
                        rng.choice(("member", "member", "admin")),
                        f"{rng.getrandbits(256):064x}",
                        status,
                        rows[rng.randrange(3)][1],
                        at + timedelta(days=7),
                        at,
                        at,
                    )
                )
            for n in range(rng.randrange(1, 4)):
                at = self.anchor - timedelta(days=rng.uniform(1, 60))
                # Listing keys reads no secret: a random lookup and hash make a valid row.
                lookup, secret = f"{rng.getrandbits(120):030x}", f"{rng.getrandbits(256):064x}"
                self.api_keys.append(
                    (
                        new_id(rng, "key", at),
                        rows[0][1],
                        oid,
                        f"ci-{n}",
                        lookup,
                        "gw_" + lookup[:8],
                        secret,
                        at,
                    )
                )

    def _build_large_orgs(self, rng: random.Random) -> None:
        """Organizations of `large_members` members, each with `large_usages` usage records in
        it (Q1-large: `members(first: 100) { usages(first: 20) }`), and a key for each owner."""
        a = self.args
        span = 90 * 86400 * 1_000_000  # microseconds
        usages = []
        for j in range(a.large_orgs):
            at = self.anchor - timedelta(days=rng.uniform(95, 100))
            oid = new_id(rng, "org", at)
            self.orgs.append((oid, f"Bench Large Org {j:02d}", False, "{}", at, at))
            account = new_id(rng, "acc", at)
            self.accounts.append(
                (account, "organization", None, oid, 0, "usd", False, 0, 0, at, at, False)
            )
            members = []
            for k, uid in enumerate(rng.sample(self.user_ids, a.large_members)):
                mid = new_id(rng, "mbr", at)
                role = "owner" if k == 0 else "admin" if k < 3 else "member"
                self.members.append((mid, oid, uid, role, at, at))
                members.append({"memberId": mid, "userId": uid, "role": role})
                for _ in range(a.large_usages):
                    used = self.anchor - timedelta(microseconds=rng.randrange(span))
                    provider, model, kind = MODELS[rng.randrange(len(MODELS))]
                    prompt = rng.randrange(10, 4000)
                    completion = 0 if kind == "embedding" else rng.randrange(0, 2000)
                    cost = (prompt * 3 + completion * 12) // 10
                    row = (new_id(rng, "usg", used), account, uid, oid, provider, model, kind)
                    total, credits = prompt + completion, cost * 12 // 10
                    usages.append((*row, None, prompt, completion, total, cost, credits, used))
            owner = members[0]["userId"]
            created = self.anchor - timedelta(days=1)
            issued = issue_api_key()
            self.api_keys.append(
                (
                    new_id(rng, "key", created),
                    owner,
                    None,
                    "bench-large",
                    issued.lookup,
                    issued.prefix,
                    issued.secret_hash,
                    created,
                )
            )
            self.large[oid] = {"userId": owner, "token": issued.token, "members": members}
        usages.sort(key=lambda r: r[0])
        self.usages += [
            (r[0], f"gen_large_{n:07d}", *r[1:13], "{}", False, r[13]) for n, r in enumerate(usages)
        ]


COLUMNS: dict[str, list[str]] = {
    "users": [
        "id",
        "email",
        "display_name",
        "photo_url",
        "terms_accepted_at",
        "created_at",
        "updated_at",
    ],
    "organizations": [
        "id",
        "name",
        "remote_config_enabled",
        "default_remote_config",
        "created_at",
        "updated_at",
    ],
    "accounts": [
        "id",
        "kind",
        "user_id",
        "organization_id",
        "balance",
        "currency",
        "auto_top_up_enabled",
        "auto_top_up_threshold",
        "auto_top_up_amount_cents",
        "created_at",
        "updated_at",
        "holds_promotions",
    ],
    "members": ["id", "organization_id", "user_id", "role", "created_at", "updated_at"],
    "usage_records": [
        "id",
        "generation_id",
        "account_id",
        "user_id",
        "organization_id",
        "provider_name",
        "model_name",
        "model_type_name",
        "operation",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_micro_usd",
        "credits_used",
        "metadata",
        "overdrawn",
        "created_at",
    ],
    "payments": [
        "id",
        "account_id",
        "kind",
        "status",
        "amount_cents",
        "credits",
        "currency",
        "creator_user_id",
        "provider",
        "provider_payment_id",
        "failure_reason",
        "paid_at",
        "created_at",
        "updated_at",
    ],
    "plans": [
        "id",
        "name",
        "display_name",
        "type",
        "interval",
        "price_per_seat_cents",
        "features",
        "active",
        "created_at",
    ],
    "subscriptions": [
        "id",
        "account_id",
        "plan_id",
        "seats",
        "status",
        "current_period_start",
        "current_period_end",
        "created_at",
        "updated_at",
    ],
    "plan_history": [
        "id",
        "subscription_id",
        "account_id",
        "plan_id",
        "seats",
        "action",
        "created_at",
    ],
    "invites": [
        "id",
        "organization_id",
        "email",
        "role",
        "token_hash",
        "status",
        "invited_by_user_id",
        "expires_at",
        "created_at",
        "updated_at",
    ],
    "api_keys": [
        "id",
        "user_id",
        "organization_id",
        "name",
        "lookup",
        "prefix",
        "secret_hash",
        "created_at",
    ],
}


async def recreate_schema(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{SCHEMA}"')
    finally:
        await conn.close()
    engine = create_engine(url, search_path=SCHEMA)
    try:
        await upgrade(engine)
        async with engine.connect() as c:
            head = (await c.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        print(f"  migrated schema {SCHEMA!r} to {head}")
    finally:
        await engine.dispose()


async def rebuild_rollups(url: str, schema: str) -> None:
    """Recompute the daily usage roll-ups from the usage rows (resolvers/usage/rollups.py)."""
    engine = create_engine(url, search_path=schema)
    try:
        async with create_session_factory(engine)() as session:
            await rollups.rebuild(session)
            await session.commit()
    finally:
        await engine.dispose()


async def copy_all(url: str, data: Data) -> None:
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        for table, rows in (
            ("users", data.users),
            ("organizations", data.orgs),
            ("accounts", data.accounts),
            ("members", data.members),
            ("usage_records", data.usages),
            ("payments", data.payments),
            ("api_keys", data.api_keys),
            ("plans", data.plans),
            ("subscriptions", data.subscriptions),
            ("plan_history", data.plan_history),
            ("invites", data.invites),
        ):
            started = time.perf_counter()
            await conn.copy_records_to_table(
                table, records=rows, columns=COLUMNS[table], schema_name=SCHEMA
            )
            print(f"  {table:<14} {len(rows):>9,} rows  {time.perf_counter() - started:6.1f}s")
        started = time.perf_counter()
        # COPY goes around ingestion, which keeps the daily roll-ups: compute them.
        await rebuild_rollups(url, SCHEMA)
        print(f"  usage_daily roll-ups          {time.perf_counter() - started:6.1f}s")
        started = time.perf_counter()
        await conn.execute("ANALYZE")
        print(f"  ANALYZE                       {time.perf_counter() - started:6.1f}s")
    finally:
        await conn.close()


def write_tokens(data: Data, url: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "tokens.json"
    payload = {
        "schema": SCHEMA,
        "url": url,
        "seed": data.args.seed,
        "anchor": data.anchor.isoformat(),
        "organizations": {
            oid: [{"memberId": m, "userId": u, "role": r} for m, u, r in rows]
            for oid, rows in data.org_members.items()
        },
        "keys": data.tokens,
        "largeOrganizations": data.large,
    }
    path.write_text(json.dumps(payload))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--anchor", default=DEFAULT_ANCHOR, help="newest usage time (RFC 3339)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--orgs", type=int, default=1_000)
    parser.add_argument("--members-per-org", type=int, default=20)
    parser.add_argument("--usages", type=int, default=1_000_000)
    parser.add_argument("--org-share", type=float, default=0.6, help="share of org usage")
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--other-keys", type=int, default=1_000, help="keys beyond org owners")
    parser.add_argument("--large-orgs", type=int, default=10, help="organizations for large pages")
    parser.add_argument("--large-members", type=int, default=120, help="members of each")
    parser.add_argument("--large-usages", type=int, default=25, help="usage records per member")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = Data(args)
    data.build()
    print(f"generated rows in {time.perf_counter() - started:.1f}s")
    asyncio.run(recreate_schema(args.url))
    asyncio.run(copy_all(args.url, data))
    path = write_tokens(data, args.url)
    print(f"wrote {len(data.tokens)} API keys to {path}")
    print(f"seeded schema {SCHEMA!r} in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
