"""`gateway keys | users | payments refund | promotions | mail-worker`: the operators' commands,
which act on live data through the same resolvers as the API (never printing a secret)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.cli_support import as_service, run, with_session
from gateway.settings import Settings

if TYPE_CHECKING:
    from resolvers.context import Context

# Rows an operator listing prints at most (`keys list`, `users list`).
LISTING_LIMIT = 1000


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.api_keys import all_api_keys

    async def work(session: AsyncSession) -> list[list[str]]:
        found = await all_api_keys(
            session, email=args.email, revoked=args.revoked, limit=LISTING_LIMIT
        )
        return [
            [
                k.key.id,
                f"{k.key.prefix}…",
                k.email,
                k.key.organization_id or "-",
                _when(k.key.created_at),
                _when(k.key.last_used_at),
                _when(k.key.expires_at),
                "revoked " + _when(k.key.revoked_at) if k.key.revoked_at else "live",
                k.key.name,
            ]
            for k in found
        ]

    header = ["id", "prefix", "user", "organization", "created", "last used", "expires", "state"]
    _print_table([[*header, "name"], *run(with_session(settings, work))], "--email")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.db.models import ApiKey
    from gateway.errors import NotFound
    from resolvers.api_keys import revoke_api_key

    async def work(session: AsyncSession) -> None:
        await revoke_api_key(session, [col(ApiKey.id) == args.key_id])

    try:
        run(with_session(settings, work))
    except NotFound:
        print(f"error: no live API key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}: it no longer authenticates")
    return 0


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    from resolvers.users import all_users

    async def work(session: AsyncSession) -> list[list[str]]:
        found = await all_users(session, deleted=args.deleted, limit=LISTING_LIMIT)
        return [
            [
                u.id,
                u.email,
                _when(u.created_at),
                "deleted " + _when(u.deleted_at) if u.deleted_at else "active",
                u.display_name,
            ]
            for u in found
        ]

    header = ["id", "email", "created", "state", "name"]
    _print_table([header, *run(with_session(settings, work))])
    return 0


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def _print_table(rows: list[list[str]], narrower: str = "") -> None:
    """Columns padded to their widest cell; the last one left as it is (a free-text name).
    A listing cut at `LISTING_LIMIT` rows says so (on stderr, so the table stays parseable)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    if len(rows) - 1 >= LISTING_LIMIT:
        hint = f"; narrow it with {narrower}" if narrower else ""
        print(f"(the newest {LISTING_LIMIT} only{hint})", file=sys.stderr)


def cmd_mail_worker(settings: Settings, _: argparse.Namespace) -> int:
    import signal

    from gateway.db.engine import create_engine
    from gateway.db.session import create_session_factory
    from gateway.logging import configure_logging
    from gateway.mail.worker import MailWorker

    configure_logging(settings.log_level, settings.log_format)

    async def work() -> None:
        engine = create_engine(settings.database_url, search_path=settings.database_schema)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await MailWorker(settings, create_session_factory(engine)).run(stop)
        finally:
            await engine.dispose()

    print("delivering the mail outbox; stop with Ctrl-C or SIGTERM", file=sys.stderr)
    run(work())
    return 0


