"""Every private name of Strawberry and graphql-core that the engine reads, read here only.

The engine leans on what these libraries do not promise: helpers that are not exported from
their packages' `__init__` (graphql-core's `collect_subfields`, `invalid_return_type_error`,
`coerce_argument`, `CollectedErrors`; strawberry's argument conversion, enum type, cast marker,
validation rules, execution context), attributes with a leading underscore
(`GraphQLSchema._strawberry_schema`, `Info._raw_info`, `Schema._schema`, a default resolver's
`_is_default`, the schema converter's `_get_field_exception_handlers`), and executor methods
that graphql-core documents as private (`with_abort_signal`, `execute_collected_root_fields`).
A minor release may move any of them. `tests/engine/test_library_internals.py` looks each one
up on real objects and fails naming it, the installed version and the engine function that
needs it (`USES`), so an upgrade breaks a test, not production.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.executor import CollectedErrors, invalid_return_type_error
from graphql.execution.values import coerce_argument
from strawberry import Info, Schema
from strawberry.execution import optimized_is_awaitable
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    StrawberryGraphQLCoreExecutionContext,
)
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.arguments import convert_arguments
from strawberry.types.base import StrawberryMaybe, StrawberryOptional
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.lazy_type import LazyType
from strawberry.utils.str_converters import to_camel_case

if TYPE_CHECKING:  # for annotations only
    from strawberry.schema.schema_converter import GraphQLCoreConverter
    from strawberry.types.execution import ExecutionContext
    from strawberry.types.field import StrawberryField

__all__ = [
    "DEFAULT_ALLOWED_OPERATION_TYPES",
    "DEFINITION",
    "STRAWBERRY_RULES",
    "TYPE_CAST_ATTRIBUTE",
    "USES",
    "CollectedErrors",
    "CustomGraphQLEnumType",
    "ExecutionResult",
    "FieldDetailsList",
    "FragmentDetails",
    "LazyType",
    "OperationType",
    "PreExecutionError",
    "StrawberryGraphQLCoreExecutionContext",
    "StrawberryMaybe",
    "StrawberryOptional",
    "coerce_argument",
    "collect_fields",
    "collect_subfields",
    "convert_arguments",
    "create_execution_context",
    "field_exception_handlers",
    "graphql_schema_of",
    "invalid_return_type_error",
    "is_default_resolver",
    "make_info",
    "optimized_is_awaitable",
    "raw_info",
    "strawberry_process_errors",
    "strawberry_schema_of",
    "to_camel_case",
]

# The key under which strawberry's schema converter keeps a GraphQL type's or field's own
# definition in its `extensions` (GraphQLCoreConverter.DEFINITION_BACKREF).
DEFINITION = "strawberry-definition"

# strawberry's own validation rules, which its `validate_document` adds to every rule set.
STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)


def strawberry_schema_of(schema: GraphQLSchema) -> Schema | None:
    """The strawberry schema a graphql-core schema was built by, or None."""
    found: Schema | None = getattr(schema, "_strawberry_schema", None)
    return found


def graphql_schema_of(schema: Schema) -> GraphQLSchema:
    """The graphql-core schema of a strawberry schema."""
    return schema._schema


def create_execution_context(
    schema: Schema,
    *,
    query: str | None,
    allowed_operation_types: Iterable[OperationType],
    variable_values: dict[str, object] | None,
    context_value: object | None,
    root_value: object | None,
    operation_name: str | None,
    operation_extensions: dict[str, object] | None,
) -> ExecutionContext:
    """strawberry's per-request execution context, as its `execute` makes it."""
    return schema._create_execution_context(
        query=query,
        allowed_operation_types=allowed_operation_types,
        variable_values=variable_values,
        context_value=context_value,
        root_value=root_value,
        operation_name=operation_name,
        operation_extensions=operation_extensions,
    )


def strawberry_process_errors(
    schema: Schema, errors: list[GraphQLError], context: ExecutionContext
) -> None:
    """strawberry's error processing of an execute (its `process_errors`, then logging)."""
    schema._process_errors(errors, context)


def raw_info(info: Info) -> GraphQLResolveInfo:
    """graphql-core's `GraphQLResolveInfo` inside strawberry's `Info`."""
    return info._raw_info


