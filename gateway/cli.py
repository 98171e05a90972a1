"""`gateway serve | migrate | new-migration | create-user | create-api-key | export-schema | seed-demo | seed-plans`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.settings import Settings

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"

_T = TypeVar("_T")


async def _with_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[_T]]) -> _T:
    from gateway.db.session import create_engine, create_session_factory

    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    try:
        async with create_session_factory(engine)() as session:
            return await work(session)
    finally:
        await engine.dispose()


async def _migrate(settings: Settings) -> None:
    from gateway.db.migrate import upgrade
    from gateway.db.session import create_engine

    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _user_count(settings: Settings) -> int:
    from gateway.db.models import User

    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)

    return await _with_session(settings, count)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    asyncio.run(_migrate(settings))
    print("database is at the latest migration")
    return 0


def cmd_new_migration(_: Settings, args: argparse.Namespace) -> int:
    from gateway.db.migrate import new_revision

    path = asyncio.run(new_revision(args.message))
    print(f"wrote {path}: read it, then `gateway migrate` and the tests check it", file=sys.stderr)
    return 0


def _announcer(settings: Settings) -> Callable[[str], None]:
    """How `serve` tells what it does before uvicorn starts: lines for a person, or log lines
    in JSON like every other line when GATEWAY_LOG_FORMAT=json."""
    if settings.log_format != "json":
        return lambda message: print(message, file=sys.stderr)
    import logging

    from gateway.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return logging.getLogger("gateway.cli").info


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.logging import uvicorn_log_config

    say = _announcer(settings)
    if settings.migrate_on_start:
        asyncio.run(_migrate(settings))
    if asyncio.run(_user_count(settings)) == 0:
        say(
            "No users yet. Create one and its first API key with:\n"
            "  gateway create-user --email you@example.com --name 'Your Name'\n"
            "then call the API with 'Authorization: Bearer <key>'."
        )
    host = args.host or settings.host
    port = args.port or settings.port
    say(f"serving on http://{host}:{port}  (GraphiQL at /graphql)")
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=settings.workers,
        log_level=settings.log_level,
        # Every process's lines, uvicorn's included, in GATEWAY_LOG_FORMAT (gateway/logging.py).
        log_config=uvicorn_log_config(settings.log_level, settings.log_format),
        access_log=settings.access_log,
        proxy_headers=True,
        # Request headers that do not arrive in time close the connection (uvicorn's httptools
        # protocol with a timer: gateway/http_limits.py).
        http="gateway.http_limits:HeaderTimeoutProtocol",
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
    )
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.errors import DomainError
    from resolvers.api_keys import insert_api_key
    from resolvers.users import create_user

    async def work(session: AsyncSession) -> tuple[str, str]:
        user = await create_user(session, email=args.email, display_name=args.name or "")
        _, token = await insert_api_key(session, user_id=user.id, name="first key")
        await session.commit()
        return user.id, token

    try:
        user_id, token = asyncio.run(_with_session(settings, work))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"user:    {user_id}")
    print(f"api key: {token}   (shown once; store it now)")
    return 0


def cmd_create_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.db.models import User
    from resolvers.api_keys import insert_api_key

    async def work(session: AsyncSession) -> str | None:
        user = (
            await session.execute(select(User).where(col(User.email) == args.email.strip().lower()))
        ).scalar_one_or_none()
        if user is None or user.deleted_at is not None:
            return None
        _, token = await insert_api_key(session, user_id=user.id, name=args.name)
        await session.commit()
        return token

    token = asyncio.run(_with_session(settings, work))
    if token is None:
        print(f"error: no user with email {args.email}", file=sys.stderr)
        return 1
    print(f"api key: {token}   (shown once; store it now)")
    return 0


def cmd_export_schema(settings: Settings, args: argparse.Namespace) -> int:
    from schema import build_schema

    sdl = build_schema(settings).as_str() + "\n"
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_seed_demo(settings: Settings, _: argparse.Namespace) -> int:
    from gateway.seed import seed_demo

    summary = asyncio.run(_with_session(settings, seed_demo))
    print(summary)
    return 0


def cmd_seed_plans(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from gateway.billing.subscriptions import StripeSubscriptions, build_subscription_provider
    from gateway.errors import DomainError
    from resolvers.plans import DEFAULT_PLANS, seed_plans

    specs: Iterable[Mapping[str, object]] = DEFAULT_PLANS
    if args.file:
        try:
            loaded = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
            return 1
        if not isinstance(loaded, list) or not all(isinstance(s, dict) for s in loaded):
            print("error: the file must hold a JSON list of plan objects", file=sys.stderr)
            return 1
        specs = loaded
    if args.stripe and settings.payments_provider != "stripe":
        print("error: --stripe needs GATEWAY_PAYMENTS_PROVIDER=stripe", file=sys.stderr)
        return 1

    async def work(session: AsyncSession) -> list[str]:
        done = await seed_plans(session, specs)
        lines = []
        provider = build_subscription_provider(settings) if args.stripe else None
        try:
            for plan, created in done:
                if isinstance(provider, StripeSubscriptions):
                    plan.provider_price_id = await provider.ensure_plan(plan)
                    session.add(plan)
                verb = "created" if created else "updated"
                lines.append(f"{verb} {plan.name} ({plan.id}) provider: {plan.provider_price_id}")
        finally:
            if provider is not None:
                await provider.close()
        await session.commit()
        return lines

    try:
        lines = asyncio.run(_with_session(settings, work))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply migrations and serve HTTP")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="upgrade the database to the latest migration")
    revision = sub.add_parser(
        "new-migration", help="write the migration from the latest one to the models"
    )
    revision.add_argument("message", help="what it changes, e.g. 'organizations: website'")
    user = sub.add_parser("create-user", help="create a user and print a first API key")
    user.add_argument("--email", required=True)
    user.add_argument("--name", default="")
    key = sub.add_parser("create-api-key", help="print a new API key for an existing user")
    key.add_argument("--email", required=True)
    key.add_argument("--name", default="cli key")
    export = sub.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default=str(SCHEMA_FILE))
    sub.add_parser("seed-demo", help="create a demo user, organization and members")
    plans = sub.add_parser("seed-plans", help="create or update the plan catalog by name")
    plans.add_argument("--file", help="JSON list of plans (default: the built-in catalog)")
    plans.add_argument(
        "--stripe", action="store_true", help="also create missing Stripe Products and Plans"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    handlers = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "new-migration": cmd_new_migration,
        "create-user": cmd_create_user,
        "create-api-key": cmd_create_api_key,
        "export-schema": cmd_export_schema,
        "seed-demo": cmd_seed_demo,
        "seed-plans": cmd_seed_plans,
    }
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
