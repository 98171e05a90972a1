"""One run of a compiled plan (plans.py) against a root value: a level of resolvers at a time,
their errors located and propagated to the nearest nullable ancestor as graphql-core does."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Iterable

from graphql import GraphQLError, GraphQLResolveInfo, located_error
from graphql.execution import Executor, get_argument_values
from graphql.pyutils import Path, Undefined, is_iterable
from graphql.pyutils import inspect as describe
from orjson import Fragment
from strawberry import Info, Schema

from schema.engine.compiler import recipe_arguments
from schema.engine.internals import (
    TYPE_CAST_ATTRIBUTE,
    convert_arguments,
    invalid_return_type_error,
    make_info,
    strawberry_schema_of,
)
from schema.engine.json_sql import JsonNodes
from schema.engine.plans import (
    CONTAINER,
    KEY,
    LEAF,
    LIST,
    NULLABLE,
    OBJECT,
    PARENT,
    TYPENAME_OF,
    Container,
    Data,
    FieldPlan,
    ObjectPlan,
    Pos,
    ValuePlan,
    path_of,
)

_CONVERTED_PER_FIELD = 64  # argument values remembered per field plan (ids vary per request)


class _Call:
    """A resolver field's per-request inputs: converted arguments and its `Info`."""

    __slots__ = ("error", "info", "kwargs")

    def __init__(
        self, kwargs: dict[str, object], info: GraphQLResolveInfo, error: Exception | None
    ) -> None:
        self.kwargs = kwargs
        self.info = info
        self.error = error


_Parent = tuple[object, Data, "Pos | None"]  # source object, its data, its position
# Marks a pending batch call (its "position" is its parents' list): typed as a position, to
# sit in one.
_BATCH: Pos = object()  # type: ignore[assignment]
# An awaited resolver result, its field, where it goes and the position there (or `_BATCH`
# and the batch's parents).
_Pending = tuple[Awaitable[object], FieldPlan, "Container", "Pos | None"]


