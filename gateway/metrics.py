"""Request counters and latency sums in Prometheus text format, per process."""

from __future__ import annotations

from collections import defaultdict

from starlette.types import Scope


def _route_family(path: str) -> str:
    if path.startswith("/api/v1"):
        return "/api/v1"
    return path if path in {"/graphql", "/healthz", "/readyz", "/metrics"} else "other"


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        family = _route_family(scope.get("path", ""))
        self.requests[(family, scope.get("method", ""), status)] += 1
        self.seconds[family] += seconds

    def render(self) -> str:
        lines = [
            "# HELP gateway_requests_total HTTP requests served by this process.",
            "# TYPE gateway_requests_total counter",
        ]
        for (family, method, status), count in sorted(self.requests.items()):
            lines.append(
                f'gateway_requests_total{{route="{family}",method="{method}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP gateway_request_seconds_total Time spent serving requests.",
            "# TYPE gateway_request_seconds_total counter",
        ]
        for family, total in sorted(self.seconds.items()):
            lines.append(f'gateway_request_seconds_total{{route="{family}"}} {total:.6f}')
        return "\n".join(lines) + "\n"
