"""Schemathesis checks for the GraphQL fuzzing run (loaded through SCHEMATHESIS_HOOKS).

Schemathesis' own GraphQL check counts every entry of `errors` that is not a validation error
as a server failure, but this gateway answers expected failures (not found, forbidden, bad
input) as coded GraphQL errors by design. What must never happen is an unexpected one: a
5xx, a body that is not GraphQL's JSON, or an error without a code or with the masked code of
an unexpected exception.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def no_unexpected_graphql_error(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}: {response.text[:500]}")
    try:
        body = response.json()
    except ValueError as error:
        raise AssertionError(f"Not JSON: {response.text[:500]}") from error
    for error in body.get("errors") or ():
        code = (error.get("extensions") or {}).get("code")
        if code is None or code == "INTERNAL_SERVER_ERROR":
            raise AssertionError(f"Unexpected GraphQL error: {error}")
