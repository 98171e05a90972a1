"""Every DataLoader, created fresh per request on the Context: one query per (entity, key) level."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar

from aiodataloader import DataLoader, dispatch_queue_batch
from aiodataloader import Loader as QueuedLoad
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from gateway.db.expressions import one_of
from gateway.db.models import (
    Account,
    ApiKey,
    Invite,
    InviteStatus,
    Member,
    Organization,
    Payment,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    UsageRecord,
    User,
)
from gateway.db.session import RequestDatabase, fetch_rows, orm_session
from resolvers.pagination import (
    Joined,
    Page,
    PageArgs,
    pages_by_parent,
    plain_columns,
    plain_row_type,
)

K = TypeVar("K", bound=Hashable)
Db = AsyncSession | RequestDatabase


class BatchLoader(DataLoader):  # type: ignore[type-arg]
    """aiodataloader's DataLoader (load, load_many, prime, clear, its batch checks) with a
    cheaper dispatch: the queue is taken at the same point of the event loop (two turns after
    the first load of a batch), by two plain callbacks instead of two tasks, and each batch
    runs in one task. A request makes a few loaders and a few batches on each; this is most of
    what a loader costs a small request."""

    def __init__(
        self, batch_load_fn: Callable[[list[Any]], Awaitable[list[Any]]], max_batch_size: int
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.batch_load_fn = batch_load_fn  # type: ignore[assignment]
        self.max_batch_size = max_batch_size
        self._cache: dict[Any, Any] = {}
        self._queue: list[Any] = []
        self._running: set[asyncio.Task[None]] = set()

    def get_cache_key(self, key: Any) -> Any:
        return key

    def load(self, key: Any) -> Any:
        """aiodataloader's `load`, whose cached future is shared by every waiter for the key:
        each waiter gets it shielded, so that one being cancelled (graphql-core cancels the
        siblings of a field whose error nulls their parent) cancels neither the load nor the
        other waiters (it did: they failed with CancelledError, a 500)."""
        return asyncio.shield(super().load(key))

    async def fetch(self, key: Any) -> Any:
        """`await load(key)` without waiting to batch: the batch function runs now, for this
        key alone, in the caller's task. For loads that have nothing to batch with (a REST
        route's, or a field only ever asked for one parent, like the viewer's own usage), where
        batching only costs event-loop turns and a task. Cached like `load`: a load or fetch of
        the same key meanwhile waits for this one."""
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self.loop.create_future()
            try:
                values = await self.batch_load_fn([key])
                if not isinstance(values, list) or len(values) != 1:
                    raise TypeError(f"batch function returned {values!r} for one key")
            except Exception as error:
                self._cache.pop(key, None)  # a failed batch is not cached (as aiodataloader)
                cached.set_exception(error)
            except BaseException:  # this task was cancelled: others waiting must not hang
                self._abandon([(key, cached)])
                raise
            else:
                value = values[0]
                if isinstance(value, Exception):
                    cached.set_exception(value)
                else:
                    cached.set_result(value)
        return await asyncio.shield(cached)  # another waiter's cancellation is not this one's

    async def fetch_each(self, keys: Sequence[Any]) -> list[Any]:
        """Each key's value or error, in order, without waiting to batch: the keys not cached
        go to the batch function now, together, in the caller's task. For the batch forms of
        relation fields (schema/declare.py), which already hold a whole level's keys: the
        per-key queueing, the event-loop turns and the task of `load` bought nothing there.
        Cached like `load` (a load of one of these keys meanwhile waits for this batch); a
        failed batch fails every key it had and is not cached."""
        cache = self._cache
        futures: list[Any] = []
        missing: dict[Any, Any] = {}
        for key in keys:
            future = cache.get(key)
            if future is None:
                future = cache[key] = missing[key] = self.loop.create_future()
            futures.append(future)
        pending = list(missing.items())
        size = self.max_batch_size or len(pending)
        for start in range(0, len(pending), size):
            await self._run_batch(pending[start : start + size])
        results: list[Any] = []
        for future in futures:
            if not future.done():  # another load of this key is under way
                try:
                    await asyncio.shield(future)
                except Exception:  # its error is read below
                    pass
            error = future.exception()
            results.append(error if error is not None else future.result())
        return results

    def _abandon(self, batch: list[tuple[Any, Any]]) -> None:
        """The task loading these keys was cancelled: they leave the cache, and whoever else
        waits for them gets an error rather than waiting for ever."""
        for key, future in batch:
            self._cache.pop(key, None)
            if not future.done():
                future.set_exception(RuntimeError(f"the load of {key!r} was cancelled"))

    async def _run_batch(self, batch: list[tuple[Any, Any]]) -> None:
        """Settle the (key, future) pairs with one call of the batch function."""
        try:
            values = await self.batch_load_fn([key for key, _ in batch])
            if not isinstance(values, list) or len(values) != len(batch):
                raise TypeError(f"batch function returned {values!r} for {len(batch)} keys")
        except Exception as error:
            for key, future in batch:
                self._cache.pop(key, None)
                future.set_exception(error)
            return
        except BaseException:
            self._abandon(batch)
            raise
        for (_, future), value in zip(batch, values, strict=True):
            if isinstance(value, Exception):
                future.set_exception(value)
            else:
                future.set_result(value)

    def do_resolve_reject(self, key: Any, future: Any) -> None:
        self._queue.append(QueuedLoad(key=key, future=future))
        if len(self._queue) == 1:
            self.loop.call_soon(self.loop.call_soon, self._dispatch)

    def _dispatch(self) -> None:
        queue, self._queue = self._queue, []
        size = self.max_batch_size or len(queue)
        for start in range(0, len(queue), size):
            task = self.loop.create_task(dispatch_queue_batch(self, queue[start : start + size]))
            self._running.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._running.discard)


def _loader(batch: Callable[[list[Any]], Awaitable[list[Any]]]) -> DataLoader:
    return BatchLoader(batch, max_batch_size=1000)


async def load_each(loader: DataLoader, keys: Sequence[Hashable]) -> list[Any]:
    """Each key's value, or its error, in order: `load_many` without failing all for one (the
    keys still go out in one batch). For the batch forms of relation fields (schema/declare.py)."""
    if isinstance(loader, BatchLoader) and len(keys) > 1:
        # A whole level's keys (the compiled executor calls a batch form once per level):
        # nothing to wait for. One parent's keys (the standard executor calls the batch form
        # once per parent) are queued, so that the level's parents still share a batch.
        return await loader.fetch_each(keys)
    futures = [loader.load(key) for key in keys]
    values: list[Any] = []
    for future in futures:
        try:
            values.append(await future)
        except Exception as error:
            values.append(error)
    return values


# Statements built once per process (building one costs more than running it); the values
# are bound parameters. (kind, model, column, id(where)) → (where, one-key stmt, many-keys stmt).
_STATEMENTS: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}


def _by_key_statements(model: Any, column: Any, where: Sequence[Any]) -> tuple[Any, Any]:
    """`WHERE column = :_key` and `WHERE column IN :_keys` (plus `where`: module constants)."""
    cache_key = (model, column.key, id(where))
    found = _STATEMENTS.get(cache_key)
    if found is None or found[0] is not where:
        one = select(model).where(column == bindparam("_key"), *where)
        many = select(model).where(one_of(column, "_keys"), *where)
        found = _STATEMENTS[cache_key] = (where, one, many)
    return found[1], found[2]


def _rows_by_key(session: Db, model: Any, column: Any, where: Sequence[Any] = ()) -> DataLoader:
    """key → the one row whose `column` equals it (or None)."""
    one, many = _by_key_statements(model, column, where)

    async def batch(keys: list[Any]) -> list[Any]:
        # One key (the common case on REST routes): `=` rather than an expanding IN.
        if len(keys) == 1:
            result = await orm_session(session).execute(one, {"_key": keys[0]})
        else:
            result = await orm_session(session).execute(many, {"_keys": keys})
        found = {getattr(row, column.key): row for row in result.scalars()}
        return [found.get(key) for key in keys]

    return _loader(batch)


_PLAIN_STATEMENTS: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _plain_rows_by_key(
    session: Db, model: Any, column: Any, where: Sequence[Any] = ()
) -> DataLoader:
    """key → the row whose `column` equals it, as a read-only named tuple (or None): for rows
    that are only shown (several times cheaper to load than ORM instances)."""
    cache_key = (model, column.key, id(where))
    statements = _PLAIN_STATEMENTS.get(cache_key)
    if statements is None:
        columns = plain_columns(model)
        statements = _PLAIN_STATEMENTS[cache_key] = (
            select(*columns).where(column == bindparam("_key"), *where),
            select(*columns).where(one_of(column, "_keys"), *where),
        )
    one, many = statements

    async def batch(keys: list[Any]) -> list[Any]:
        if len(keys) == 1:
            rows = await fetch_rows(session, one, {"_key": keys[0]})
        else:
            rows = await fetch_rows(session, many, {"_keys": keys})
        found = {getattr(row, column.key): row for row in rows}
        return [found.get(key) for key in keys]

    return _loader(batch)


def _lists_by_key(
    session: Db, model: Any, column: Any, order_by: Any, where: Sequence[Any] = ()
) -> DataLoader:
    """key → every row whose `column` equals it, in `order_by` order (small, bounded lists)."""

    async def batch(keys: list[Any]) -> list[Any]:
        stmt = select(model).where(column.in_(keys), *where).order_by(order_by)
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in (await orm_session(session).execute(stmt)).scalars():
            grouped[getattr(row, column.key)].append(row)
        return [grouped.get(key, []) for key in keys]

    return _loader(batch)


def _pages_by_key(
    session: Db,
    model: Any,
    column: Any,
    *,
    newest_first: bool,
    where: Sequence[Any] = (),
    plain: bool = False,
    related: Mapping[str, tuple[Joined, Callable[[], DataLoader]]] | None = None,
    parent_of: Callable[[Any], Any] | None = None,
) -> DataLoader:
    """(parent id, PageArgs) → Page: parents sharing the same arguments load in one query.

    `related` (plain pages): relation name → (how to join its row, the by-id loader to prime
    with it); a page whose `PageArgs.related` names one reads it in the same statement.
    `parent_of`: keys are not `column` values but what maps to one (see `pages_by_parent`);
    each key's page is its own statement."""

    async def batch(keys: list[tuple[str, PageArgs]]) -> list[Page[Any]]:
        by_args: dict[PageArgs, list[str]] = defaultdict(list)
        for parent_id, args in keys:
            by_args[args].append(parent_id)
        results: dict[tuple[str, PageArgs], Page[Any]] = {}
        for args, parent_ids in by_args.items():
            joined, prime = next(
                (related[name] for name in args.related if related and name in related),
                (None, None),
            )
            groups = [[p] for p in dict.fromkeys(parent_ids)] if parent_of else [parent_ids]
            pages: dict[str, Page[Any]] = {}
            for group in groups:
                pages.update(
                    await pages_by_parent(
                        session,
                        model,
                        column,
                        list(dict.fromkeys(group)),
                        args,
                        where=where,
                        newest_first=newest_first,
                        plain=plain,
                        joined=joined,
                        parent_of=parent_of,
                    )
                )
            if joined is not None and prime is not None:
                loader = prime()
                for page in pages.values():
                    for item in page.items:
                        row = joined.row_of(item)
                        if row is not None:
                            loader.prime(row.id, row)
            for parent_id, page in pages.items():
                results[(parent_id, args)] = page
        return [results[key] for key in keys]

    return _loader(batch)


