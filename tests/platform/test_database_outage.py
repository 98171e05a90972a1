"""PostgreSQL vanishing under the gateway and coming back: no 500, 503 with `Retry-After`
while it is away, full recovery by itself after, nothing lost or applied twice.

A small TCP proxy in the test stands between the app and PostgreSQL: `stop()` refuses new
connections and cuts the open ones (what the gateway sees when the server goes away),
`hang()` accepts connections and never answers (a server that does not respond), `start()`
serves again on the same port. Phases are driven explicitly, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from gateway.billing.ledger import sum_of_entries
from gateway.db import models
from gateway.db.engine import create_engine
from gateway.db.outage import unavailable
from gateway.db.sqlalchemy_internals import AsyncAdapt_Error
from gateway.errors import DatabaseUnavailable, ServiceBusy
from tests.billing.helpers import SECRET as WEBHOOK_SECRET
from tests.billing.helpers import balance_of_payment, deliver, intent, pending_payment
from tests.billing.helpers import event as webhook_event
from tests.conftest import PG_URL, Client, Env, base_settings, running_env
from tests.usage.helpers import balance, event, fund, ingest

pg_only = pytest.mark.skipif(not PG_URL, reason="PostgreSQL behind a proxy")

# Generous: recovery is expected within a fraction of a second once the server is back.
RECOVERY_SECONDS = 10.0


class Proxy:
    """A TCP proxy on 127.0.0.1 (a free port, kept across restarts) to one server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._hanging = False
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> None:
        self._hanging = False
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._cut()

    async def hang(self) -> None:
        """Cut open connections; accept new ones and never answer."""
        await self.stop()
        await self.start()
        self._hanging = True

    async def stop_and_thaw(self) -> None:
        await self.stop()
        self.thaw()

    def freeze(self) -> None:
        """Keep every connection open and pass nothing more either way (a server, or a
        network, that stopped answering in the middle of a conversation)."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def _cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._hanging:
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._writers.discard(writer)


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    if not PG_URL:
        pytest.skip("PostgreSQL behind a proxy")
    url = make_url(PG_URL or "")
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def _proxied(proxy: Proxy) -> str:
    return make_url(PG_URL or "").set(host="127.0.0.1", port=proxy.port).render_as_string(False)


@pytest.fixture
async def outage_env(
    request: pytest.FixtureRequest, proxy: Proxy, pg_schema: str | None
) -> AsyncIterator[Env]:
    """The app on PostgreSQL through the proxy, with a small pool (4) as in the report."""
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = {
        "database_pool_size": 4,
        "database_pool_timeout": 5.0,
        "database_connect_timeout": 5.0,
        "readiness_timeout": 1.0,
        **(marker.kwargs if marker is not None else {}),
    }
    settings = base_settings(database_url=_proxied(proxy), database_schema=pg_schema, **overrides)
    truncate = base_settings(database_url=PG_URL, database_schema=pg_schema)
    async with running_env(settings, truncate=truncate, raise_app_exceptions=False) as env:
        yield env


VIEWER = "{ viewer { id } }"


def assert_unavailable_on_rest(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert body["success"] is False and body["error"]


def assert_unavailable_on_graphql(response: httpx.Response) -> None:
    assert response.status_code in (200, 503), response.text
    body = response.json()
    assert [e["extensions"]["code"] for e in body["errors"]] == ["SERVICE_UNAVAILABLE"]
    assert int(response.headers["retry-after"]) >= 1


async def gql(client: Client, query: str, variables: dict[str, Any] | None = None) -> Any:
    return await client.http.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers=client._headers(None),
    )


async def wait_for_recovery(client: Client) -> None:
    """Until a request succeeds again, within a generous bound."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        response = await client.get("/users/me")
        if response.status_code == 200:
            return
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, "the gateway did not recover"
        await asyncio.sleep(0.05)


