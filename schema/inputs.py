"""GraphQL's side of `gateway.inputs`: NUL refused in every string, literal or variable.

PostgreSQL text cannot hold NUL, and no field of this API has a use for one, so the check is
not per field: a validation rule refuses string literals holding one (validated once per
document, cached with it), and the execution context refuses variables holding one before they
are coerced (`schema/engine/execution.py`). Both answer `BAD_USER_INPUT`, on SQLite as on
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping

from graphql import GraphQLError, StringValueNode, ValidationRule

from gateway.inputs import NUL, NUL_MESSAGE, nul_path

BAD_USER_INPUT = "BAD_USER_INPUT"


class NoNulInStrings(ValidationRule):
    """String literals of the document (arguments, defaults) hold no NUL."""

    def enter_string_value(self, node: StringValueNode, *_: object) -> None:
        if NUL in node.value:
            self.report_error(
                GraphQLError(
                    f"String values {NUL_MESSAGE}",
                    node,
                    extensions={"code": BAD_USER_INPUT},
                )
            )


def nul_in_variables(variables: Mapping[str, object] | None) -> GraphQLError | None:
    """The error for variables holding a NUL anywhere (keys included), or None."""
    if not variables:
        return None
    where = nul_path(variables)
    if where is None:
        return None
    return GraphQLError(f"Variable '${where}' {NUL_MESSAGE}", extensions={"code": BAD_USER_INPUT})