def _counts_by_key(session: Db, model: Any, column: Any, where: Sequence[Any] = ()) -> DataLoader:
    async def batch(keys: list[str]) -> list[int]:
        stmt = (
            select(column, func.count())
            .select_from(model)
            .where(column.in_(keys), *where)
            .group_by(column)
        )
        counts: dict[Any, int] = {
            key: n for key, n in (await orm_session(session).execute(stmt)).all()
        }
        return [int(counts.get(key, 0)) for key in keys]

    return _loader(batch)


def _personal_payment_counts(session: Db, where: Sequence[Any] = ()) -> DataLoader:
    """user id → how many payments (matching `where`) their personal account has."""

    async def batch(keys: list[str]) -> list[int]:
        stmt = (
            select(col(Account.user_id), func.count())
            .select_from(Payment)
            .join(Account, col(Account.id) == col(Payment.account_id))
            .where(col(Account.user_id).in_(keys), *where)
            .group_by(col(Account.user_id))
        )
        counts = {key: n for key, n in (await orm_session(session).execute(stmt)).all()}
        return [int(counts.get(key, 0)) for key in keys]

    return _loader(batch)


def _latest_ids_by_key(session: Db, model: Any, column: Any) -> DataLoader:
    """key → the id of its newest row (ids sort by creation time), or None."""

    async def batch(keys: list[Any]) -> list[str | None]:
        stmt = select(column, func.max(model.id)).where(column.in_(keys)).group_by(column)
        latest: dict[Any, str] = {
            key: found for key, found in await orm_session(session).execute(stmt)
        }
        return [latest.get(key) for key in keys]

    return _loader(batch)