async def back_and_recovered(proxy: Proxy, client: Client) -> None:
    """The database is reachable again, and the gateway answers `client` again."""
    await proxy.start()
    await wait_for_recovery(client)


async def test_requests_during_an_outage_answer_503_and_the_gateway_recovers_after(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    assert (await alice.get("/users/me")).status_code == 200

    await proxy.stop()
    # More requests than the pool has connections, REST and GraphQL, each authenticating.
    down = await asyncio.gather(*(alice.get("/users/me") for _ in range(12)))
    for response in down:
        assert_unavailable_on_rest(response)
    for response in await asyncio.gather(*(gql(alice, VIEWER) for _ in range(6))):
        assert_unavailable_on_graphql(response)

    await back_and_recovered(proxy, alice)
    again = await asyncio.gather(*(alice.get("/users/me") for _ in range(12)))
    assert [r.status_code for r in again] == [200] * 12
    for response in await asyncio.gather(*(gql(alice, VIEWER) for _ in range(6))):
        assert response.json() == {"data": {"viewer": {"id": alice.user_id}}}


USER_PAGE = """query ($id: ID!) {
  user(id: $id) {
    id email
    usages(first: 5) { nodes { id creditsUsed createdAt } }
    payments(first: 5) { nodes { id status } }
    organizations { organization { id name } }
  }
}"""

MEMBERS_WITH_USAGES = """query ($id: ID!) {
  organization(id: $id) {
    name
    members(first: 20) { nodes { role user { email } usages(first: 5) { nodes { id } } } }
  }
}"""


def assert_ok_or_unavailable(response: httpx.Response) -> bool:
    """A REST or GraphQL answer under an outage: success, or 503 to retry; never a 500."""
    if response.request.url.path == "/graphql":
        body = response.json()
        if response.status_code == 200 and not body.get("errors"):
            return True
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"SERVICE_UNAVAILABLE"}, body
        assert response.status_code in (200, 503)
        assert int(response.headers["retry-after"]) >= 1  # also on a 200 with partial data
        return False
    if response.status_code in (200, 201):
        return True
    assert_unavailable_on_rest(response)
    return False


# Production's executor: `verify` compares two runs of a query, which concurrent ingestion
# legitimately makes differ.
@pytest.mark.settings(graphql_executor="compiled")
async def test_requests_in_flight_when_the_database_goes_away_answer_or_ask_to_retry(
    outage_env: Env, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    """Load across the outage: REST reads, GraphQL pages with nested connections, usage
    ingestion; the proxy is stopped while requests are in flight. Every answer is a success or
    a 503 to retry, nothing is logged as an error, and after the database is back the client
    retries what failed: every event is debited exactly once."""
    env = outage_env
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member)
    account = await env.account_id(user_id=owner.user_id)
    await fund(env, account, 10_000_000)
    events = [event(owner.user_id, credits=100 + i) for i in range(20)]

    def call(i: int) -> Any:
        kind = i % 4
        if kind == 0:
            return owner.get(f"/users/{owner.user_id}/usages")
        if kind == 1:
            return gql(owner, USER_PAGE, {"id": owner.user_id})
        if kind == 2:
            return gql(owner, MEMBERS_WITH_USAGES, {"id": org_id})
        return ingest(env, events[i // 4])

    caplog.set_level(logging.WARNING)
    pending = {asyncio.ensure_future(call(i)) for i in range(80)}
    done: set[asyncio.Future[Any]] = set()
    while len(done) < 8:  # some answered, the rest in flight
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        done |= finished
    await proxy.stop()
    answers = [task.result() for task in done] + list(await asyncio.gather(*pending))
    outcomes = [assert_ok_or_unavailable(response) for response in answers]
    assert True in outcomes and False in outcomes  # the outage was seen, mid-load

    await back_and_recovered(proxy, owner)
    for response in await asyncio.gather(*(call(i) for i in range(80))):
        assert assert_ok_or_unavailable(response)
    # Nothing of ours logged as an error (strawberry's own logging of every GraphQL error is
    # another matter: issue 16, finding 10).
    ours = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith(("gateway", "sqlalchemy"))
    ]
    assert ours == []

    spent = sum(e["credits"] for e in events)
    assert await balance(env, account) == 10_000_000 - spent
    async with env.sessions() as session:
        assert await sum_of_entries(session, account) == 10_000_000 - spent
    assert await env.scalar(select(func.count()).select_from(models.UsageRecord)) == len(events)


async def test_graphql_reads_cut_mid_query_answer_service_unavailable_in_verify_mode_too(
    outage_env: Env, proxy: Proxy
) -> None:
    """`verify` (the suite's executor, and canaries') runs a query twice: when the first run
    lost the database there is nothing to compare, and the answer is the first run's."""
    env = outage_env
    assert env.settings.graphql_executor == "verify"
    owner = await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, await env.user())

    def call(i: int) -> Any:
        if i % 2:
            return gql(owner, USER_PAGE, {"id": owner.user_id})
        return gql(owner, MEMBERS_WITH_USAGES, {"id": org_id})

    pending = {asyncio.ensure_future(call(i)) for i in range(60)}
    done: set[asyncio.Future[Any]] = set()
    while len(done) < 8:
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        done |= finished
    await proxy.stop()
    answers = [task.result() for task in done] + list(await asyncio.gather(*pending))
    outcomes = [assert_ok_or_unavailable(response) for response in answers]
    assert True in outcomes and False in outcomes
    await back_and_recovered(proxy, owner)