class Run:
    """One execution of a plan against a root value."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.errors = executor.collected_errors
        self.pending: list[_Pending] = []
        # Batched resolver fields of the current level: field id -> (field, call, parents).
        self.batches: dict[int, tuple[FieldPlan, _Call, list[_Parent]]] = {}
        self.calls: dict[int, _Call] = {}
        self.root_error: GraphQLError | None = None
        # A plan exists: the compiler found the strawberry schema.
        strawberry_schema: Schema = strawberry_schema_of(executor.schema)  # type: ignore[assignment]
        self.info_class = strawberry_schema.config.info_class
        self.config = strawberry_schema.config
        self.scalar_registry = strawberry_schema.schema_converter.scalar_registry
        # Connections may read their nodes as JSON (`_json_nodes`) when the response is
        # written by orjson, which embeds it (`orjson.Fragment`): an HTTP request's context.
        self.json_fragments = bool(getattr(executor.context_value, "json_fragments", False))
        # The offers go to the connection field through the request's context, by the field's
        # path (`offer`), and are withdrawn when the run ends: in `verify` mode the standard
        # executor then runs the same paths without them.
        self.offered: list[Path] = []

    def offer(self, raw_info: GraphQLResolveInfo, nodes: JsonNodes) -> None:
        """Let the connection field at this `Info`'s path read its nodes as JSON that
        PostgreSQL writes (projection.page_selection), taking them as they come
        (`complete_list`)."""
        path = raw_info.path
        self.executor.context_value.field_notes[path] = nodes
        self.offered.append(path)

    def withdraw(self) -> None:
        if self.offered:
            notes = self.executor.context_value.field_notes
            for path in self.offered:
                notes.pop(path, None)
            self.offered = []

    def execute(self, plan: ObjectPlan, root_value: object) -> Data | Awaitable[Data]:
        """The data dict, or an awaitable of it when a resolver returned an awaitable."""
        data: Data = {}
        plan.execute(self, root_value, data, None)
        if self.batches:
            self.flush_batches()
        if self.pending:
            return self.drain(data)
        self.withdraw()
        if self.root_error is not None:
            raise self.root_error
        return data

    async def drain(self, data: Data) -> Data:
        """Await the pending resolvers a level at a time (together, so that a level's loader
        keys go out in one batch)."""
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                if len(batch) == 1:
                    try:
                        results: list[object] = [await batch[0][0]]
                    except Exception as error:
                        results = [error]
                else:
                    results = await _settle([p[0] for p in batch])
                for (_, field, container, pos), result in zip(batch, results, strict=True):
                    if isinstance(result, BaseException) and not isinstance(result, Exception):
                        raise result
                    if pos is _BATCH:
                        self.complete_batch(field, container, result)
                    elif isinstance(result, Exception):
                        self.field_error(result, field, container, field.key, pos, field.value)
                    else:
                        # A field's value plan is set when it is compiled, before any run.
                        self.complete(field.value, result, field, container, field.key, pos)  # type: ignore[arg-type]
                if self.batches:
                    self.flush_batches()
        finally:
            self.withdraw()
        if self.root_error is not None:
            raise self.root_error
        return data

    # -- objects and fields ------------------------------------------------------------------

    def attribute_value(self, field: FieldPlan, value: object, data: Data, pos: Pos | None) -> None:
        """A plain attribute's value that is not its own serialization (see `generate_fields`)."""
        serialize = field.leaf
        if serialize is not None and value is not None and value is not Undefined:
            try:
                completed = serialize(value)
            except Exception:
                completed = None
            if completed is not None and completed is not Undefined:
                data[field.key] = completed
                return
        self.complete(field.value, value, field, data, field.key, pos)  # type: ignore[arg-type]

    def resolver_field(self, field: FieldPlan, source: object, data: Data, pos: Pos | None) -> None:
        """A field with a resolver: called now, or queued with its level's batch."""
        key = field.key
        value_plan = field.value
        call = self.calls.get(id(field))
        if call is None:
            call = self.prepare(field, pos)
        if call.error is not None:
            self.field_error(call.error, field, data, key, pos, value_plan)
            return
        if field.batch is not None:  # called once for the level's parents
            data[key] = None
            group = self.batches.get(id(field))
            if group is None:
                group = self.batches[id(field)] = (field, call, [])
            group[2].append((source, data, pos))
            return
        try:
            result = self.call(field, call, source)
        except Exception as error:
            self.field_error(error, field, data, key, pos, value_plan)
            return
        if inspect.isawaitable(result):
            data[key] = None  # keeps the key's place in the response
            self.pending.append((result, field, data, pos))
        else:
            self.complete(value_plan, result, field, data, key, pos)  # type: ignore[arg-type]

    def prepare(self, field: FieldPlan, pos: Pos | None) -> _Call:
        """Arguments and Info of a resolver field, once per request (they do not depend on
        the parent object; the Info's path is that of the first parent)."""
        executor = self.executor
        raw_info = executor.build_resolve_info(
            field.field_def,
            field.nodes,
            field.parent_type,
            path_of(pos, field.key, field.parent_type.name),
        )
        info = make_info(self.info_class, raw_info, field.strawberry_field)
        error: Exception | None = None
        kwargs: dict[str, object] | None = None if field.args else {}
        if field.arguments is not None:
            kwargs = recipe_arguments(field.arguments, executor.variable_values.coerced)
        if kwargs is None:  # not read by `recipe_arguments`: the general way
            kwargs = {}
            try:
                raw = get_argument_values(
                    field.field_def,
                    field.nodes[0],
                    executor.variable_values,
                    None,
                    executor.hide_suggestions,
                )
                kwargs = self.convert_arguments(field, raw, info)
            except Exception as exc:
                error = exc
        if field.info_name is not None:
            kwargs[field.info_name] = info
        if field.json_nodes is not None and self.json_fragments:
            self.offer(raw_info, field.json_nodes)
        call = self.calls[id(field)] = _Call(kwargs, raw_info, error)
        return call

    def convert_arguments(
        self, field: FieldPlan, raw: dict[str, object], info: Info
    ) -> dict[str, object]:
        """strawberry's conversion of the coerced arguments; for leaf arguments (which convert
        by value alone: no input types, which may use `info`) remembered per field plan,
        keyed by the values and their types (1, 1.0 and True are equal keys otherwise)."""
        converted = field.converted
        key: tuple[object, ...] | None = None
        if converted is not None:
            try:
                key = tuple((name, type(value), value) for name, value in raw.items())
                found = converted.get(key)
            except TypeError:  # an unhashable value (a list)
                key = found = None
            if found is not None:
                return dict(found)
        kwargs: dict[str, object] = convert_arguments(
            raw,
            field.strawberry_field.arguments,
            scalar_registry=self.scalar_registry,
            config=self.config,
            info=info,
        )
        if key is not None and converted is not None and len(converted) < _CONVERTED_PER_FIELD:
            converted[key] = dict(kwargs)
        return kwargs

    @staticmethod
    def call(field: FieldPlan, call: _Call, source: object) -> object:
        kwargs = call.kwargs
        if field.root_names:
            kwargs = dict(kwargs)
            for name in field.root_names:
                kwargs[name] = source
        if field.self_arg:
            return field.wrapped(source, **kwargs)
        return field.wrapped(**kwargs)

    def flush_batches(self) -> None:
        """Call each batched field of the level once, with all its parents."""
        batches, self.batches = self.batches, {}
        for field, call, parents in batches.values():
            try:
                # Only fields with a batch form are batched (`resolver_field`).
                result = field.batch([parent[0] for parent in parents], **call.kwargs)  # type: ignore[misc]
            except Exception as error:
                self.complete_batch(field, parents, error)
                continue
            if inspect.isawaitable(result):
                self.pending.append((result, field, parents, _BATCH))
            else:
                self.complete_batch(field, parents, result)

    def complete_batch(self, field: FieldPlan, parents: list[_Parent], result: object) -> None:
        """A batch's values (or exceptions) in its parents' order; a failed or malformed batch
        is that field's error on every parent."""
        if not isinstance(result, Exception):
            if isinstance(result, list) and len(result) == len(parents):
                for (_, data, pos), value in zip(parents, result, strict=True):
                    if isinstance(value, Exception):
                        self.field_error(value, field, data, field.key, pos, field.value)
                    else:
                        self.complete(field.value, value, field, data, field.key, pos)  # type: ignore[arg-type]
                return
            result = TypeError(
                f"The batch resolver of {field.parent_type.name}.{field.field_name} returned"
                f" {describe(result)} for {len(parents)} parents."
            )
        for _, data, pos in parents:
            self.field_error(result, field, data, field.key, pos, field.value)

    # -- completion --------------------------------------------------------------------------

    def complete(
        self,
        plan: ValuePlan,
        value: object,
        field: FieldPlan,
        container: Container,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        """Write the completed `value` at `container[key]` (or handle its error there)."""
        if value is None or value is Undefined:
            if plan.nullable:
                container[key] = None
                return
            message = (
                "Cannot return null for non-nullable field"
                f" {field.parent_type.name}.{field.field_name}."
            )
            self.field_error(TypeError(message), field, container, key, pos, plan)
            return
        kind = plan.kind
        try:
            if kind == LEAF:
                if plan.passthrough and type(value) is str:
                    container[key] = value
                    return
                completed = plan.serialize(value)
                if completed is Undefined or completed is None:
                    raise TypeError(
                        f"Expected `{describe(plan.type)}.coerce_output_value("
                        f"{describe(value)})` to return non-nullable value, returned:"
                        f" {describe(completed)}"
                    )
                container[key] = completed
            elif kind == LIST:
                if isinstance(value, str | bytes) or not is_iterable(value):
                    raise GraphQLError(
                        "Expected Iterable, but did not find one for field"
                        f" '{field.parent_type.name}.{field.field_name}'."
                    )
                self.complete_list(plan, value, field, container, key, pos)
            elif kind == OBJECT:
                self.complete_object(plan.objects, plan, value, field, container, key, pos)
            else:
                self.complete_abstract(plan, value, field, container, key, pos)
        except Exception as error:
            self.field_error(error, field, container, key, pos, plan)

    def complete_list(
        self,
        plan: ValuePlan,
        value: Iterable[object],
        field: FieldPlan,
        container: Container,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        if type(value) is list and value and type(value[0]) is Fragment:
            # A page read as JSON (`_json_nodes`): every node's object as PostgreSQL wrote it.
            container[key] = value
            return
        items: list[object] = []
        container[key] = items
        list_pos = (pos, key, container, plan.nullable, _typename(pos, key, field))
        item_plan: ValuePlan = plan.item  # type: ignore[assignment]
        complete = self.complete
        if item_plan.kind == OBJECT:  # lists of objects: straight to `complete_object`
            complete_object = self.complete_object
            objects: ObjectPlan = item_plan.objects
            exact, execute, nullable = objects.exact, objects.execute, item_plan.nullable
            for index, item in enumerate(value):
                try:
                    # `complete_object` inline for an instance of the type's own class.
                    if type(item) is exact and TYPE_CAST_ATTRIBUTE not in getattr(
                        item, "__dict__", (TYPE_CAST_ATTRIBUTE,)
                    ):
                        data: Data = {}
                        items.append(data)
                        execute(self, item, data, (list_pos, index, items, nullable, None))
                        continue
                    items.append(None)
                    if item is None:
                        complete(item_plan, item, field, items, index, list_pos)
                        continue
                    complete_object(objects, item_plan, item, field, items, index, list_pos)
                except Exception as error:
                    self.field_error(error, field, items, index, list_pos, item_plan)
            return
        for index, item in enumerate(value):
            items.append(None)
            complete(item_plan, item, field, items, index, list_pos)

    def complete_object(
        self,
        object_plan: ObjectPlan,
        plan: ValuePlan,
        value: object,
        field: FieldPlan,
        container: Container,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        is_type_of = object_plan.is_type_of
        if (
            is_type_of is not None
            and not (
                type(value) is object_plan.exact
                and TYPE_CAST_ATTRIBUTE not in getattr(value, "__dict__", (TYPE_CAST_ATTRIBUTE,))
            )
            and not is_type_of(value, None)  # type: ignore[arg-type]  # strawberry's reads no info
        ):
            raise invalid_return_type_error(object_plan.type, value, field.details)
        data: Data = {}
        container[key] = data
        typename = None if type(key) is int else field.parent_type.name  # as `_typename`
        object_plan.execute(self, value, data, (pos, key, container, plan.nullable, typename))

    def complete_abstract(
        self,
        plan: ValuePlan,
        value: object,
        field: FieldPlan,
        container: Container,
        key: str | int,
        pos: Pos | None,
    ) -> None:
        call = self.calls.get(id(field))
        if call is not None:
            info = call.info
        else:  # a plain attribute of an abstract type: resolve_type still gets an Info
            info = self.executor.build_resolve_info(
                field.field_def,
                field.nodes,
                field.parent_type,
                path_of(pos, key, _typename(pos, key, field)),
            )
        abstract, objects = plan.possible
        resolve_type = abstract.resolve_type or self.executor.type_resolver
        runtime_name = resolve_type(value, info, abstract)
        if inspect.isawaitable(runtime_name):
            if inspect.iscoroutine(runtime_name):
                runtime_name.close()
            raise GraphQLError(f"Asynchronous resolve_type of '{abstract}' is not supported.")
        runtime = self.executor.ensure_valid_runtime_type(
            runtime_name, abstract, field.details, info, value
        )
        self.complete_object(objects[runtime.name], plan, value, field, container, key, pos)

    # -- errors ------------------------------------------------------------------------------

    def field_error(
        self,
        raw: Exception,
        field: FieldPlan,
        container: Container,
        key: str | int,
        pos: Pos | None,
        plan: ValuePlan | None,
    ) -> None:
        """A field error at `container[key]`: null it if nullable, else the nearest nullable
        ancestor (or the whole `data`), and record the error once, as graphql-core does."""
        path = path_of(pos, key, _typename(pos, key, field))
        error = located_error(raw, field.nodes, path.as_list())
        if plan is None or plan.nullable:
            container[key] = None
            self.errors.add(error, path)
            return
        target = pos
        while target is not None and not target[NULLABLE]:
            target = target[PARENT]
        if target is None:
            if self.root_error is None:
                self.root_error = error
            self.errors.add(error, None)
            return
        target[CONTAINER][target[KEY]] = None
        self.errors.add(error, path_of(target[PARENT], target[KEY], target[TYPENAME_OF]))


async def _settle(awaitables: list[Awaitable[object]]) -> list[object]:
    """Each awaitable's result or exception, run concurrently: `gather(return_exceptions=True)`
    without its per-child bookkeeping (tasks are awaited in turn; all run meanwhile)."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    results: list[object] = []
    try:
        for task in tasks:
            try:
                results.append(await task)
            except Exception as error:
                results.append(error)
    except BaseException:  # cancelled: take the others down too
        for task in tasks:
            task.cancel()
        raise
    return results


def _typename(pos: Pos | None, key: str | int, field: FieldPlan) -> str | None:
    """graphql-core's Path typename: the parent type for a field key, None for a list index."""
    return None if isinstance(key, int) else field.parent_type.name