_IN_ORGANIZATION = (UsageRecord.organization_id == bindparam("organization_id"),)


def _member_usage_pages(session: Db) -> DataLoader:
    """(organization id, user id, PageArgs) → that member's usage in that org, newest first.

    Usage pages hold read-only rows (`plain`), not ORM instances: nobody modifies a usage record.
    """

    async def batch(keys: list[tuple[str, str, PageArgs]]) -> list[Page[Any]]:
        groups: dict[tuple[str, PageArgs], list[str]] = defaultdict(list)
        for org_id, user_id, args in keys:
            groups[(org_id, args)].append(user_id)
        results: dict[tuple[str, str, PageArgs], Page[Any]] = {}
        for (org_id, args), user_ids in groups.items():
            pages = await pages_by_parent(
                session,
                UsageRecord,
                UsageRecord.user_id,
                list(dict.fromkeys(user_ids)),
                args,
                where=_IN_ORGANIZATION,
                plain=True,
                params={"organization_id": org_id},
            )
            for user_id, page in pages.items():
                results[(org_id, user_id, args)] = page
        return [results[key] for key in keys]

    return _loader(batch)


_LIVE_ORG = (Organization.deleted_at.is_(None),)
_MEMBER_USER = Joined(User, Member.user_id, "user")

# The caller's membership and the live organization in one statement (was three), both as
# read-only rows: the organization primes `organization_row_by_id`, which the membership check
# is usually followed by. (Writers load the ORM organization through `organization_by_id`.)
_MEMBER_COLUMNS = plain_columns(Member)
_ORGANIZATION_COLUMNS = tuple(
    column.element.label(f"org__{column.key}") for column in plain_columns(Organization)
)
_LIVE_MEMBER_BY_ORG_AND_USER = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .where(
        col(Member.organization_id) == bindparam("org"),
        col(Member.user_id) == bindparam("user"),
        col(Organization.deleted_at).is_(None),
    )
)
_LIVE_MEMBERS_BY_ORGS_AND_USERS = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .where(
        one_of(Member.organization_id, "orgs"),
        one_of(Member.user_id, "users"),
        col(Organization.deleted_at).is_(None),
    )
)