def make_info(info_class: type[Info], raw: GraphQLResolveInfo, field: StrawberryField) -> Info:
    """strawberry's `Info` for a field (as its resolver wrapper builds it)."""
    return info_class(_raw_info=raw, _field=field)


def is_default_resolver(resolve: object) -> bool:
    """Whether a GraphQL field's `resolve` is strawberry's default (an attribute read)."""
    return bool(getattr(resolve, "_is_default", False))


def field_exception_handlers(
    converter: GraphQLCoreConverter, field: StrawberryField
) -> tuple[object, ...]:
    """The exception handlers strawberry wraps a field's resolver in (none: empty)."""
    return converter._get_field_exception_handlers(field)


# Where each name is needed, for the test's messages: name -> the engine's function.
USES: dict[str, str] = {
    "collect_subfields": "compiler._Compiler.subfields (a field's sub-selection)",
    "collect_fields": "execution.ExecutionContext.execute_operation (root fields, verify mode)",
    "FragmentDetails": "setup.OperationSetup (an operation's fragments, as `build` makes them)",
    "invalid_return_type_error": "completion.Completion.complete_object (an object of the wrong type)",
    "coerce_argument": "compiler._Compiler.arguments (literal arguments coerced once)",
    "CollectedErrors": "execution.ExecutionContext._verify (each run's errors)",
    "FieldDetailsList": "execution.ExecutionContext.execute_field (its signature)",
    "optimized_is_awaitable": "prepared.PreparedSchema.execute (as strawberry's execute)",
    "DEFAULT_ALLOWED_OPERATION_TYPES": "prepared.PreparedSchema.execute",
    "StrawberryGraphQLCoreExecutionContext": "execution.ExecutionContext (its base class)",
    "CustomGraphQLEnumType": "compiler._enum_names (enum serialization as a table)",
    "STRAWBERRY_RULES": "prepared.Documents.validated (strawberry's validation rules)",
    "convert_arguments": "run.Run.convert_arguments (strawberry's argument conversion)",
    "StrawberryMaybe": "compiler._Compiler.plain_scalar (arguments passed as they are)",
    "StrawberryOptional": "compiler._Compiler.plain_scalar",
    "TYPE_CAST_ATTRIBUTE": "completion.Completion.complete_object (strawberry.cast objects)",
    "ExecutionResult": "prepared.PreparedSchema.execute (its result)",
    "PreExecutionError": "prepared.PreparedSchema.execute (a refused document)",
    "LazyType": "compiler._Compiler.plain_scalar",
    "OperationType": "prepared.PreparedSchema.execute (the operation's type)",
    "to_camel_case": "projection.row_columns (GraphQL names of declared attributes)",
    "DEFINITION": "compiler._Compiler.field_plan (a field's strawberry definition)",
    "GraphQLSchema._strawberry_schema": "compiler._Compiler, run.Run (the strawberry schema)",
    "Schema._schema": "prepared.PreparedSchema (its graphql-core schema)",
    "Schema._create_execution_context": "prepared.PreparedSchema.execute (error logging)",
    "Schema._process_errors": "prepared.PreparedSchema.execute (error logging)",
    "Info._raw_info": "projection.page_selection (the field's nodes, return type, path)",
    "Info(_raw_info=, _field=)": "run.Run.prepare (a resolver's Info)",
    "resolve._is_default": "compiler._Compiler.field_plan, execution.execute_field",
    "GraphQLCoreConverter._get_field_exception_handlers": "compiler._Compiler.field_plan",
    "ExecutionContext.with_abort_signal": "execution.ExecutionContext.with_abort_signal",
    "ExecutionContext.execute_collected_root_fields": "execution.ExecutionContext (the hook)",
    "ExecutionContext.execute_field": "execution.ExecutionContext.execute_field (the hook)",
    "ExecutionContext.build": "execution.ExecutionContext.build (NUL in variables)",
    "ExecutionContext.execute_operation": "execution.ExecutionContext.execute_operation",
    "ExecutionContext.__init__": "execution.ExecutionContext.execute_prepared (built directly)",
}