async def test_readyz_answers_503_while_the_database_is_away_and_200_after(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    assert (await env.http.get("/readyz")).status_code == 200
    await proxy.stop()
    away = await env.http.get("/readyz")
    assert away.status_code == 503
    assert away.json() == {"status": "unavailable"}
    await proxy.start()
    assert (await env.http.get("/readyz")).status_code == 200


async def test_readyz_is_bounded_when_the_database_does_not_answer(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    await proxy.hang()
    started = time.monotonic()
    response = await env.http.get("/readyz")
    assert response.status_code == 503
    assert time.monotonic() - started < RECOVERY_SECONDS  # the 1 s readiness timeout, not 60 s


@pytest.mark.settings(database_connect_timeout=0.5, database_pool_timeout=30.0)
async def test_a_connection_attempt_that_hangs_is_bounded_by_the_connect_timeout(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    await proxy.hang()
    env.state.engine.sync_engine.pool.dispose()  # no pooled connection left: requests connect
    response = await alice.get("/users/me")
    assert_unavailable_on_rest(response)
    await proxy.stop()
    await back_and_recovered(proxy, alice)


async def test_a_mutation_during_an_outage_is_an_error_with_a_code(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    await proxy.stop()
    response = await gql(
        alice,
        'mutation { createOrganization(input: {name: "Acme"}) { errors { code } } }',
    )
    assert response.status_code in (200, 503), response.text
    body = response.json()
    codes = [e["extensions"]["code"] for e in body.get("errors") or []]
    payload = (body.get("data") or {}).get("createOrganization") or {}
    codes += [e["code"] for e in payload.get("errors") or []]
    assert codes == ["SERVICE_UNAVAILABLE"]
    await back_and_recovered(proxy, alice)
    assert await env.scalar(select(func.count()).select_from(models.Organization)) == 0


@pytest.mark.settings(stripe_webhook_secret=WEBHOOK_SECRET)
async def test_a_webhook_during_an_outage_answers_503_and_its_retry_credits_once(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    payment_id = await pending_payment(env, amount_cents=1000, intent_id="pi_outage")
    body = webhook_event(
        "payment_intent.succeeded",
        intent("pi_outage", payment_id, status="succeeded", amount=1000),
    )
    await proxy.stop()
    response = await deliver(env, body)
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["success"] is False

    await proxy.start()
    assert (await deliver(env, body)).status_code == 200  # Stripe's retry
    assert (await deliver(env, body)).json()["duplicate"] is True
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000


async def test_usage_retried_across_an_outage_is_debited_exactly_once(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    await fund(env, account, 1_000_000)
    events = [event(alice.user_id, credits=1_000 + i) for i in range(12)]
    before, during = events[:6], events[6:]
    responses = await asyncio.gather(*(ingest(env, e) for e in before))
    assert [r.status_code for r in responses] == [200] * 6

    await proxy.stop()
    for response in await asyncio.gather(*(ingest(env, e) for e in during)):
        assert_unavailable_on_rest(response)

    await back_and_recovered(proxy, alice)
    # The client retries everything it is unsure of: the failed ones and the first ones again.
    retried = await asyncio.gather(*(ingest(env, e) for e in events))
    assert [r.status_code for r in retried] == [200] * 12
    duplicates = [r.json()["data"]["items"][0]["duplicate"] for r in retried]
    assert duplicates == [True] * 6 + [False] * 6

    spent = sum(e["credits"] for e in events)
    assert await balance(env, account) == 1_000_000 - spent
    async with env.sessions() as session:
        assert await sum_of_entries(session, account) == 1_000_000 - spent
    usage_entries = await env.all(
        select(models.LedgerEntry).where(models.LedgerEntry.reason == "usage")
    )
    assert len(usage_entries) == 12
    assert await env.scalar(select(func.count()).select_from(models.UsageRecord)) == 12


async def test_a_checkout_retried_across_an_outage_with_its_key_credits_once(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    headers = {"Idempotency-Key": "outage-checkout"}
    body = {"amountCents": 1000}
    await proxy.stop()
    assert_unavailable_on_rest(
        await alice.post("/users/credits/checkout", json=body, headers=headers)
    )
    await back_and_recovered(proxy, alice)
    first = await alice.post("/users/credits/checkout", json=body, headers=headers)
    again = await alice.post("/users/credits/checkout", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await env.scalar(select(func.count()).select_from(models.Payment)) == 1
    account = await env.account_id(user_id=alice.user_id)
    assert await balance(env, account) == 1000 * 10_000
    async with env.sessions() as session:
        assert await sum_of_entries(session, account) == 1000 * 10_000


async def test_a_connection_cut_under_a_statement_is_unavailable_and_replaced(
    outage_env: Env, proxy: Proxy
) -> None:
    """Cut in the middle of a statement, on a request's own connection and on its ORM session:
    `DatabaseUnavailable` (503), the request ends cleanly, and the next one gets a new
    connection (the dead one is never handed out again)."""
    from sqlalchemy import literal_column, text

    from gateway.db.outage import unavailable
    from gateway.db.session import RequestDatabase, fetch_rows
    from gateway.errors import DatabaseUnavailable

    env = outage_env
    backend = select(literal_column("pg_backend_pid()").label("pid"))
    sleeping = select(func.pg_sleep(5).label("slept"))
    for orm in (False, True):
        db = RequestDatabase(env.sessions)
        pid = (await fetch_rows(db, backend))[0].pid
        if orm:
            statement = asyncio.ensure_future(db.session.execute(text("SELECT pg_sleep(5)")))
        else:
            statement = asyncio.ensure_future(fetch_rows(db, sleeping))
        await _until_sleeping(pid)
        await proxy.stop()
        with pytest.raises(DatabaseUnavailable):
            await statement
        if orm:  # the next statement of the request: SQLAlchemy's own error, recognized
            with pytest.raises(Exception) as after:
                await db.session.execute(text("SELECT 1"))
            assert unavailable(after.value)
        await db.close()
        await proxy.start()
        again = RequestDatabase(env.sessions)
        assert (await fetch_rows(again, backend))[0].pid != pid
        await again.close()


async def _until_sleeping(pid: int) -> None:
    """Until PostgreSQL shows backend `pid` inside pg_sleep (asked directly, not by proxy)."""
    import asyncpg

    url = make_url(PG_URL or "").set(drivername="postgresql")
    watcher = await asyncpg.connect(url.render_as_string(False))
    try:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while not await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'",
            pid,
        ):
            assert time.monotonic() < deadline, "the statement never started"
            await asyncio.sleep(0.01)
    finally:
        await watcher.close()


@pg_only
async def test_failed_connection_attempts_give_their_slot_back(pg_schema: str | None) -> None:
    """Every checkout of the pool passes the gate and every failure returns its slot: with one
    connection, attempts against a server that is not there fail at once, again and again,
    instead of waiting for a slot that an earlier failure kept."""
    url = make_url(PG_URL or "").set(host="127.0.0.1", port=_closed_port())
    engine = create_engine(url.render_as_string(False), pool_size=1, pool_timeout=30.0)
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(ServiceBusy):
                async with engine.connect():
                    pass
            assert time.monotonic() - started < RECOVERY_SECONDS
    finally:
        await engine.dispose()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pg_only
async def test_an_orm_session_waits_at_the_gate_like_a_plain_read(pg_schema: str | None) -> None:
    """A request whose first statement goes through the ORM takes its connection through the
    same gate as one that reads directly: when none is free, both get `ServiceBusy` (503)."""
    from sqlalchemy import text

    from gateway.db.session import RequestDatabase, create_session_factory, fetch_rows

    engine = create_engine(PG_URL or "", pool_size=1, pool_timeout=0.2, search_path=pg_schema)
    sessions = create_session_factory(engine)
    holder, reader, writer = (RequestDatabase(sessions) for _ in range(3))
    try:
        await holder.session.execute(text("SELECT 1"))  # the ORM path holds the one connection
        with pytest.raises(ServiceBusy):
            await fetch_rows(reader, select(models.Organization.id))
        with pytest.raises(ServiceBusy):
            await writer.session.execute(text("SELECT 1"))
        await holder.close()
        assert await fetch_rows(reader, select(models.Organization.id)) == []
    finally:
        for database in (holder, reader, writer):
            await database.close()
        await engine.dispose()


@pg_only
async def test_a_pooled_connection_known_closed_is_replaced_before_it_is_handed_out(
    pg_schema: str | None,
) -> None:
    """The server closed an idle pooled connection (restart, idle timeout, an operator): the
    next checkout gets a new connection instead of an error, without a ping per checkout."""
    import asyncpg
    from sqlalchemy import literal_column

    from gateway.db.session import RequestDatabase, create_session_factory, fetch_rows

    engine = create_engine(PG_URL or "", pool_size=1, search_path=pg_schema)
    sessions = create_session_factory(engine)
    backend = select(literal_column("pg_backend_pid()").label("pid"))
    try:
        db = RequestDatabase(sessions)
        pid = (await fetch_rows(db, backend))[0].pid
        driver = (await db._reading_connection()).connection.driver_connection
        await db.close()
        killer = await asyncpg.connect(PG_URL)
        try:
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()
        deadline = time.monotonic() + RECOVERY_SECONDS
        while not driver.is_closed():  # the client side has seen the server close it
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        again = RequestDatabase(sessions)
        assert (await fetch_rows(again, backend))[0].pid != pid
        await again.close()
    finally:
        await engine.dispose()


def _lost_connection_error() -> Exception:
    from sqlalchemy.exc import PendingRollbackError

    return PendingRollbackError(
        "Can't reconnect until invalid transaction is rolled back", code="8s2b"
    )


async def test_rest_answers_503_for_a_lost_connection_error_raised_past_the_engine(
    env: Env,
) -> None:
    from gateway.graphql_http import ClosingContexts
    from gateway.rest.framework import Call, Endpoint, RestApp, rest

    @rest(auth="none")
    async def lost(call: Call) -> None:
        raise _lost_connection_error()

    app = ClosingContexts(
        RestApp([Endpoint("GET", "/lost", lost, "Lost")], env.state.authenticated_context)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert_unavailable_on_rest(await c.get("/lost"))


def test_graphql_codes_a_lost_connection_error_raised_past_the_engine() -> None:
    from graphql import GraphQLError

    from schema.errors import coded_error

    error = coded_error(GraphQLError("lost", original_error=_lost_connection_error()))
    assert error.extensions == {"code": "SERVICE_UNAVAILABLE"}
    assert error.message == "The database is unavailable; retry later"


def test_every_rest_route_documents_503_with_retry_after() -> None:
    from gateway.rest.openapi import build_openapi
    from gateway.rest.routes import ENDPOINTS

    document = build_openapi(ENDPOINTS)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            unavailable = operation["responses"].get("503")
            assert unavailable is not None, (method, path)
            assert unavailable["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorEnvelope"
            }
            assert "Retry-After" in unavailable["headers"]


@pytest.mark.settings(database_pool_size=1, readiness_timeout=0.2)
async def test_readyz_answers_503_when_no_connection_becomes_free_in_time(env: Env) -> None:
    """Every connection held (a wedged pool): `/readyz` says so within its timeout, and its
    wait in the gate leaves nothing behind."""
    if env.backend != "postgresql":
        pytest.skip("the connection gate is PostgreSQL's")
    gate = env.state.engine.sync_engine.pool.gate
    await gate.enter()
    assert (await env.http.get("/readyz")).status_code == 503
    gate.leave()
    assert (await env.http.get("/readyz")).status_code == 200
    assert gate.try_enter()  # the one slot is free again
    gate.leave()


def _raised_from(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_raised_from(AsyncAdapt_Error("closed"), ConnectionResetError()), True),
        (_raised_from(AsyncAdapt_Error("gone"), asyncpg.ConnectionDoesNotExistError()), True),
        (_raised_from(AsyncAdapt_Error("stop"), asyncpg.exceptions.AdminShutdownError()), True),
        (asyncpg.CannotConnectNowError(), True),
        (asyncpg.TooManyConnectionsError(), True),
        (_raised_from(AsyncAdapt_Error("dup"), asyncpg.UniqueViolationError()), False),
        (asyncpg.exceptions.QueryCanceledError(), False),  # a statement's own timeout
        (_raised_from(RuntimeError("provider down"), ConnectionRefusedError()), False),
        (ConnectionRefusedError(), False),  # not from the database layer: the pool decides
        (_lost_connection_error(), True),
    ],
)
def test_what_counts_as_the_database_being_unavailable(error: Exception, expected: bool) -> None:
    assert unavailable(error) is expected


# --- statements that do not come back ----------------------------------------------------------


@pg_only
async def test_a_statement_past_the_statement_timeout_is_503_and_the_connection_stays() -> None:
    engine = create_engine(PG_URL or "", statement_timeout=0.2)
    try:
        async with engine.connect() as connection:
            with pytest.raises(ServiceBusy) as raised:
                await connection.execute(text("SELECT pg_sleep(5)"))
            assert not isinstance(raised.value, DatabaseUnavailable)  # the server is there
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        assert engine.pool.checkedin() == 1  # the same connection, not invalidated
    finally:
        await engine.dispose()


@pytest.mark.settings(database_statement_timeout=0.3)
async def test_a_database_that_stops_answering_mid_request_is_503_and_recovers(
    outage_env: Env, proxy: Proxy
) -> None:
    env = outage_env
    alice = await env.user()
    assert (await alice.get("/users/me")).status_code == 200
    proxy.freeze()  # the pooled connections stay open; nothing comes back on them
    try:
        # (The bound only turns a regression, a request held for ever, into a failure.)
        assert_unavailable_on_rest(await asyncio.wait_for(alice.get("/users/me"), 30))
        assert_unavailable_on_graphql(await asyncio.wait_for(gql(alice, VIEWER), 30))
    finally:
        await proxy.stop_and_thaw()
    await back_and_recovered(proxy, alice)