def _live_members_by_org_and_user(
    session: Db, organization_loader: Callable[[], DataLoader]
) -> DataLoader:
    """(organization id, user id) → Member (read-only row) of a live organization, or None."""
    member_row = plain_row_type(Member)._make
    organization_row = plain_row_type(Organization)._make
    split = len(_MEMBER_COLUMNS)

    async def batch(keys: list[tuple[str, str]]) -> list[Member | None]:
        org_ids = list({org for org, _ in keys})
        user_ids = list({user for _, user in keys})
        if len(keys) == 1:
            rows = await fetch_rows(
                session, _LIVE_MEMBER_BY_ORG_AND_USER, {"org": org_ids[0], "user": user_ids[0]}
            )
        else:
            rows = await fetch_rows(
                session, _LIVE_MEMBERS_BY_ORGS_AND_USERS, {"orgs": org_ids, "users": user_ids}
            )
        found = {}
        organizations = organization_loader()
        for row in rows:
            member = member_row(row[:split])
            found[(member.organization_id, member.user_id)] = member
            organizations.prime(member.organization_id, organization_row(row[split:]))
        return [found.get(key) for key in keys]

    return _loader(batch)


# A member and its user in one statement (was two).
_USER_COLUMNS = tuple(column.element.label(f"user__{column.key}") for column in plain_columns(User))
_MEMBER_WITH_USER_BY_ID = (
    select(*_MEMBER_COLUMNS, *_USER_COLUMNS)
    .outerjoin_from(Member, User, col(User.id) == col(Member.user_id))
    .where(col(Member.id) == bindparam("_key"))
)
_MEMBERS_WITH_USERS_BY_IDS = (
    select(*_MEMBER_COLUMNS, *_USER_COLUMNS)
    .outerjoin_from(Member, User, col(User.id) == col(Member.user_id))
    .where(one_of(Member.id, "_keys"))
)


