"""An operation's preparation, once per query text: parsed, validated, and its errors coded.

One schema extension with one hook does what four did (strawberry's `ParserCache` and
`AddValidationRules`, a validation cache, the error codes): strawberry builds a context manager
per hook of every extension for every request (a wrapper function, a generator, their entry
and exit), which was a fifth of the cost of `{ __typename }`.

- Parsing: one `DocumentNode` per query text (bounded LRU); a text that does not parse is left
  to strawberry, which reports the syntax error as before.
- Validation: strawberry's `ValidationCache` keys an `lru_cache` by `(schema, document, rules)`,
  so every request hashes the whole document (graphql-core's AST nodes hash recursively, ~70
  node hashes for a user page). The parse cache hands out one document per text, so its
  validation result is found by the document's identity (the entry keeps the document, so its
  id is not reused while cached); another document, schema or rule set is validated anew. The
  operation's type is still checked by strawberry before the result is used.
- Errors: `schema.errors.coded_error` on every error of the result.

`PreparedSchema` goes one step further for the common request, an operation whose text is
already prepared (parsed, validated without errors): it executes it without the extension
machinery at all (strawberry's per-request execution context, extension instances, runner, the
four stage context managers and their exit stacks, a middleware manager: about a quarter of a
user page's CPU outside its resolvers). What the extension would have done, it does: the same
document and validation result, the same graphql-core execution, the same error processing and
codes, the same result. Anything else (a text seen for the first time, one that does not parse
or validate, an operation name that is not in the document, an operation type the transport does
not allow, a schema with other extensions) takes strawberry's own `execute`.
`tests/test_prepared_execution.py` holds the two ways' results equal.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, cast

import strawberry
from graphql import GraphQLError, OperationDefinitionNode, execute, parse, specified_rules
from graphql.execution.middleware import MiddlewareManager
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, validate_document
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from schema.errors import coded_error, log_errors

_parse = functools.lru_cache(maxsize=256)(parse)


class PreparedOperations(SchemaExtension):
    # (id(schema), id(document)) -> (schema, document, rules, errors); shared by all requests.
    _entries: OrderedDict[tuple[int, int], tuple[Any, Any, tuple[Any, ...], Any]] = OrderedDict()
    maxsize = 256

    def __init__(self, validation_rules: Sequence[Any] = ()) -> None:
        super().__init__()
        self.validation_rules = tuple(validation_rules)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.validation_rules
        if context.graphql_document is None and context.query:
            try:
                document = _parse(context.query, **context.parse_options)
            except GraphQLError:
                document = None
            if document is not None:
                context.graphql_document = document
                context.pre_execution_errors = self._validated(
                    context.schema._schema, document, tuple(context.validation_rules)
                )
        yield
        result = context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [coded_error(error) for error in result.errors]

    @classmethod
    def _validated(cls, schema: Any, document: Any, rules: tuple[Any, ...]) -> Any:
        entries = cls._entries
        key = (id(schema), id(document))
        found = entries.get(key)
        if found is not None and found[0] is schema and found[1] is document and found[2] == rules:
            entries.move_to_end(key)
            return found[3]
        errors = validate_document(schema, document, rules)
        entries[key] = (schema, document, rules, errors)
        if len(entries) > cls.maxsize:
            entries.popitem(last=False)
        return errors


class _Prepared(NamedTuple):
    document: Any
    operation_name: str | None  # as strawberry resolves it: the first operation's, if not given
    operation_type: OperationType


class PreparedSchema(strawberry.Schema):
    """The schema, executing prepared operations without the extension machinery (module
    docstring). `prepared_execution = False` turns the shortcut off."""

    prepared_execution = True

    def __init__(self, *args: Any, prepared_rules: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rules = (*specified_rules, *prepared_rules)
        # Only while the one extension is PreparedOperations with these rules (it is built by
        # a factory: one instance tells) and nothing streams.
        extensions = self.get_extensions()
        self._shortcut = (
            len(extensions) == 1
            and type(extensions[0]) is PreparedOperations
            and (*specified_rules, *extensions[0].validation_rules) == self._rules
            and not self.config.enable_experimental_incremental_execution
            and self.subscription is None
        )
        self._prepared: OrderedDict[tuple[str, str | None], _Prepared] = OrderedDict()
        # strawberry builds a manager of the extensions that hook `resolve`: here none.
        self._no_middleware = MiddlewareManager()

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Client mistakes at info without a traceback (strawberry logs every error with
        one); unexpected errors are logged, with theirs, where `coded_error` masks them."""
        log_errors(errors)

    def prepared(self, query: str | None, operation_name: str | None) -> _Prepared | None:
        """The operation, if its text parses and validates without errors; else None."""
        if not query:
            return None
        key = (query, operation_name)
        found = self._prepared.get(key)
        if found is not None:
            return found
        try:
            document = _parse(query)
        except GraphQLError:
            return None
        if PreparedOperations._validated(self._schema, document, self._rules):
            return None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None:
            if not operations:
                return None
            operation = operations[0]
            name = operation.name.value if operation.name else None
        else:
            named = [o for o in operations if o.name and o.name.value == operation_name]
            if not named:
                return None
            operation, name = named[0], operation_name
        found = _Prepared(document, name, OperationType(operation.operation.value))
        self._prepared[key] = found
        if len(self._prepared) > PreparedOperations.maxsize:
            self._prepared.popitem(last=False)
        return found

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        prepared = (
            self.prepared(query, operation_name)
            if self._shortcut and self.prepared_execution
            else None
        )
        allowed = (
            DEFAULT_ALLOWED_OPERATION_TYPES
            if allowed_operation_types is None
            else allowed_operation_types
        )
        if prepared is None or prepared.operation_type not in allowed:
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )

        def logged(errors: list[GraphQLError]) -> None:
            """strawberry's `_process_errors`, with its execution context made only now."""
            context = self._create_execution_context(
                query=query,
                allowed_operation_types=allowed,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                operation_extensions=operation_extensions,
            )
            self._process_errors(errors, context)

        try:
            result = execute(
                self._schema,
                prepared.document,
                root_value=root_value,
                middleware=self._no_middleware,
                variable_values=variable_values,
                operation_name=prepared.operation_name,
                context_value=context_value,
                is_awaitable=optimized_is_awaitable,
                executor_class=self.execution_context_class,
                operation_extensions=operation_extensions,
            )
            if optimized_is_awaitable(result):
                result = await cast("Awaitable[Any]", result)
        except Exception as error:  # as strawberry's execute: an error result, logged
            coerced = (
                error
                if isinstance(error, GraphQLError)
                else GraphQLError(str(error), original_error=error)
            )
            logged([coerced])
            return PreExecutionError(data=None, errors=[coerced], extensions={})
        errors = result.errors
        if errors:
            # Logged as they came, then coded for the client (PreparedOperations' hook).
            logged(errors)
            errors = [coded_error(error) for error in errors]
        return ExecutionResult(data=result.data, errors=errors, extensions={})
