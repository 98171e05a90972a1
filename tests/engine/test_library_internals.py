"""The private names of Strawberry and graphql-core that the engine reads are still there.

schema/engine/internals.py is the one module that reads them; each check below looks a name up
on the installed library (a module, or a real schema, field, Info or execution context) and
fails naming the attribute, the library's version and the engine function that needs it, so
that an upgrade fails here instead of in production. The names are looked up before the
engine is imported: a name that is gone fails its own check, not the collection.
"""

from __future__ import annotations

import enum
import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

import graphql
import pytest
import strawberry
from graphql import GraphQLResolveInfo, graphql_sync

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = {
    "graphql": f"graphql-core {importlib.metadata.version('graphql-core')}",
    "strawberry": f"strawberry-graphql {importlib.metadata.version('strawberry-graphql')}",
}

# (module, name, what reads it): the names schema/engine/internals.py imports.
IMPORTED = [
    ("graphql.execution.collect_fields", "collect_subfields", "compiler._Compiler.subfields"),
    ("graphql.execution.collect_fields", "FieldDetailsList", "execution.execute_field"),
    ("graphql.execution.collect_fields", "FragmentDetails", "setup.OperationSetup"),
    (
        "graphql.execution.collect_fields",
        "collect_fields",
        "execution.ExecutionContext._verify_root_fields",
    ),
    (
        "graphql.execution.executor",
        "invalid_return_type_error",
        "completion.Completion.complete_object",
    ),
    ("graphql.execution.executor", "CollectedErrors", "execution.ExecutionContext._verify"),
    ("graphql.execution.values", "coerce_argument", "compiler._Compiler.arguments"),
    ("strawberry.execution", "optimized_is_awaitable", "prepared.PreparedSchema.execute"),
    ("strawberry.schema.schema", "DEFAULT_ALLOWED_OPERATION_TYPES", "prepared.execute"),
    ("strawberry.schema.schema", "StrawberryGraphQLCoreExecutionContext", "execution"),
    ("strawberry.schema.schema_converter", "CustomGraphQLEnumType", "compiler._enum_names"),
    ("strawberry.schema.validation_rules.maybe_null", "MaybeNullValidationRule", "prepared"),
    ("strawberry.schema.validation_rules.one_of", "OneOfInputValidationRule", "prepared"),
    ("strawberry.types.arguments", "convert_arguments", "run.Run.convert_arguments"),
    ("strawberry.types.base", "StrawberryMaybe", "compiler._Compiler.plain_scalar"),
    ("strawberry.types.base", "StrawberryOptional", "compiler._Compiler.plain_scalar"),
    ("strawberry.types.cast", "TYPE_CAST_ATTRIBUTE", "completion.Completion.complete_object"),
    ("strawberry.types.execution", "ExecutionResult", "prepared.PreparedSchema.execute"),
    ("strawberry.types.execution", "PreExecutionError", "prepared.PreparedSchema.execute"),
    ("strawberry.types.graphql", "OperationType", "prepared.PreparedSchema.execute"),
    ("strawberry.types.lazy_type", "LazyType", "compiler._Compiler.plain_scalar"),
    ("strawberry.utils.str_converters", "to_camel_case", "projection.row_columns"),
]


def _missing(library: str, name: str, user: str) -> str:
    return (
        f"{name} is not in {VERSIONS[library]}: schema/engine/{user} needs it"
        " (read in schema/engine/internals.py; adapt it there)"
    )


def _has(owner: Any, attribute: str, library: str, user: str) -> Any:
    found = getattr(owner, attribute, _MISSING)
    where = getattr(owner, "__name__", type(owner).__name__)
    assert found is not _MISSING, _missing(library, f"{where}.{attribute}", user)
    return found


_MISSING = object()


def _core_executor() -> Any:
    """The executor class the engine's ExecutionContext extends: strawberry's, over
    graphql-core's `Executor`."""
    module = importlib.import_module("strawberry.schema.schema")
    return _has(module, "StrawberryGraphQLCoreExecutionContext", "strawberry", "execution")


@pytest.mark.parametrize(("module", "name", "user"), IMPORTED)
def test_every_name_the_adapter_imports_is_there(module: str, name: str, user: str) -> None:
    library = module.split(".")[0]
    try:
        found = importlib.import_module(module)
    except ImportError:
        pytest.fail(_missing(library, f"module {module}", user))
    _has(found, name, library, user)


def test_every_private_name_is_checked_here() -> None:
    """Each name internals.py exports is imported by it (checked above) or one of its own
    functions or constants (checked below), so no private name slips in unchecked."""
    from schema.engine import internals

    imported = {name for _, name, _ in IMPORTED}
    own = {
        name
        for name, value in vars(internals).items()
        if getattr(value, "__module__", None) == internals.__name__
    }
    unchecked = set(internals.__all__) - imported - own - {"DEFINITION", "STRAWBERRY_RULES", "USES"}
    assert not unchecked, f"schema/engine/internals.py exports unchecked names: {unchecked}"
    assert set(internals.USES) >= imported - {"MaybeNullValidationRule", "OneOfInputValidationRule"}