def _members_with_users_by_id(session: Db) -> DataLoader:
    """member id → (Member, its User or None) as read-only rows, or None."""
    member_row = plain_row_type(Member)._make
    user_row = plain_row_type(User)._make
    split = len(_MEMBER_COLUMNS)

    async def batch(keys: list[str]) -> list[tuple[Member, User | None] | None]:
        if len(keys) == 1:
            rows = await fetch_rows(session, _MEMBER_WITH_USER_BY_ID, {"_key": keys[0]})
        else:
            rows = await fetch_rows(session, _MEMBERS_WITH_USERS_BY_IDS, {"_keys": keys})
        found = {}
        for row in rows:
            member = member_row(row[:split])
            user = user_row(row[split:]) if row[split] is not None else None
            found[member.id] = (member, user)
        return [found.get(key) for key in keys]

    return _loader(batch)


# The caller's membership (with the live organization) and another member with its user, in
# one statement: for routes that check the one and then show the other.
_TARGET = aliased(Member, name="target")
_TARGET_USER = aliased(User, name="target_user")
_TARGET_COLUMNS = tuple(
    getattr(_TARGET, column.key).label(f"target__{column.key}") for column in _MEMBER_COLUMNS
)
_TARGET_USER_COLUMNS = tuple(
    getattr(_TARGET_USER, column.key).label(f"target_user__{column.key}")
    for column in plain_columns(User)
)
_MEMBERSHIP_AND_MEMBER = (
    select(*_MEMBER_COLUMNS, *_ORGANIZATION_COLUMNS, *_TARGET_COLUMNS, *_TARGET_USER_COLUMNS)
    .join_from(Member, Organization, col(Organization.id) == col(Member.organization_id))
    .outerjoin(_TARGET, _TARGET.id == bindparam("member"))
    .outerjoin(_TARGET_USER, _TARGET_USER.id == _TARGET.user_id)
    .where(
        col(Member.organization_id) == bindparam("org"),
        col(Member.user_id) == bindparam("user"),
        col(Organization.deleted_at).is_(None),
    )
)


_NOT_CANCELED = (Subscription.status != SubscriptionStatus.CANCELED.value,)
_PENDING_INVITE = (Invite.status == InviteStatus.PENDING.value,)
_LIVE_KEY = (ApiKey.revoked_at.is_(None),)
_SUCCEEDED_PAYMENT = (Payment.status == "succeeded",)


def _payment_pages(
    session: Db, where: Sequence[Any] = (), parent_of: Callable[[Any], Any] | None = None
) -> DataLoader:
    """(account id, or user id with `parent_of`, PageArgs) → payments, newest first, as
    read-only rows: history pages are only shown, never modified."""
    return _pages_by_key(
        session,
        Payment,
        Payment.account_id,
        newest_first=True,
        where=where,
        plain=True,
        parent_of=parent_of,
    )


def _personal_account_of(user_id: Any) -> Any:
    """The id of the user's personal account, as a scalar subquery (one index lookup)."""
    return select(Account.id).where(col(Account.user_id) == user_id).scalar_subquery()


