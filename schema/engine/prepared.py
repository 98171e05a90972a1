"""An operation's preparation, once per query text: parsed within the limits, measured,
validated, and its errors coded.

One schema extension with one hook does what four did (strawberry's `ParserCache` and
`AddValidationRules`, a validation cache, the error codes): strawberry builds a context manager
per hook of every extension for every request (a wrapper function, a generator, their entry
and exit), which was a fifth of the cost of `{ __typename }`.

- Parsing and limits (`Documents`): one `DocumentNode` per query text (kept by the text's
  sha256, the identity persisted queries and the plans share), parsed within the length
  and token limits and measured against depth, aliases and cost (schema/limits.py) before
  anything else; kept least recently used first out, bounded by count and by the characters
  of the texts held. A text that does not parse or exceeds a limit is refused by
  `PreparedSchema.execute` before strawberry sees it, and not kept.
- Validation: once per document, schema and rule set, kept with the document (strawberry's
  `ValidationCache` hashed the whole document on every request); suggestions ("Did you
  mean …") left out when the schema hides them. The operation's type is still checked by
  strawberry before the result is used. Errors: `schema.errors.coded_error` on each.

`PreparedSchema` executes an operation whose text is already prepared (parsed, validated
without errors) without the extension machinery (strawberry's per-request execution context,
extension instances, runner, stage context managers, a middleware manager: about a quarter of a
user page's CPU outside its resolvers), doing what the extension would: the same document,
validation, execution, error codes and result. Anything else (a text that does not validate,
an unknown operation name, an operation type the transport does not allow, other extensions)
takes strawberry's own `execute`. `tests/engine/test_prepared_execution.py` holds both equal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeAlias, TypeGuard, cast

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    MiddlewareManager,
    Node,
    OperationDefinitionNode,
    Source,
    execute,
    specified_rules,
    validate,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from gateway import metrics, tracing
from schema.declare import SelectionSource
from schema.engine.internals import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    STRAWBERRY_RULES,
    ExecutionResult,
    OperationType,
    PreExecutionError,
    create_execution_context,
    graphql_schema_of,
    optimized_is_awaitable,
    strawberry_process_errors,
)
from schema.engine.persisted import EXTENSION as PERSISTED_QUERY
from schema.engine.persisted import PersistedDocuments, Resolved, document_digest
from schema.engine.projection import page_selection
from schema.engine.sized_cache import SizedCache
from schema.errors import coded_error, log_errors
from schema.limits import QueryLimits, check_document, check_length, parse_limited

Rules: TypeAlias = tuple[type[ASTValidationRule], ...]


def text_size(node: Node) -> int:
    """The characters of the text a parsed node came from (0 if it has no location)."""
    loc = getattr(node, "loc", None)
    return len(loc.source.body) if loc is not None else 0


class DigestedSource(Source):
    """A document's text with its sha256, the identity of the document wherever it goes:
    prepared documents, persisted queries and the compiled plans (`source_digest`)."""

    def __init__(self, body: str, digest: str) -> None:
        super().__init__(body)
        self.sha256 = digest


def source_digest(node: Node) -> str | None:
    """The sha256 of the text a node was parsed from, if it was prepared here."""
    loc = node.loc
    source = loc.source if loc is not None else None
    return source.sha256 if isinstance(source, DigestedSource) else None


class PreparedDocument:
    """A query text's document, within the limits (schema/limits.py), and its validation
    results by schema and rule set."""

    __slots__ = ("document", "operations", "validations")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.validations: dict[tuple[int, Rules, bool], list[GraphQLError]] = {}
        # PreparedSchema's operations of the document by the name asked for (None: the first).
        self.operations: dict[str | None, _Prepared | None] = {}


class Documents:
    """Prepared documents per query text, least recently used first out, bounded by their
    number and by the characters of their texts together: a parsed document takes ~130 bytes
    per character of its text (tokens, nodes, locations), so distinct texts at the length
    limit cannot fill the memory. Texts that fail to parse or exceed a limit are refused
    again each time (it costs no more than the limits allow) and never kept."""

    def __init__(
        self, limits: QueryLimits, max_entries: int = 256, max_characters: int = 1 << 20
    ) -> None:
        self.limits = limits
        self._entries: SizedCache[str, PreparedDocument] = SizedCache(max_entries, max_characters)

    def prepare(
        self, schema: GraphQLSchema, query: str, digest: str | None = None
    ) -> PreparedDocument:
        """The text's prepared document, by its sha256 (`digest` when the caller knows it);
        a GraphQLError (coded) when it does not parse or exceeds a limit (`schema` is
        graphql-core's, for the cost of its fields). The length is checked before hashing."""
        if digest is None:
            check_length(query, self.limits)
            digest = document_digest(query)
        found = self._entries.get(digest)
        if found is not None:
            return found
        document = parse_limited(DigestedSource(query, digest), self.limits)
        exceeded = check_document(schema, document, self.limits)
        if exceeded:
            raise _Refused(exceeded)
        found = PreparedDocument(document)
        self._entries.put(digest, found, len(query))
        return found

    def cached(self, query: str) -> PreparedDocument | None:
        """The text's prepared document if it is kept (never parsed here; a text past the
        length limit was refused unhashed, and is not hashed here either)."""
        if len(query) > self.limits.max_length:
            return None
        return self._entries.get(document_digest(query))

    def validated(
        self,
        schema: GraphQLSchema,
        prepared: PreparedDocument,
        rules: Rules,
        hide_suggestions: bool = False,
    ) -> list[GraphQLError]:
        key = (id(schema), rules, hide_suggestions)
        found = prepared.validations.get(key)
        if found is None:
            found = prepared.validations[key] = validate(
                schema,
                prepared.document,
                (*rules, *STRAWBERRY_RULES),
                hide_suggestions=hide_suggestions,
            )
        return found


class _Refused(GraphQLError):
    """A document over one or more limits: all of its errors, raised as one."""

    def __init__(self, errors: list[GraphQLError]) -> None:
        super().__init__(errors[0].message, extensions=errors[0].extensions)
        self.errors = errors


def refusal(error: GraphQLError) -> list[GraphQLError]:
    return error.errors if isinstance(error, _Refused) else [error]


# The documents of schemas that are not a PreparedSchema (tests' own schemas).
_DEFAULT_DOCUMENTS = Documents(QueryLimits())
# graphql-core's `execute` asks for a type guard; strawberry's check is one, typed as a bool.
_IS_AWAITABLE = cast("Callable[[object], TypeGuard[Awaitable[object]]]", optimized_is_awaitable)


def documents_of(schema: object) -> Documents:
    found = getattr(schema, "documents", None)
    return found if isinstance(found, Documents) else _DEFAULT_DOCUMENTS


class PreparedOperations(SchemaExtension):
    """Parsing within the limits, validation once per document and rule set, coded errors:
    strawberry's `ParserCache`, `AddValidationRules`, a validation cache and the error codes
    as one hook (module docstring)."""

    def __init__(self, validation_rules: Sequence[type[ASTValidationRule]] = ()) -> None:
        super().__init__()
        self.validation_rules = tuple(validation_rules)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.validation_rules
        if context.graphql_document is None and context.query:
            schema = context.schema
            documents = documents_of(schema)
            try:
                prepared = documents.prepare(graphql_schema_of(schema), context.query)
            except GraphQLError:
                # PreparedSchema refuses such a text before it gets here; on another schema,
                # strawberry parses it again and reports its own error.
                prepared = None
            if prepared is not None:
                context.graphql_document = prepared.document
                context.pre_execution_errors = documents.validated(
                    graphql_schema_of(schema),
                    prepared,
                    tuple(context.validation_rules),
                    getattr(schema, "hide_suggestions", False),
                )
        yield
        result = context.result
        if result is not None and result.errors:
            result.errors = [coded_error(error) for error in result.errors]


class _Prepared:
    """A valid operation of a prepared document, as a request names it."""

    __slots__ = ("document", "operation_name", "operation_type", "setup", "setup_tried")

    def __init__(
        self, document: DocumentNode, operation_name: str | None, operation_type: OperationType
    ) -> None:
        self.document = document
        self.operation_name = operation_name  # as strawberry resolves it: the first's if none
        self.operation_type = operation_type
        # What the executor finds in the operation whatever the request, found by it once
        # (execution.py `ExecutionContext.execute_prepared`).
        self.setup: object | None = None
        self.setup_tried = False


class PreparedSchema(strawberry.Schema, SelectionSource):
    """The schema, executing prepared operations without the extension machinery (module
    docstring). `prepared_execution = False` turns the shortcut off. It also answers what a
    connection's page reads (schema/declare.py `page_selection`)."""

    prepared_execution = True

    def __init__(
        self,
        *args: Any,  # strawberry.Schema's, passed on
        prepared_rules: Sequence[type[ASTValidationRule]] = (),
        limits: QueryLimits | None = None,
        hide_suggestions: bool = False,
        persisted: PersistedDocuments | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.graphql_schema = graphql_schema_of(self)
        self._rules = (*specified_rules, *prepared_rules)
        limits = limits or QueryLimits()
        self.documents = Documents(limits)
        # Automatic persisted queries and trusted documents (schema/engine/persisted.py).
        self.persisted = persisted or PersistedDocuments(limits)
        self.hide_suggestions = hide_suggestions
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
        # strawberry builds a manager of the extensions that hook `resolve`: here none.
        self._no_middleware = MiddlewareManager()

    # What `declare.page_selection` asks of every connection field: the engine's function.
    page_selection = staticmethod(page_selection)

    async def close(self) -> None:
        """Let go of what the schema holds outside the process (persisted queries' Redis)."""
        await self.persisted.close()

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Client mistakes at info without a traceback (strawberry logs every error with
        one); unexpected errors are logged, with theirs, where `coded_error` masks them."""
        log_errors(errors)

    def prepared(self, document: PreparedDocument, operation_name: str | None) -> _Prepared | None:
        """The operation, if the document validates without errors and has it; else None."""
        operations = document.operations
        if operation_name in operations:
            return operations[operation_name]
        found = None
        if not self.documents.validated(
            self.graphql_schema, document, self._rules, self.hide_suggestions
        ):
            found = _operation(document.document, operation_name)
        operations[operation_name] = found
        return found

    async def execute(  # type: ignore[override]
        self,
        query: str | None,
        variable_values: dict[str, object] | None = None,
        context_value: object | None = None,
        root_value: object | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, object] | None = None,
    ) -> ExecutionResult:
        """An operation, whichever way it runs (prepared or strawberry's, compiled plans or
        graphql-core's executor), observed: named in the request's metrics and, when tracing
        is on, inside one span (gateway/metrics.py, gateway/tracing.py)."""
        args = (
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            allowed_operation_types,
            operation_extensions,
        )
        tracer = tracing.tracer()
        if tracer is None:
            result, ran = await self._execute(*args)
            operation = self.operation_run(query, operation_name, ran)
            metrics.name_operation(operation.operation_name if operation is not None else None)
            return result
        with tracing.operation_span(tracer) as span:
            result, ran = await self._execute(*args)
            operation = self.operation_run(query, operation_name, ran)
            name = operation.operation_name if operation is not None else None
            kind = operation.operation_type.value if operation is not None else None
            tracing.name_operation(span, kind, name)
        metrics.name_operation(name)
        return result

    def operation_run(
        self, query: str | None, operation_name: str | None, ran: _Prepared | None
    ) -> _Prepared | None:
        """The valid operation a request with this text ran: the one `_execute` ran, if it
        says (no second look-up), or as `operation_of` finds it. A request without a text (a
        persisted query's hash) is not named, as before."""
        if not query:
            return None
        return ran if ran is not None else self.operation_of(query, operation_name)

    def operation_of(self, query: str | None, operation_name: str | None) -> _Prepared | None:
        """The valid operation a request ran (None for one that did not parse or validate), as
        the document cache already knows it: nothing is parsed or validated again."""
        document = self.documents.cached(query) if query else None
        return self.prepared(document, operation_name) if document is not None else None

    async def _execute(
        self,
        query: str | None,
        variable_values: dict[str, object] | None,
        context_value: object | None,
        root_value: object | None,
        operation_name: str | None,
        allowed_operation_types: Iterable[OperationType] | None,
        operation_extensions: dict[str, object] | None,
    ) -> tuple[ExecutionResult, _Prepared | None]:
        """The result, and the prepared operation it ran (None: not run that way; the
        request's text then finds it, if it was prepared: `operation_of`)."""
        # The text a persisted query's hash stands for, and whether it may run at all (only
        # trusted documents in production); then within the limits before anything else. A
        # refusal is the client's mistake: answered, not logged (schema/limits.py).
        persisted = self.persisted
        resolved: Resolved | None = None
        if persisted.trusted_only or (
            operation_extensions is not None and PERSISTED_QUERY in operation_extensions
        ):
            try:
                resolved = await persisted.resolve(query, operation_extensions)
            except GraphQLError as error:
                refused = PreExecutionError(data=None, errors=[coded_error(error)], extensions={})
                return refused, None
            if resolved is not None:
                query = resolved.query
        document = None
        if query:
            try:
                document = self.documents.prepare(
                    self.graphql_schema, query, resolved.digest if resolved else None
                )
            except GraphQLError as error:
                coded = [coded_error(e) for e in refusal(error)]
                return PreExecutionError(data=None, errors=coded, extensions={}), None
            if resolved is not None and resolved.register and resolved.digest is not None:
                await persisted.register(resolved.digest, query)
        prepared = (
            self.prepared(document, operation_name)
            if document is not None and self._shortcut and self.prepared_execution
            else None
        )
        allowed = (
            DEFAULT_ALLOWED_OPERATION_TYPES
            if allowed_operation_types is None
            else allowed_operation_types
        )
        if prepared is None or prepared.operation_type not in allowed:
            answer = await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
            return answer, None

        def logged(errors: list[GraphQLError]) -> None:
            """strawberry's `_process_errors`, with its execution context made only now."""
            context = create_execution_context(
                self,
                query=query,
                allowed_operation_types=allowed,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                operation_extensions=operation_extensions,
            )
            strawberry_process_errors(self, errors, context)

        try:
            # The engine's executor runs a prepared operation its own way (execution.py
            # `execute_prepared`); any other, through graphql-core's `execute`.
            execute_prepared = getattr(self.execution_context_class, "execute_prepared", None)
            if execute_prepared is not None:
                outcome = execute_prepared(
                    prepared,
                    self.graphql_schema,
                    prepared.document,
                    prepared.operation_name,
                    root_value=root_value,
                    context_value=context_value,
                    variable_values=variable_values,
                    middleware=self._no_middleware,
                    hide_suggestions=self.hide_suggestions,
                    is_awaitable=_IS_AWAITABLE,
                    operation_extensions=operation_extensions,
                )
            else:
                outcome = execute(
                    self.graphql_schema,
                    prepared.document,
                    root_value=root_value,
                    middleware=self._no_middleware,
                    variable_values=variable_values,
                    operation_name=prepared.operation_name,
                    hide_suggestions=self.hide_suggestions,
                    context_value=context_value,
                    is_awaitable=_IS_AWAITABLE,
                    executor_class=self.execution_context_class,
                    operation_extensions=operation_extensions,
                )
            if optimized_is_awaitable(outcome):
                outcome = await cast("Awaitable[GraphQLExecutionResult]", outcome)
            result = cast(GraphQLExecutionResult, outcome)  # awaited above when it was not yet
        except Exception as error:  # as strawberry's execute: an error result, logged
            coerced = (
                error
                if isinstance(error, GraphQLError)
                else GraphQLError(str(error), original_error=error)
            )
            logged([coerced])
            return PreExecutionError(data=None, errors=[coerced], extensions={}), prepared
        errors = result.errors
        if errors:
            # Logged as they came, then coded for the client (PreparedOperations' hook).
            logged(errors)
            errors = [coded_error(error) for error in errors]
        return ExecutionResult(data=result.data, errors=errors, extensions={}), prepared


def _operation(document: DocumentNode, operation_name: str | None) -> _Prepared | None:
    """The operation of a document that a request names (None: the first), as strawberry
    resolves it; None when the document has no such operation."""
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
    return _Prepared(document, name, OperationType(operation.operation.value))
