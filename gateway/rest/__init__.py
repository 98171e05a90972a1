"""REST /api/v1: the compatibility layer over the same resolvers as GraphQL (CONTRACT.md)."""

from __future__ import annotations

from typing import Any

from gateway.rest.framework import RestApp
from gateway.rest.routes import ENDPOINTS


def create_rest_app(state: Any) -> RestApp:
    return RestApp(ENDPOINTS, state.authenticated_context)
