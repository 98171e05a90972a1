"""One run of a compiled plan (plans.py) against a root value: a level of resolvers at a time,
their arguments and Info prepared once per request, batch forms called once per level; the
values are completed by completion.py."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable

from graphql import GraphQLResolveInfo
from graphql.execution import Executor, get_argument_values
from graphql.pyutils import Path
from graphql.pyutils import inspect as describe
from strawberry import Info, Schema

from schema.engine.compiler import recipe_arguments
from schema.engine.completion import Call, Completion
from schema.engine.internals import (
    convert_arguments,
    make_info,
    strawberry_schema_of,
)
from schema.engine.json_sql import JsonNodes
from schema.engine.plans import (
    ABSTRACT,
    OBJECT,
    Container,
    Data,
    FieldPlan,
    ObjectPlan,
    Pos,
    path_of,
)

_CONVERTED_PER_FIELD = 64  # argument values remembered per field plan (ids vary per request)


_Parent = tuple[object, Data, "Pos | None"]  # source object, its data, its position
# Marks a pending batch call (its "position" is its parents' list): typed as a position, to
# sit in one.
_BATCH: Pos = object()  # type: ignore[assignment]
# An awaited resolver result, its field, where it goes and the position there (or `_BATCH`
# and the batch's parents).
_Pending = tuple[Awaitable[object], FieldPlan, "Container", "Pos | None"]


class Run(Completion):
    """One execution of a plan against a root value: a level of resolvers at a time."""

    def __init__(self, executor: Executor) -> None:
        super().__init__(executor)
        self.pending: list[_Pending] = []
        # Batched resolver fields of the current level: field id -> (field, call, parents).
        self.batches: dict[int, tuple[FieldPlan, Call, list[_Parent]]] = {}
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
        # Fields' reads start ahead of their parents (`read_ahead`) only where a level's reads
        # go together and a user's access is to be decided (gateway/context.py
        # `may_read_ahead`): with each read its own statement, one read ahead saves nothing,
        # and a caller without a user is refused without them.
        context = executor.context_value
        settings = getattr(context, "settings", None)
        self.reading_ahead = getattr(settings, "read_ahead", "off") != "off" and bool(
            getattr(context, "may_read_ahead", False)
        )
        # The reads started ahead, awaited before the run ends so that none outlives the
        # request's connection.
        self.ahead: list[asyncio.Future[object]] = []

    def offer(self, raw_info: GraphQLResolveInfo, nodes: JsonNodes) -> None:
        """Let the connection field at this `Info`'s path read its nodes as JSON that
        PostgreSQL writes (projection.page_selection), taking them as they come
        (`complete_list`)."""
        path = raw_info.path
        self.executor.context_value.field_notes[path] = nodes
        self.offered.append(path)

    def offers(self, nodes: JsonNodes) -> bool:
        """Whether nodes with pages inside may be read as JSON: the setting is on, and each
        page's size is within the limits (else the objects report the argument's error)."""
        limits = nodes.limits
        if not limits:
            return True
        settings = self.executor.context_value.settings
        if settings.graphql_nested_pages != "on":
            return False
        return all(0 <= limit <= settings.max_page_size for limit in limits)

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
            if self.ahead:
                await self.settle_ahead()
        finally:
            self.withdraw()
        if self.root_error is not None:
            raise self.root_error
        return data

    # -- objects and fields ------------------------------------------------------------------

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
            if field.by_id is not None and self.reading_ahead:
                self.read_ahead(field, call, pos)
        else:
            self.complete(value_plan, result, field, data, key, pos)  # type: ignore[arg-type]

    def read_ahead(self, field: FieldPlan, call: Call, pos: Pos | None) -> None:
        """Start, beside a by-id field's own reads, those of the selected fields of the object
        it shows that need only the object's id (schema/declare.py `by_id`, `reads_ahead`).
        Their `Call`s are prepared now with the paths they have when the object is completed,
        so each field later asks its loaders for the keys read here; nothing read here is
        shown but by the field, after its parent is shown and its own access decided."""
        try:
            target = field.by_id(call.kwargs)  # type: ignore[misc]  # by_id is set
        except Exception:  # the field itself reports what is wrong with its arguments
            return
        if target is None:
            return
        type_name, object_id = target
        value = field.value
        objects: ObjectPlan | None = None
        if value is not None and value.kind == OBJECT:
            objects = value.objects if value.objects.type.name == type_name else None
        elif value is not None and value.kind == ABSTRACT:
            objects = value.possible[1].get(type_name)
        if objects is None:
            return
        parent_path = path_of(pos, field.key, field.parent_type.name)
        calls = self.calls
        for child in objects.fields:
            if child.ahead is None or id(child) in calls:
                continue
            prepared = self.prepare_at(child, Path(parent_path, child.key, child.parent_type.name))
            if prepared.error is not None:
                continue
            try:
                started = child.ahead(object_id, **prepared.kwargs)
            except Exception:  # the field reports it when it runs
                continue
            if started is not None:
                future = asyncio.ensure_future(started)
                future.add_done_callback(_taken)
                self.ahead.append(future)

    async def settle_ahead(self) -> None:
        """Wait for the reads ahead still running (those whose fields never ran: a parent
        that was null or failed)."""
        running = [future for future in self.ahead if not future.done()]
        self.ahead = []
        if running:
            await asyncio.wait(running)

    def prepare(self, field: FieldPlan, pos: Pos | None) -> Call:
        """Arguments and Info of a resolver field, once per request (they do not depend on
        the parent object; the Info's path is that of the first parent)."""
        return self.prepare_at(field, path_of(pos, field.key, field.parent_type.name))

    def prepare_at(self, field: FieldPlan, path: Path) -> Call:
        executor = self.executor
        raw_info = executor.build_resolve_info(
            field.field_def,
            field.nodes,
            field.parent_type,
            path,
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
        if field.json_nodes is not None and self.json_fragments and self.offers(field.json_nodes):
            self.offer(raw_info, field.json_nodes)
        call = self.calls[id(field)] = Call(kwargs, raw_info, error)
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
    def call(field: FieldPlan, call: Call, source: object) -> object:
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


def _taken(future: asyncio.Future[object]) -> None:
    """A read ahead's error is its field's when the field runs; if it never does, taken here
    so that asyncio does not report it."""
    if not future.cancelled():
        future.exception()


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
