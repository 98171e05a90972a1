"""Changes to what authentication reads (API keys, users), told to every process: in the
writing transaction as a PostgreSQL NOTIFY (delivered on commit only), to this process's own
subscribers after the commit, and heard by `ChangeListener` (PostgreSQL `LISTEN`).

A session collects the users whose keys or rows it changed: ORM flushes of `ApiKey` and `User`
rows name them; a bulk UPDATE or DELETE of either table names nobody in particular, so it
stands for everybody (`EVERYONE`). Statements that change nothing authentication trusts say so
with the execution option `AUTH_UNCHANGED` (the key's `last_used_at`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from gateway.db.models import ApiKey, User

log = logging.getLogger("gateway.auth")

CHANNEL = "gateway_auth"
# An execution option: this write changes nothing a verified key's principal holds.
AUTH_UNCHANGED = "auth_unchanged"
# Whose keys changed: a set of user ids, or `EVERYONE` (None).
EVERYONE = None
Changed = frozenset[str] | None
_TABLES = frozenset({ApiKey.__tablename__, User.__tablename__})
_PENDING = "gateway_auth_changed"  # Session.info: a set of user ids, or EVERYONE's marker
_ALL = "*"
# A payload lists at most this many ids (NOTIFY's limit is 8,000 bytes): more is everyone.
_MAX_IDS = 200

Subscriber = Callable[[Changed], None]
_subscribers: weakref.WeakKeyDictionary[Engine, list[Subscriber]] = weakref.WeakKeyDictionary()


def subscribe(engine: AsyncEngine, subscriber: Subscriber) -> Callable[[], None]:
    """Call `subscriber` after each commit through `engine` that changed keys or users; the
    function returned stops it."""
    listeners = _subscribers.setdefault(engine.sync_engine, [])
    listeners.append(subscriber)
    return lambda: listeners.remove(subscriber) if subscriber in listeners else None


def _note(session: Session, user_ids: set[str] | None) -> None:
    pending: set[str] | None = session.info.get(_PENDING, set())
    if pending is None or user_ids is None:
        session.info[_PENDING] = None
    else:
        session.info[_PENDING] = pending | user_ids


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush_context: UOWTransaction) -> None:
    changed = {
        row.user_id if isinstance(row, ApiKey) else row.id
        for row in (*session.dirty, *session.deleted)
        if isinstance(row, ApiKey | User)
    }
    if changed:
        _note(session, changed)


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete) or state.execution_options.get(AUTH_UNCHANGED):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _TABLES:
        _note(state.session, EVERYONE)


@event.listens_for(Session, "before_commit")
def _notify_in_transaction(session: Session) -> None:
    """The NOTIFY goes out in the transaction that made the change: PostgreSQL delivers it on
    commit, and never for a transaction rolled back."""
    session.flush()  # what commit would flush next may change keys or users
    if _PENDING not in session.info:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    session.connection().execute(
        text("SELECT pg_notify(:channel, current_schema() || ' ' || :payload)"),
        {"channel": CHANNEL, "payload": _payload(session.info[_PENDING])},
    )


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # A released savepoint fires this too: its changes are not committed yet.
    if _PENDING not in session.info or session.in_nested_transaction():
        return
    changed: Changed = _frozen(session.info.pop(_PENDING))
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    for subscriber in list(_subscribers.get(engine, ())):
        subscriber(changed)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's: the rest may still commit, noted
        session.info.pop(_PENDING, None)


def _frozen(pending: set[str] | None) -> Changed:
    return None if pending is None else frozenset(pending)


def _payload(pending: set[str] | None) -> str:
    if pending is None or len(pending) > _MAX_IDS:
        return _ALL
    return " ".join(sorted(pending))


def parse_payload(payload: str, schema: str) -> tuple[bool, Changed]:
    """(whether it is this schema's, whose keys changed) from a notification's payload."""
    notified_schema, _, ids = payload.partition(" ")
    if notified_schema != schema:
        return False, frozenset()
    if ids == _ALL:
        return True, EVERYONE
    return True, frozenset(ids.split())


class ChangeListener:
    """A PostgreSQL connection of its own that LISTENs on `CHANNEL` for the process.

    `on_up` is called once it listens (again), `on_down` as soon as it may have missed a
    notification: the connection closed, or a ping (every `ping_seconds`) that failed or took
    longer than `ping_seconds`; it then connects again, waiting longer each time up to
    `max_backoff` seconds."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None,
        on_change: Subscriber,
        on_up: Callable[[], None],
        on_down: Callable[[], None],
        connect_timeout: float = 5.0,
        ping_seconds: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.on_change = on_change
        self.on_up = on_up
        self.on_down = on_down
        self.connect_timeout = connect_timeout
        self.ping_seconds = ping_seconds
        self.max_backoff = max_backoff
        self.connections = 0  # how many times it has started listening
        self.backend_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._current_schema = ""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        ours, changed = parse_payload(str(payload), self._current_schema)
        if ours:
            self.on_change(changed)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
                backoff = 0.1
            except asyncio.CancelledError:
                self.on_down()
                raise
            except Exception as error:  # the database away: try again, later each time
                log.warning("auth cache: not listening for key changes (%s)", error)
            self.on_down()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _listen(self) -> None:
        server_settings = {"application_name": "account-gateway-listener"}
        if self.schema:
            server_settings["search_path"] = self.schema
        connection = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, server_settings=server_settings
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            self._current_schema = str(await connection.fetchval("SELECT current_schema()"))
            await connection.add_listener(CHANNEL, self._notified)
            self.backend_pid = connection.get_server_pid()
            self.connections += 1
            self.on_up()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.ping_seconds)
                    break
                await connection.fetchval("SELECT 1", timeout=self.ping_seconds)
        finally:
            self.backend_pid = None
            connection.terminate()
