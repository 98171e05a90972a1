"""Completion: a resolved value written into the response as graphql-core would (leaves
serialized, lists, objects and abstract types checked), and a field's error located and
propagated to the nearest nullable ancestor."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

from graphql import GraphQLError, GraphQLResolveInfo, located_error
from graphql.execution import Executor
from graphql.pyutils import Undefined, is_iterable
from graphql.pyutils import inspect as describe
from orjson import Fragment

from schema.engine.internals import TYPE_CAST_ATTRIBUTE, invalid_return_type_error
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


class Call:
    """A resolver field's per-request inputs: converted arguments and its `Info`."""

    __slots__ = ("error", "info", "kwargs")

    def __init__(
        self, kwargs: dict[str, object], info: GraphQLResolveInfo, error: Exception | None
    ) -> None:
        self.kwargs = kwargs
        self.info = info
        self.error = error


class Completion:
    """What a run (run.py `Run`) does with each resolved value; the object plans' generated
    code calls these methods on the run."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.errors = executor.collected_errors
        # Each resolver field's arguments and Info, by the field plan's id: prepared once per
        # run (run.py `Run.prepare`); an abstract type's `resolve_type` gets the Info.
        self.calls: dict[int, Call] = {}
        self.root_error: GraphQLError | None = None

    # -- completion --------------------------------------------------------------------------

    def resolver_field(self, field: FieldPlan, source: object, data: Data, pos: Pos | None) -> None:
        """A field with a resolver, called by the generated code: the run's (run.py)."""
        raise NotImplementedError

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
        list_pos = (pos, key, container, plan.nullable, typename_of(pos, key, field))
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
        typename = None if type(key) is int else field.parent_type.name  # as `typename_of`
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
                path_of(pos, key, typename_of(pos, key, field)),
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
        path = path_of(pos, key, typename_of(pos, key, field))
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


def typename_of(pos: Pos | None, key: str | int, field: FieldPlan) -> str | None:
    """graphql-core's Path typename: the parent type for a field key, None for a list index."""
    return None if isinstance(key, int) else field.parent_type.name
