"""`gateway serve | migrate | new-migration | create-user | create-api-key | keys | users |
export-schema | seed-demo | seed-plans | mail-worker | payments refund | promotions`: the
service's command line."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.cli_operator import OPERATOR_HANDLERS, add_operator_parsers
from gateway.cli_support import run, with_session
from gateway.errors import ConfigurationError, DatabaseUnavailable
from gateway.settings import Settings

if TYPE_CHECKING:
    pass

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


async def _migrate(settings: Settings) -> None:
    from gateway.db.engine import create_engine
    from gateway.db.migrate import upgrade

    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _user_count(settings: Settings) -> int:
    from gateway.db.models import User

    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)

    return await with_session(settings, count)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    run(_migrate(settings))
    print("database is at the latest migration")
    return 0


def cmd_new_migration(_: Settings, args: argparse.Namespace) -> int:
    from gateway.db.migrate import new_revision

    path = run(new_revision(args.message))
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
    from schema import query_limits, trusted_documents

    say = _announcer(settings)
    # Settings only the app factory reads are checked here, where a mistake is one line.
    trusted_documents(settings, query_limits(settings))
    if settings.migrate_on_start:
        run(_migrate(settings))
    if run(_user_count(settings)) == 0:
        say(
            "No users yet. In another terminal, create one and its first API key with:\n"
            f"  {command_prefix()} create-user --email you@example.com --name 'Your Name'\n"
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
        user_id, token = run(with_session(settings, work))
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

    token = run(with_session(settings, work))
    if token is None:
        print(f"error: no user with email {args.email}", file=sys.stderr)
        return 1
    print(f"api key: {token}   (shown once; store it now)")
    return 0


def cmd_export_schema(settings: Settings, args: argparse.Namespace) -> int:
    from schema import build_schema

    sdl = build_schema(settings).as_str() + "\n"
    output = args.output or args.output_option or str(SCHEMA_FILE)
    if output == "-":
        sys.stdout.write(sdl)
    else:
        try:
            Path(output).write_text(sdl)
        except OSError as error:
            print(f"error: cannot write {output}: {error.strerror or error}", file=sys.stderr)
            return 1
        print(f"wrote {output}", file=sys.stderr)
    return 0


def cmd_seed_demo(settings: Settings, _: argparse.Namespace) -> int:
    from gateway.seed import seed_demo

    summary = run(with_session(settings, seed_demo))
    print(summary)
    return 0


def cmd_seed_plans(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from gateway.billing.stripe_subscriptions import StripeSubscriptions
    from gateway.billing.subscriptions import build_subscription_provider
    from gateway.errors import DomainError
    from resolvers.plan_catalog import DEFAULT_PLANS, seed_plans

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
        lines = run(with_session(settings, work))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def command_prefix() -> str:
    """How to run this command again from here: `gateway` when PATH finds this very script,
    else its path (`.venv/bin/gateway` after `make serve`, whose virtualenv is not on PATH)."""
    script = Path(sys.argv[0])
    if script.name != "gateway":
        return f"{sys.executable} -m gateway.cli"
    found = shutil.which("gateway")
    if found is not None and Path(found).resolve() == script.resolve():
        return "gateway"
    relative = os.path.relpath(script)
    return str(script.resolve()) if relative.startswith("..") else relative


def describe_settings_error(error: ValidationError) -> str:
    """pydantic's report of the environment's settings as one line: the variable, the value
    (unless it is a secret) and what is wrong with it."""
    fields = Settings.model_fields
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule across settings: its message names them
            problems.append(message)
            continue
        name = str(item["loc"][0])
        variable = f"GATEWAY_{name.upper()}"
        field = fields.get(name)
        # Secrets and URLs (which may hold a password) are named, never shown.
        hidden = name.endswith("_url") or (
            field is not None and SecretStr in (field.annotation, *get_args(field.annotation))
        )
        shown = "" if hidden else f"={str(item.get('input'))[:80]!r}"
        problems.append(f"{variable}{shown}: {message}")
    return "; ".join(problems)


def describe_database_error(settings: Settings, error: BaseException) -> str:
    """A database that cannot be used (unreachable, missing, refusing us) as one line: where
    it is (without its password) and the driver's own words."""
    try:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
    except ArgumentError:
        where = "GATEWAY_DATABASE_URL"
    cause: BaseException = error
    # The deepest error that says something: the driver's, under SQLAlchemy's and ours.
    while True:
        inner = getattr(cause, "orig", None) or cause.__cause__
        if inner is None or not str(inner).strip():
            break
        cause = inner
    words = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"cannot use the database {where} (GATEWAY_DATABASE_URL): {words}"


def package_version() -> str:
    try:
        return version("account-gateway")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description=__doc__,
        epilog="Settings are GATEWAY_* environment variables (README, .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"gateway {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="apply migrations and serve HTTP",
        description="Apply the migrations (unless GATEWAY_MIGRATE_ON_START=false) and serve "
        "GraphQL at /graphql and REST at /api/v1 with uvicorn, GATEWAY_WORKERS processes.",
    )
    serve.add_argument("--host", help="address to listen on (default: GATEWAY_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: GATEWAY_PORT, 8000)")
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
    export.add_argument(
        "output",
        nargs="?",
        help="file to write, or - for stdout (default: schema.graphql in the source tree)",
    )
    export.add_argument("--output", dest="output_option", help=argparse.SUPPRESS)
    sub.add_parser("seed-demo", help="create a demo user, organization and members")
    plans = sub.add_parser("seed-plans", help="create or update the plan catalog by name")
    plans.add_argument("--file", help="JSON list of plans (default: the built-in catalog)")
    plans.add_argument(
        "--stripe", action="store_true", help="also create missing Stripe Products and Plans"
    )
    add_operator_parsers(sub)
    return parser


HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "new-migration": cmd_new_migration,
    "create-user": cmd_create_user,
    "create-api-key": cmd_create_api_key,
    "export-schema": cmd_export_schema,
    "seed-demo": cmd_seed_demo,
    "seed-plans": cmd_seed_plans,
    **OPERATOR_HANDLERS,
}


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(
        part
        for part in (
            args.command,
            getattr(args, "keys_command", None),
            getattr(args, "users_command", None),
            getattr(args, "payments_command", None),
        )
        if part
    )
    # A mistake in the environment or an unusable database is the operator's to fix: one
    # line saying what and where, not a traceback (exit 2 and 1).
    try:
        settings = settings or Settings()
    except ValidationError as error:
        print(f"error: {describe_settings_error(error)}", file=sys.stderr)
        return 2
    try:
        return HANDLERS[command](settings, args)
    except ConfigurationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, DatabaseUnavailable, OSError) as error:
        print(f"error: {describe_database_error(settings, error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