@strawberry.enum
class Color(enum.Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    color: Color


def _query_type(seen: dict[str, Any]) -> type:
    @strawberry.type
    class Query:
        @strawberry.field
        def item(self, info: strawberry.Info, tag: str = "x") -> Item:
            seen["info"] = info
            return Item(name=tag, color=Color.RED)

    return Query


def test_strawberry_schema_internals() -> None:
    """`Schema._schema`, `GraphQLSchema._strawberry_schema`, the definition back-reference,
    the default resolver's mark, exception handlers, execution context and error logging."""
    seen: dict[str, Any] = {}
    schema = strawberry.Schema(query=_query_type(seen))
    core = _has(schema, "_schema", "strawberry", "prepared.PreparedSchema (graphql_schema_of)")
    assert isinstance(core, graphql.GraphQLSchema), _missing("strawberry", "Schema._schema", "")
    back = _has(core, "_strawberry_schema", "strawberry", "compiler._Compiler, run.Run")
    assert back is schema, _missing("strawberry", "GraphQLSchema._strawberry_schema", "run.Run")

    from schema.engine.internals import DEFINITION

    item_type = core.get_type("Item")
    assert isinstance(item_type, graphql.GraphQLObjectType)
    name_field = item_type.fields["name"]
    assert DEFINITION in (name_field.extensions or {}), _missing(
        "strawberry", f"the {DEFINITION!r} field extension", "compiler._Compiler.field_plan"
    )
    assert getattr(name_field.resolve, "_is_default", None) is True, _missing(
        "strawberry", "the default resolver's _is_default", "compiler.field_plan, execution"
    )
    field = name_field.extensions[DEFINITION]  # type: ignore[index]
    handlers = _has(
        schema.schema_converter, "_get_field_exception_handlers", "strawberry", "compiler"
    )
    assert callable(handlers)
    handlers(field)
    for method in ("_create_execution_context", "_process_errors"):
        assert callable(_has(schema, method, "strawberry", "prepared.PreparedSchema.execute"))
    parameters = inspect.signature(schema._create_execution_context).parameters
    for name in ("query", "allowed_operation_types", "variable_values", "context_value"):
        assert name in parameters, _missing(
            "strawberry", f"Schema._create_execution_context({name}=)", "prepared.execute"
        )
    assert "errors" in inspect.signature(schema._process_errors).parameters, _missing(
        "strawberry", "Schema._process_errors(errors)", "prepared.execute"
    )


def test_strawberry_field_and_info_internals() -> None:
    """What the compiler reads of a strawberry field and its resolver, and the Info it builds."""
    seen: dict[str, Any] = {}
    schema = strawberry.Schema(query=_query_type(seen))
    result = graphql_sync(schema._schema, '{ item(tag: "y") { name color } }')
    assert result.errors is None and result.data == {"item": {"name": "y", "color": "RED"}}
    info = seen["info"]
    raw = _has(info, "_raw_info", "strawberry", "projection.page_selection")
    assert isinstance(raw, GraphQLResolveInfo)
    from schema.engine.internals import DEFINITION, make_info

    core_field = schema._schema.query_type.fields["item"]  # type: ignore[union-attr]
    field = core_field.extensions[DEFINITION]  # type: ignore[index]
    made = make_info(type(info), raw, field)
    assert made.field_name == "item" and made.path is raw.path
    resolver = _has(field, "base_resolver", "strawberry", "compiler._Compiler.field_plan")
    for attribute in (
        "wrapped_func",
        "self_parameter",
        "parent_parameter",
        "root_parameter",
        "info_parameter",
    ):
        _has(resolver, attribute, "strawberry", "compiler._Compiler.field_plan")
    for attribute in ("python_name", "arguments", "extensions"):
        _has(field, attribute, "strawberry", "compiler._Compiler.field_plan")
    config = schema.config
    for attribute in ("info_class", "default_resolver", "name_converter"):
        _has(config, attribute, "strawberry", "compiler, run.Run")
    _has(config.name_converter, "from_argument", "strawberry", "compiler._Compiler.arguments")
    _has(schema.schema_converter, "scalar_registry", "strawberry", "compiler, run.Run")

    from schema.engine.internals import TYPE_CAST_ATTRIBUTE, CustomGraphQLEnumType

    color = schema._schema.get_type("Color")
    assert isinstance(color, CustomGraphQLEnumType), _missing(
        "strawberry", "CustomGraphQLEnumType for enums", "compiler._enum_names"
    )
    assert _has(color, "wrapped_cls", "strawberry", "compiler._enum_names") is Color

    class Plain:
        name = "p"

    cast = strawberry.cast(Item, Plain())
    assert TYPE_CAST_ATTRIBUTE in vars(cast), _missing(
        "strawberry",
        "strawberry.cast's TYPE_CAST_ATTRIBUTE mark",
        "completion.Completion.complete_object",
    )


# Methods of graphql-core's ExecutionContext the engine overrides or calls, with the
# parameters it passes.
EXECUTOR_METHODS = {
    "execute_collected_root_fields": (
        ("root_type", "root_value", "grouped_field_set", "serially", "new_defer_usages"),
        "execution.ExecutionContext (the compiled plans' hook)",
    ),
    "execute_field": (
        ("parent_type", "source", "field_details_list", "path", "position_context"),
        "execution.ExecutionContext.execute_field (the leaf shortcut)",
    ),
    "with_abort_signal": (("awaitable",), "execution.ExecutionContext.with_abort_signal"),
    "build_resolve_info": (
        ("field_def", "field_nodes", "parent_type", "path"),
        "run.Run.prepare (a resolver field's Info)",
    ),
    "ensure_valid_runtime_type": (
        ("runtime_type_name", "return_type", "field_details_list", "info", "result"),
        "completion.Completion.complete_abstract",
    ),
    "handle_field_error": (
        ("raw_error", "return_type", "field_details_list", "path"),
        "execution.ExecutionContext.execute_field",
    ),
    "complete_leaf_value": (("return_type", "result"), "execution.execute_field"),
    "build": (("raw_variable_values",), "execution.ExecutionContext.build"),
    "execute_operation": (("serially",), "execution.ExecutionContext.execute_operation"),
    "finish": (("result",), "execution.ExecutionContext.execute_operation"),
    "build_response": (("data",), "execution.ExecutionContext.execute_operation"),
    "cancel_incremental_work": ((), "execution.ExecutionContext._await_root_fields"),
    "run_async_work_finished_hook": ((), "execution.ExecutionContext._await_root_fields"),
    # The executor made from a prepared operation's setup, by keyword.
    "__init__": (
        (
            "schema",
            "fragment_definitions",
            "fragments",
            "root_value",
            "context_value",
            "operation",
            "variable_values",
            "field_resolver",
            "type_resolver",
            "subscribe_field_resolver",
            "middleware_manager",
            "is_awaitable",
            "hide_suggestions",
        ),
        "execution.ExecutionContext.execute_prepared",
    ),
}
# Attributes of a live execution context that the compiled run reads.
EXECUTOR_ATTRIBUTES = (
    "schema",
    "operation",
    "fragments",
    "fragment_definitions",
    "variable_values",
    "collected_errors",
    "context_value",
    "hide_suggestions",
    "middleware_manager",
    "type_resolver",
    "abort_signal",
    "is_awaitable",
    "hooks",
    "root_value",
)


@pytest.mark.parametrize("method", sorted(EXECUTOR_METHODS))
def test_graphql_core_executor_methods(method: str) -> None:
    parameters, user = EXECUTOR_METHODS[method]
    # strawberry's `__init__` takes (*args, **kwargs) and passes them on to graphql-core's.
    owner = graphql.execution.Executor if method == "__init__" else _core_executor()
    found = _has(owner, method, "graphql", user)
    signature = inspect.signature(found).parameters
    for name in parameters:
        assert name in signature, _missing("graphql", f"ExecutionContext.{method}({name}=)", user)


def test_graphql_core_executor_attributes() -> None:
    """A live execution context has what the compiled run reads of it."""
    seen: list[Any] = []

    class Recording(_core_executor()):  # type: ignore[misc]
        def execute_collected_root_fields(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(self)
            return super().execute_collected_root_fields(*args, **kwargs)

    schema = strawberry.Schema(query=_query_type({}))
    graphql.execute(schema._schema, graphql.parse("{ item { name } }"), executor_class=Recording)
    assert seen, _missing("graphql", "ExecutionContext.execute_collected_root_fields", "")
    for attribute in EXECUTOR_ATTRIBUTES:
        _has(seen[0], attribute, "graphql", "run.Run / compiler.plan_for")
    _has(
        seen[0].variable_values,
        "coerced",
        "graphql",
        "compiler.plan_for, compiler.recipe_arguments",
    )
    _has(seen[0].collected_errors, "errors", "graphql", "execution._compare")


# Outside schema/engine/internals.py, no module reads these (the check the docs describe).
PRIVATE = re.compile(
    r"\._(raw_info|strawberry_schema|schema|is_default|get_field_exception_handlers"
    r"|create_execution_context|process_errors)\b"
    r"|from (graphql\.execution\.(collect_fields|executor|values)"
    r"|strawberry\.(types\.(arguments|base|cast|execution|graphql|lazy_type)"
    r"|schema\.(schema|schema_converter|validation_rules)|execution|utils))\b"
)


def test_no_other_module_reads_these_private_names() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("schema", "resolvers", "gateway")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "schema" / "engine" / "internals.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert not readers, "private library names read outside schema/engine/internals.py:\n" + (
        "\n".join(readers)
    )
