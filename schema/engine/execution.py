"""graphql-core's executor with three shortcuts: prepared operations' executors, compiled query
plans, and plain leaf fields.

A prepared operation (prepared.py) gets its executor from what graphql-core's `build` and root
field collection find in it whatever the request, found once (`OperationSetup`, setup.py): per request,
only its variables are refused (a NUL) and coerced, and the executor made. Query operations
run on compiled plans (plans.py, compiler.py, run.py) unless `executor_mode` (the setting
`graphql_executor`) says otherwise or the operation cannot be compiled; in `standard` mode
graphql-core's `execute` does everything; in `verify` mode both executors run, the setup and
the kept root fields are checked against graphql-core's, and a difference fails the query.
What follows is the shortcut the standard executor keeps for plain leaf fields.

Most fields of a dashboard are plain attributes holding a scalar (`email`, `promptTokens`, …):
strawberry resolves them with a default resolver that ignores `info` and takes no arguments.
graphql-core still builds a `GraphQLResolveInfo`, looks at the arguments, and checks each result
for awaitables on every such field. Here those fields are read and completed directly: the same
resolver, the same leaf serialization, the same non-null error and error handling; every other
field (with a resolver, arguments, objects, lists, middleware) takes the standard path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard, TypeVar, cast

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLFormattedError,
    GraphQLObjectType,
    GraphQLSchema,
    MiddlewareManager,
    OperationType,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution import (
    Executor,
    default_field_resolver,
    default_type_resolver,
    execute,
    get_variable_values,
)
from graphql.pyutils import AwaitableOrValue, Path, Undefined
from orjson import Fragment

from gateway.db.outage import unavailable
from gateway.errors import ServiceBusy
from gateway.jsoncodec import parse_fragment
from schema.engine.compiler import plan_for
from schema.engine.internals import (
    CollectedErrors,
    FieldDetailsList,
    StrawberryGraphQLCoreExecutionContext,
    collect_fields,
    is_default_resolver,
)
from schema.engine.plans import Data, GroupedFields, ObjectPlan
from schema.engine.run import Run
from schema.engine.setup import OperationSetup
from schema.inputs import nul_in_variables

if TYPE_CHECKING:
    from typing_extensions import TypeIs

log = logging.getLogger("gateway.graphql")
T = TypeVar("T")
# A run's data and the GraphQLError it raised: one of the two (None, error) when it raised.
Captured: TypeAlias = tuple[Data | None, GraphQLError | None]


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    executor_mode = "compiled"
    # A prepared operation's setup (`execute_prepared`), and the value of its directives'
    # variables while its root fields are not kept yet (then collected and kept).
    setup: OperationSetup | None = None
    signature: tuple[object, ...] | None = None

    @classmethod
    def execute_prepared(
        cls,
        holder: Any,  # prepared.py's operation, with a `setup` slot this class fills
        schema: GraphQLSchema,
        document: DocumentNode,
        operation_name: str | None,
        *,
        root_value: object,
        context_value: object,
        variable_values: dict[str, Any] | None,
        middleware: MiddlewareManager,
        hide_suggestions: bool,
        is_awaitable: Callable[[Any], TypeGuard[Awaitable[Any]]],
        operation_extensions: dict[str, object] | None,
    ) -> AwaitableOrValue[ExecutionResult]:
        """graphql-core's `execute` of a prepared operation (prepared.py), without what it
        redoes on every request: the executor is made from the operation's setup, found once
        (`OperationSetup`), and a query's root fields and plan are looked up by the value of
        its directives' variables instead of collected. Variables are refused (a NUL) and
        coerced per request as `build` does. In `standard` mode, and for what the setup does
        not cover, graphql-core's `execute` itself. In `verify` mode, the executor graphql-core's
        `build` makes and the root fields it collects are compared with these."""
        setup = holder.setup if cls.executor_mode != "standard" else None
        if setup is None and cls.executor_mode != "standard" and not holder.setup_tried:
            holder.setup_tried = True
            setup = holder.setup = OperationSetup.of(schema, document, operation_name)
        if setup is None or setup.schema is not schema:
            return execute(
                schema,
                document,
                root_value=root_value,
                middleware=middleware,
                variable_values=variable_values,
                operation_name=operation_name,
                hide_suggestions=hide_suggestions,
                context_value=context_value,
                is_awaitable=is_awaitable,
                executor_class=cls,
                operation_extensions=operation_extensions,
            )
        refused = nul_in_variables(variable_values)
        if refused is not None:
            return ExecutionResult(None, [refused])
        operation = setup.operation
        coerced = get_variable_values(
            schema,
            operation.variable_definitions or (),
            variable_values or {},
            hide_suggestions=hide_suggestions,
        )
        if isinstance(coerced, list):
            return ExecutionResult(None, coerced)
        executor = cls(
            schema=schema,
            fragment_definitions=setup.fragment_definitions,
            fragments=setup.fragments,
            root_value=root_value,
            context_value=context_value,
            operation=operation,
            variable_values=coerced,
            field_resolver=default_field_resolver,
            type_resolver=default_type_resolver,
            subscribe_field_resolver=default_field_resolver,
            middleware_manager=middleware,
            is_awaitable=is_awaitable,
            hide_suggestions=hide_suggestions,
            operation_extensions=operation_extensions,
        )
        executor.setup = setup
        if cls.executor_mode == "verify":
            executor.verify_build(document, operation_name, variable_values)
        return executor.execute_operation()  # type: ignore[return-value]  # no @defer: one result

    def verify_build(
        self, document: DocumentNode, operation_name: str | None, raw: dict[str, Any] | None
    ) -> None:
        """Fail loudly if graphql-core's `build` makes another executor than the setup's."""
        built = super().build(
            self.schema,
            document,
            raw_variable_values=raw,
            operation_name=operation_name,
            hide_suggestions=self.hide_suggestions,
        )
        got = (self.operation, self.fragment_definitions, self.variable_values.coerced)
        expected = (
            (built.operation, built.fragment_definitions, built.variable_values.coerced)
            if isinstance(built, Executor)
            else built
        )
        fragments_differ = isinstance(built, Executor) and {
            name: (details.definition, details.variable_signatures)
            for name, details in built.fragments.items()
        } != {
            name: (details.definition, details.variable_signatures)
            for name, details in self.fragments.items()
        }
        if got != expected or fragments_differ:
            log.error("prepared executor differs: prepared=%r graphql-core=%r", got, expected)
            msg = f"Prepared and graphql-core executors differ: {got!r} != {expected!r}"
            raise GraphQLError(msg)

    def execute_operation(self, serially: bool | None = None) -> Any:
        """graphql-core's `execute_operation`, with the root fields of a prepared operation
        (`execute_prepared`) kept per value of its directives' variables: collected (by
        graphql-core, then kept by `execute_collected_root_fields`) only the first time."""
        setup = self.setup
        if (
            setup is None
            or serially is not None
            or self.abort_signal is not None
            or self.hooks is not None
        ):
            return super().execute_operation(serially)
        signature = setup.signature(self.variable_values.coerced)
        root_fields = setup.root_fields.get(signature) if signature is not None else None
        if root_fields is None:
            self.signature = signature
            return super().execute_operation(serially)
        grouped, defer_usages, plan = root_fields
        if self.executor_mode == "verify":
            grouped = self._verify_root_fields(grouped)
        try:
            result = self._execute_root_fields(
                setup.root_type,
                self.root_value,
                grouped,
                setup.operation.operation == OperationType.MUTATION,
                defer_usages,
                plan,
            )
            if self.is_awaitable(result):
                return self._await_root_fields(result)
            data = cast("Data", result)
        except GraphQLError as error:
            self.collected_errors.add(error, None)
            return self._response(None)
        # No abort signal here: graphql-core's `finish` would return the response as it is.
        return self._response(data)

    def _response(self, data: Data | None) -> ExecutionResult:
        """graphql-core's response of a prepared operation: its plain executor's, as the
        incremental one's is when there is no deferred work, which there never is here (a
        schema with `@defer`/`@stream` has no setup: `OperationSetup.of`)."""
        return Executor.build_response(self, data)  # type: ignore[return-value]  # no @defer

    async def _await_root_fields(self, result: Awaitable[Data]) -> Any:
        """graphql-core's `execute_operation` awaiting its root fields (no abort signal)."""
        try:
            data = await result
        except GraphQLError as error:
            self.collected_errors.add(error, None)
            return self._response(None)
        except Exception:
            await self.cancel_incremental_work()
            self.run_async_work_finished_hook()
            raise
        return self._response(data)

    def _verify_root_fields(self, kept: GroupedFields) -> GroupedFields:
        """The root fields collected again by graphql-core, which must be the kept ones."""
        setup: OperationSetup = self.setup  # type: ignore[assignment]  # set by the caller
        collected = collect_fields(
            self.schema,
            self.fragments,
            self.variable_values,
            setup.root_type,
            self.operation,
            self.hide_suggestions,
        ).grouped_field_set
        if list(collected.items()) != list(kept.items()):
            log.error("kept root fields differ: kept=%r collected=%r", kept, collected)
            msg = f"Kept and collected root fields differ: {kept!r} != {collected!r}"
            raise GraphQLError(msg)
        return collected

    async def with_abort_signal(self, awaitable: Awaitable[T]) -> T:
        """A resolver's result, awaited to its end even when graphql-core cancels the field.

        graphql-core cancels the sibling fields of one whose error nulls their parent (its
        `gather_with_cancel`). A resolver cancelled in the middle of a statement left the
        request's one connection busy ("another operation is in progress"), failing every
        later statement of the request and of the next request that took the connection from
        the pool. Here the resolver runs on, shielded; the field is still cancelled (its value
        is discarded, as graphql-core intends) once what the resolver started has finished.
        graphql-core awaits resolvers' results through this method (`:meta private:` there):
        `tests/engine/test_cancellation.py` fails clearly if it stops doing so."""
        if self.abort_signal is not None:  # an operation that can be aborted: as graphql-core
            return await super().with_abort_signal(awaitable)
        task = asyncio.ensure_future(awaitable)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                await asyncio.wait([task])
            raise

    @classmethod
    def build(  # graphql-core's arguments, passed on as they come
        cls, *args: Any, **kwargs: Any
    ) -> list[GraphQLError] | Executor:
        """graphql-core's `build`, after refusing variables that hold a NUL (schema/inputs.py):
        they are the caller's mistake, reported as variable coercion errors are."""
        raw = kwargs.get("raw_variable_values", args[4] if len(args) > 4 else None)
        refused = nul_in_variables(raw)
        if refused is not None:
            return [refused]
        return super().build(*args, **kwargs)

    def execute_collected_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: object,
        grouped_field_set: GroupedFields,
        serially: bool,
        # graphql-core's DeferUsage, not exported: passed on as it comes.
        new_defer_usages: Sequence[Any],
    ) -> AwaitableOrValue[Data]:
        mode = self.executor_mode
        plan = None
        if mode != "standard" and not serially and not new_defer_usages:
            plan = plan_for(self, root_type, grouped_field_set)
        if self.signature is not None and self.setup is not None:
            self.setup.remember(self.signature, (grouped_field_set, new_defer_usages, plan))
        return self._execute_root_fields(
            root_type, root_value, grouped_field_set, serially, new_defer_usages, plan
        )

    def _execute_root_fields(
        self,
        root_type: GraphQLObjectType,
        root_value: object,
        grouped_field_set: GroupedFields,
        serially: bool,
        new_defer_usages: Sequence[Any],
        plan: ObjectPlan | None,
    ) -> AwaitableOrValue[Data]:
        """The root fields on their plan (`compiled`), on both (`verify`) or, without a plan,
        on graphql-core's executor."""
        mode = self.executor_mode
        if plan is None:
            return super().execute_collected_root_fields(
                root_type, root_value, grouped_field_set, serially, new_defer_usages
            )
        if mode == "compiled":
            return Run(self).execute(plan, root_value)
        return self._verify(plan, root_type, root_value, grouped_field_set)

    def _verify(
        self,
        plan: ObjectPlan,
        root_type: GraphQLObjectType,
        root_value: object,
        grouped_field_set: GroupedFields,
    ) -> AwaitableOrValue[Data]:
        """Run the query on the compiled plan, then on the standard executor; compare."""
        # The executor's check, which graphql-core types as a one-sided TypeGuard.
        is_awaitable: Callable[[object], TypeIs[Awaitable[Captured]]] = self.is_awaitable  # type: ignore[assignment]
        compiled_errors = self.collected_errors
        compiled = _capture(lambda: Run(self).execute(plan, root_value), is_awaitable)

        def standard() -> AwaitableOrValue[Captured]:
            self.collected_errors = CollectedErrors()
            return _capture(
                lambda: super(ExecutionContext, self).execute_collected_root_fields(
                    root_type, root_value, grouped_field_set, False, ()
                ),
                is_awaitable,
            )

        if is_awaitable(compiled):
            compiled_later = compiled

            async def finish() -> Data:
                first = await compiled_later
                second = standard()
                if is_awaitable(second):
                    second = await second
                return self._compare(first, compiled_errors, second)

            return finish()
        second = standard()
        if is_awaitable(second):
            second_later = second

            async def finish_standard() -> Data:
                return self._compare(compiled, compiled_errors, await second_later)

            return finish_standard()
        return self._compare(compiled, compiled_errors, second)

    def _compare(
        self, compiled: Captured, compiled_errors: CollectedErrors, standard: Captured
    ) -> Data:
        data, raised = compiled
        standard_data, standard_raised = standard
        lost = _database_lost(compiled, compiled_errors.errors) or _database_lost(
            standard, self.collected_errors.errors
        )
        got = (_materialized(data), _formatted(compiled_errors.errors, raised))
        expected = (standard_data, _formatted(self.collected_errors.errors, standard_raised))
        self.collected_errors = compiled_errors
        # When either run lost the database (or found the pool busy) there is nothing to
        # compare: the answer is the compiled run's.
        if got != expected and not lost:
            log.error("compiled executor differs: compiled=%r standard=%r", got, expected)
            msg = f"Compiled and standard executors differ: {got!r} != {expected!r}"
            raise GraphQLError(msg)
        if raised is not None:
            raise raised
        return data  # type: ignore[return-value]  # None only with an error, raised above

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: object,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,  # graphql-core's, not exported: passed on as it comes
    ) -> object:
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        resolve = field_def.resolve if field_def is not None else None
        if (
            resolve is None
            or not is_default_resolver(resolve)
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


def _has_middleware(manager: MiddlewareManager | None) -> bool:
    """strawberry always passes a manager; it holds the extensions that hook `resolve`."""
    return manager is not None and bool(manager.middlewares)


def _materialized(data: object) -> object:
    """The data with the nodes that PostgreSQL wrote as JSON (`orjson.Fragment`) parsed."""
    if type(data) is dict:
        return {key: _materialized(value) for key, value in data.items()}
    if type(data) is list:
        return [_materialized(value) for value in data]
    if type(data) is Fragment:
        return parse_fragment(data)
    return data


def _formatted(
    errors: list[GraphQLError], raised: GraphQLError | None
) -> list[GraphQLFormattedError]:
    found = [*errors, *([raised] if raised is not None and raised not in errors else [])]
    return sorted((e.formatted for e in found), key=repr)


def _capture(
    run: Callable[[], AwaitableOrValue[Data]], is_awaitable: Callable[[object], bool]
) -> AwaitableOrValue[Captured]:
    """(data, raised GraphQLError or None), or an awaitable of it."""
    try:
        result = run()
    except GraphQLError as error:
        return None, error
    if not is_awaitable(result):
        return result, None  # type: ignore[return-value]  # not an awaitable: the data

    async def settle() -> Captured:
        try:
            return await result, None  # type: ignore[misc]  # an awaitable of the data
        except GraphQLError as error:
            return None, error

    return settle()


def _database_lost(run: Captured, errors: list[GraphQLError]) -> bool:
    """Whether a run failed for want of the database (`ServiceBusy`, or an error that
    `gateway.db.outage.unavailable` recognizes)."""
    _, raised = run
    for error in [*errors, *([raised] if raised is not None else [])]:
        original = getattr(error, "original_error", None) or error
        if isinstance(original, ServiceBusy) or unavailable(original):
            return True
    return False