def cmd_payments_refund(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.db.models import Payment
    from gateway.errors import DomainError
    from resolvers import payments

    async def work(ctx: Context) -> Payment:
        return await payments.refund_payment(ctx, args.payment_id, args.amount_cents)

    try:
        payment = run(as_service(settings, work))
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(
        f"{payment.id}: {payment.status}, {payment.refunded_cents} of {payment.amount_cents}"
        f" cents refunded, {payment.refunded_credits} of {payment.credits} credits taken back"
    )
    return 0


def _instant(value: str) -> datetime:
    """An RFC 3339 time (`2027-01-31T00:00:00Z`) or a date (midnight UTC)."""
    from gateway.inputs import timestamp_in_range

    try:
        parsed = datetime.fromisoformat(value)
        if len(value) == 10:  # a date alone
            parsed = parsed.replace(tzinfo=UTC)
        return timestamp_in_range(parsed)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


def cmd_promotions(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.db.models import Promotion
    from gateway.errors import DomainError
    from resolvers import promotions

    async def create(ctx: Context) -> Promotion:
        return await promotions.create_promotion(
            ctx,
            promotions.NewPromotion(
                code=args.code,
                credits=args.credits,
                description=args.description,
                starts_at=args.starts,
                expires_at=args.expires,
                max_redemptions=args.max_redemptions,
                organization_id=args.organization,
                user_id=args.user,
            ),
        )

    async def end(ctx: Context) -> Promotion:
        return await promotions.end_promotion(ctx, args.id)

    async def expire(ctx: Context) -> promotions.Sweep:
        return await promotions.expire_due(ctx)

    try:
        if args.action == "expire":
            sweep = run(as_service(settings, expire))
            print(f"settled {sweep.accounts} accounts; {sweep.expired} micro-credits expired")
            return 0
        promotion = run(as_service(settings, create if args.action == "create" else end))
    except DomainError as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"error{where}: {exc.message}", file=sys.stderr)
        return 1
    cap = promotion.max_redemptions if promotion.max_redemptions is not None else "no cap"
    print(f"promotion: {promotion.id}  code: {promotion.code}  credits: {promotion.credits}")
    print(f"runs: {promotion.starts_at.isoformat()} to {promotion.expires_at.isoformat()}")
    print(f"redemptions: {promotion.redemption_count} of {cap}")
    return 0


def _promotions_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    promotions = sub.add_parser("promotions", help="create, end and expire promotions")
    actions = promotions.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a promotion and print it")
    create.add_argument("--code", required=True, help="3-64 letters, digits, '-' or '_'")
    create.add_argument("--credits", required=True, type=int, help="micro-USD per redemption")
    create.add_argument("--description", default="")
    create.add_argument("--starts", type=_instant, help="RFC 3339 time or date (default: now)")
    create.add_argument(
        "--expires",
        type=_instant,
        help="RFC 3339 time or date; redeemed credits expire then too "
        "(default: GATEWAY_PROMOTION_DEFAULT_DAYS from now)",
    )
    create.add_argument("--max-redemptions", type=int, help="how many accounts may redeem it")
    target = create.add_mutually_exclusive_group()
    target.add_argument("--organization", help="offer it to this organization id only")
    target.add_argument("--user", help="offer it to this user id's personal account only")
    end = actions.add_parser("end", help="end a promotion now (redeemed credits keep expiry)")
    end.add_argument("id", help="the promotion's id (prm-...)")
    actions.add_parser(
        "expire", help="expire every account's promotional credits that are past due"
    )


def add_operator_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The operator commands' parsers, under `gateway`'s subcommands."""
    keys = sub.add_parser("keys", help="list or revoke API keys (never shows their secrets)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_list = keys_sub.add_parser("list", help="API keys, newest first")
    keys_list.add_argument("--email", help="only this user's keys")
    keys_list.add_argument("--revoked", action="store_true", help="revoked keys too")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key: it stops authenticating")
    keys_revoke.add_argument("key_id", help="the key's id (key-…), as `keys list` shows it")
    users = sub.add_parser("users", help="list users")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    users_list = users_sub.add_parser("list", help="users, newest first")
    users_list.add_argument("--deleted", action="store_true", help="deleted users too")
    sub.add_parser("mail-worker", help="deliver queued e-mails (outside `gateway serve`)")
    payments = sub.add_parser("payments", help="operate on payments").add_subparsers(
        dest="payments_command", required=True
    )
    refund = payments.add_parser(
        "refund", help="refund a succeeded payment (all that is left, or --amount-cents)"
    )
    refund.add_argument("payment_id", help="pay-…")
    refund.add_argument("--amount-cents", type=int, help="a partial refund's amount")
    _promotions_parser(sub)


# Each command's handler, by its words (`keys list`).
OPERATOR_HANDLERS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "keys list": cmd_keys_list,
    "keys revoke": cmd_keys_revoke,
    "users list": cmd_users_list,
    "mail-worker": cmd_mail_worker,
    "payments refund": cmd_payments_refund,
    "promotions": cmd_promotions,
}