class Loaders:
    """Named for what they load; attribute access keeps call sites greppable.

    Each loader is built on first use (a request touches a handful of the ~30), then cached on
    the instance for the rest of the request.
    """

    def __init__(self, context: Any) -> None:
        self._context = context

    def release(self) -> None:
        """Empty every loader's cache and drop the loaders (the end of a request)."""
        for value in list(vars(self).values()):
            if isinstance(value, DataLoader):
                value.clear_all()
        vars(self).clear()

    @cached_property
    def _db(self) -> RequestDatabase:
        """The request's database: plain reads on its connection, ORM loads on its session."""
        db: RequestDatabase = self._context.db
        return db

    @cached_property
    def user_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, User, User.id)

    @cached_property
    def user_row_by_id(self) -> DataLoader:
        """Read-only rows, for users that are only shown (Member.user, Usage.user, …).

        The caller's own row comes with it, as authentication read it (`Principal.user_row`),
        unless the request has written since: then, as for any row, what the database holds
        when it is first asked for."""
        loader = _plain_rows_by_key(self._db, User, User.id)
        principal = self._context.principal
        if principal is not None and principal.user_row is not None and not self._db.wrote:
            loader.prime(principal.user_id, plain_row_type(User)._make(principal.user_row))
        return loader

    @cached_property
    def organization_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Organization, Organization.id, _LIVE_ORG)

    @cached_property
    def organization_row_by_id(self) -> DataLoader:
        """Live organizations as read-only rows, for reads (writers: `organization_by_id`)."""
        return _plain_rows_by_key(self._db, Organization, Organization.id, _LIVE_ORG)

    @cached_property
    def member_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Member, Member.id)

    @cached_property
    def live_member_by_organization_and_user(self) -> DataLoader:
        return _live_members_by_org_and_user(self._db, lambda: self.organization_row_by_id)

    @cached_property
    def member_with_user_by_id(self) -> DataLoader:
        return _members_with_users_by_id(self._db)

    async def prime_membership_and_member(self, key: tuple[str, str], member_id: str) -> None:
        """`live_member_by_organization_and_user[key]` (and its organization) and, when that
        membership exists, `member_with_user_by_id[member_id]`, from one statement."""
        org_id, user_id = key
        rows = await fetch_rows(
            self._db, _MEMBERSHIP_AND_MEMBER, {"org": org_id, "user": user_id, "member": member_id}
        )
        if not rows:
            self.live_member_by_organization_and_user.prime(key, None)
            return
        row = rows[0]
        member_row, user_row = plain_row_type(Member)._make, plain_row_type(User)._make
        organization = len(_MEMBER_COLUMNS)
        target = organization + len(_ORGANIZATION_COLUMNS)
        target_user = target + len(_TARGET_COLUMNS)
        self.live_member_by_organization_and_user.prime(key, member_row(row[:organization]))
        self.organization_row_by_id.prime(
            org_id, plain_row_type(Organization)._make(row[organization:target])
        )
        found = None
        if row[target] is not None:
            user = user_row(row[target_user:]) if row[target_user] is not None else None
            found = (member_row(row[target:target_user]), user)
        self.member_with_user_by_id.prime(member_id, found)

    @cached_property
    def invite_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Invite, Invite.id)

    @cached_property
    def plan_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Plan, Plan.id)

    @cached_property
    def payment_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Payment, Payment.id)

    @cached_property
    def api_key_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, ApiKey, ApiKey.id)

    @cached_property
    def usage_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, UsageRecord, UsageRecord.id)

    @cached_property
    def subscription_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Subscription, Subscription.id)

    @cached_property
    def account_by_id(self) -> DataLoader:
        return _rows_by_key(self._db, Account, Account.id)

    @cached_property
    def account_by_user_id(self) -> DataLoader:
        return _rows_by_key(self._db, Account, Account.user_id)

    @cached_property
    def account_row_by_user_id(self) -> DataLoader:
        """Personal accounts as read-only rows, for reads (writers: `account_by_user_id`)."""
        return _plain_rows_by_key(self._db, Account, Account.user_id)

    @cached_property
    def account_by_organization_id(self) -> DataLoader:
        return _rows_by_key(self._db, Account, Account.organization_id)

    @cached_property
    def current_subscription_by_account_id(self) -> DataLoader:
        return _rows_by_key(self._db, Subscription, Subscription.account_id, _NOT_CANCELED)

    @cached_property
    def plan_history_pages_by_account_id(self) -> DataLoader:
        return _pages_by_key(self._db, PlanHistory, PlanHistory.account_id, newest_first=True)

    @cached_property
    def latest_plan_history_id_by_subscription_id(self) -> DataLoader:
        return _latest_ids_by_key(self._db, PlanHistory, PlanHistory.subscription_id)

    @cached_property
    def members_by_user_id(self) -> DataLoader:
        return _lists_by_key(self._db, Member, Member.user_id, Member.id)

    @cached_property
    def member_pages_by_organization_id(self) -> DataLoader:
        # Read-only rows (`plain`): listed members are shown and checked, never modified here.
        # A query that shows the members' users reads them in the same statement.
        return _pages_by_key(
            self._db,
            Member,
            Member.organization_id,
            newest_first=False,
            plain=True,
            related={"user": (_MEMBER_USER, lambda: self.user_row_by_id)},
        )

    @cached_property
    def member_count_by_organization_id(self) -> DataLoader:
        return _counts_by_key(self._db, Member, Member.organization_id)

    @cached_property
    def invite_pages_by_organization_id(self) -> DataLoader:
        return _pages_by_key(
            self._db,
            Invite,
            Invite.organization_id,
            newest_first=True,
            where=_PENDING_INVITE,
        )

    @cached_property
    def invite_count_by_organization_id(self) -> DataLoader:
        return _counts_by_key(self._db, Invite, Invite.organization_id, _PENDING_INVITE)

    @cached_property
    def api_key_pages_by_user_id(self) -> DataLoader:
        return _pages_by_key(self._db, ApiKey, ApiKey.user_id, newest_first=True, where=_LIVE_KEY)

    @cached_property
    def api_key_count_by_user_id(self) -> DataLoader:
        return _counts_by_key(self._db, ApiKey, ApiKey.user_id, _LIVE_KEY)

    @cached_property
    def api_key_count_by_organization_id(self) -> DataLoader:
        return _counts_by_key(self._db, ApiKey, ApiKey.organization_id, _LIVE_KEY)

    @cached_property
    def api_key_pages_by_organization_id(self) -> DataLoader:
        return _pages_by_key(
            self._db, ApiKey, ApiKey.organization_id, newest_first=True, where=_LIVE_KEY
        )

    @cached_property
    def payment_pages_by_account_id(self) -> DataLoader:
        return _payment_pages(self._db)

    @cached_property
    def succeeded_payment_pages_by_account_id(self) -> DataLoader:
        return _payment_pages(self._db, _SUCCEEDED_PAYMENT)

    @cached_property
    def personal_payment_pages_by_user_id(self) -> DataLoader:
        """A user's personal account's payments, found in the page's statement (no account
        read first: the user page's payments cost one statement, not two)."""
        return _payment_pages(self._db, parent_of=_personal_account_of)

    @cached_property
    def succeeded_personal_payment_pages_by_user_id(self) -> DataLoader:
        return _payment_pages(self._db, _SUCCEEDED_PAYMENT, parent_of=_personal_account_of)

    @cached_property
    def payment_count_by_account_id(self) -> DataLoader:
        return _counts_by_key(self._db, Payment, Payment.account_id)

    @cached_property
    def succeeded_payment_count_by_account_id(self) -> DataLoader:
        return _counts_by_key(self._db, Payment, Payment.account_id, _SUCCEEDED_PAYMENT)

    @cached_property
    def personal_payment_count_by_user_id(self) -> DataLoader:
        return _personal_payment_counts(self._db)

    @cached_property
    def succeeded_personal_payment_count_by_user_id(self) -> DataLoader:
        return _personal_payment_counts(self._db, _SUCCEEDED_PAYMENT)

    @cached_property
    def usage_pages_by_user_id(self) -> DataLoader:
        return _pages_by_key(
            self._db, UsageRecord, UsageRecord.user_id, newest_first=True, plain=True
        )

    @cached_property
    def usage_pages_by_organization_id(self) -> DataLoader:
        return _pages_by_key(
            self._db,
            UsageRecord,
            UsageRecord.organization_id,
            newest_first=True,
            plain=True,
        )

    @cached_property
    def usage_pages_by_member(self) -> DataLoader:
        return _member_usage_pages(self._db)
