"""A cheaper path through graphql-core's executor for plain leaf fields.

Most fields of a dashboard are plain attributes holding a scalar (`email`, `promptTokens`, …):
strawberry resolves them with a default resolver that ignores `info` and takes no arguments.
graphql-core still builds a `GraphQLResolveInfo`, looks at the arguments, and checks each result
for awaitables on every such field. Here those fields are read and completed directly: the same
resolver, the same leaf serialization, the same non-null error and error handling; every other
field (with a resolver, arguments, objects, lists, middleware) takes the standard path.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLObjectType, is_leaf_type, is_non_null_type
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        resolve = field_def.resolve if field_def is not None else None
        if (
            resolve is None
            or not getattr(resolve, "_is_default", False)
            or node.arguments
            or field_def.args  # type: ignore[union-attr]
            or _has_middleware(self.middleware_manager)
        ):
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        return_type = field_def.type  # type: ignore[union-attr]
        leaf_type = return_type.of_type if is_non_null_type(return_type) else return_type
        if not is_leaf_type(leaf_type):
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        try:
            # strawberry's default resolver: `getattr(source, python_name)`, no info used.
            result = resolve(source, None)
            if self.is_awaitable(result):
                return super().execute_field(
                    parent_type, source, field_details_list, path, position_context
                )
            if isinstance(result, Exception):
                raise result
            if result is None or result is Undefined:
                completed = None
            else:
                completed = self.complete_leaf_value(leaf_type, result)  # type: ignore[arg-type]
            if completed is None and leaf_type is not return_type:
                msg = f"Cannot return null for non-nullable field {parent_type}.{node.name.value}."
                raise TypeError(msg)
            return completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


def _has_middleware(manager: Any) -> bool:
    """strawberry always passes a manager; it holds the extensions that hook `resolve`."""
    return manager is not None and bool(manager.middlewares)
