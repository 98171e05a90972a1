"""The gateway's Prometheus metrics (prometheus_client), summed over worker processes when
`PROMETHEUS_MULTIPROC_DIR` is set.

Every label takes a bounded set of values: routes are templates (`/api/v1/organizations/
{orgId}/members`, never a path with ids), GraphQL operations are named only while fewer than
`GATEWAY_METRICS_MAX_OPERATIONS` names have been seen by the process (anonymous, unknown and
later names are one label, `other`), statuses are classes. The metrics are the process's (as
prometheus_client's are), so a test compares values before and after what it does.
"""

from __future__ import annotations

import contextvars
import os
import re
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# prometheus_client picks its per-process value files when imported, from this variable: the
# operator (or compose) must point it at an empty directory, wiped at every start.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

OTHER = "other"  # the one label of every operation or route that gets no label of its own
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")

REQUESTS = Counter(
    "gateway_requests",
    "HTTP requests served, by route template, method and status code.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time to serve a request, by route template, GraphQL operation and status class.",
    ["route", "method", "operation", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DB_POOL_IN_USE = Gauge(
    "gateway_db_pool_connections_in_use",
    "Database connections taken from the pool (PostgreSQL's gated pool).",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "gateway_db_pool_waiting",
    "Requests waiting for a database connection to come free.",
    multiprocess_mode="livesum",
)
LEDGER_POSTINGS = Counter(
    "gateway_ledger_postings",
    "Ledger entries committed, by reason (usage, top_up, refund, promotion, ...).",
    ["reason"],
)
USAGE_EVENTS = Counter(
    "gateway_usage_events",
    "Usage events ingested and committed: recorded, or a duplicate of one already recorded.",
    ["outcome"],
)
WEBHOOK_EVENTS = Counter(
    "gateway_webhook_events",
    "Payment provider webhook deliveries, by provider and outcome.",
    ["provider", "outcome"],
)


class RequestLabels:
    """What the layers below learn of a request that its metrics are labelled with: its route
    template (the REST router's) and its GraphQL operation."""

    __slots__ = ("operation", "route")

    def __init__(self) -> None:
        self.route: str | None = None
        self.operation = ""


_labels: contextvars.ContextVar[RequestLabels | None] = contextvars.ContextVar(
    "request_labels", default=None
)


def start_request() -> tuple[RequestLabels, contextvars.Token[RequestLabels | None]]:
    labels = RequestLabels()
    return labels, _labels.set(labels)


def end_request(token: contextvars.Token[RequestLabels | None]) -> None:
    _labels.reset(token)


def name_route(template: str) -> None:
    """The request's route, as a template (the router that matched knows it)."""
    labels = _labels.get()
    if labels is not None:
        labels.route = template


class OperationNames:
    """The GraphQL operation names this process labels metrics with: the first `limit` valid
    names it sees; anything else (no name, a name past the limit) is `other`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._known: set[str] = set()

    def label(self, name: str | None) -> str:
        if name is None:
            return OTHER
        known = self._known
        if name in known:
            return name
        if len(known) >= self.limit or not _OPERATION_NAME.fullmatch(name):
            return OTHER
        known.add(name)
        return name


_operation_names = OperationNames(100)


def configure(max_operation_names: int) -> None:
    """At the app's creation: the operation names it labels start afresh, up to this many."""
    global _operation_names
    _operation_names = OperationNames(max_operation_names)


def name_operation(name: str | None) -> None:
    """The request's GraphQL operation (None: anonymous, or not a valid operation)."""
    labels = _labels.get()
    if labels is not None:
        labels.operation = _operation_names.label(name)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


def observe_request(route: str, method: str, operation: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else OTHER  # any token is a method to HTTP
    key = (route, method, operation, status)
    found = _request_series.get(key)
    if found is None:  # labels() takes a lock and builds its key: once per series, not request
        found = _request_series[key] = (
            REQUESTS.labels(route, method, str(status) if 100 <= status <= 599 else OTHER),
            REQUEST_DURATION.labels(route, method, operation, status_class(status)),
        )
    count, duration = found
    count.inc()
    duration.observe(seconds)


# The series of each (route, method, operation, status) seen: bounded, as their labels are.
_request_series: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def render() -> tuple[bytes, str]:
    """The text exposition of every metric (and its content type): of all worker processes
    together in multiprocess mode, else of this process (with its own process_* metrics)."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exited() -> None:
    """At a worker's shutdown: its live gauges (pool connections, waiters) stop counting."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())
