"""What a prepared operation's executor needs whatever the request, found once (`OperationSetup`):
the operation, its fragments, its root type, its directives' variables, and its root fields (with
their plan) per value of those variables. execution.py builds each request's executor from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    assert_valid_schema,
)

from schema.engine.compiler import directive_variables
from schema.engine.internals import FragmentDetails
from schema.engine.plans import GroupedFields, ObjectPlan

# An operation's root fields collected for one value of its directives' variables: the grouped
# fields, graphql-core's defer usages (not exported: as they come), and the compiled plan (None
# when there is none: a mutation, something the compiler does not handle, the standard mode).
RootFields: TypeAlias = tuple[GroupedFields, Sequence[Any], ObjectPlan | None]
# Root fields kept per operation, one entry per value of its directives' variables; past that,
# collected per request. An entry keeps a plan, so a document (bounded by prepared.Documents)
# holds at most this many plans per operation beside the plan cache's (compiler.py).
ROOT_FIELDS_PER_OPERATION = 4


class OperationSetup:
    """What graphql-core's `Executor.build` and `execute_operation` find in one valid operation
    of a prepared document whatever the request: the operation, its fragments, its root type,
    the variables its directives take, and its root fields (with their plan) per value of
    those variables. Found once per prepared operation (prepared.py), where graphql-core
    finds them again on every request (assert the schema valid, scan the document, collect
    the root fields, look the plan up)."""

    __slots__ = (
        "directive_variables",
        "fragment_definitions",
        "fragments",
        "operation",
        "root_fields",
        "root_type",
        "schema",
    )

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragment_definitions: dict[str, FragmentDefinitionNode],
        root_type: GraphQLObjectType,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragment_definitions = fragment_definitions
        self.fragments = {
            name: FragmentDetails(definition, None)
            for name, definition in fragment_definitions.items()
        }
        self.root_type = root_type
        self.directive_variables = directive_variables(operation, fragment_definitions.values())
        self.root_fields: dict[tuple[object, ...], RootFields] = {}

    @classmethod
    def of(
        cls, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
    ) -> OperationSetup | None:
        """The setup of the named operation (None: the only one), found as graphql-core's
        `build` finds it; None where `build` would refuse (no such operation, several without
        a name), for fragments with variables, and for a schema with `@defer`/`@stream` (which
        graphql-core's `execute` refuses): graphql-core's own way answers those."""
        assert_valid_schema(schema)  # as `build` does: a TypeError for an invalid schema
        if schema.get_directive("defer") or schema.get_directive("stream"):
            return None
        operation: OperationDefinitionNode | None = None
        fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                if operation_name is None:
                    if operation is not None:
                        return None
                    operation = definition
                elif definition.name and definition.name.value == operation_name:
                    operation = definition
            elif isinstance(definition, FragmentDefinitionNode):
                if definition.variable_definitions:
                    return None
                fragments[definition.name.value] = definition
        if operation is None:
            return None
        root_type = schema.get_root_type(operation.operation)
        if root_type is None:
            return None
        return cls(schema, operation, fragments, root_type)

    def signature(self, coerced: dict[str, Any]) -> tuple[object, ...] | None:
        """The values of the directives' variables (None when one is not hashable)."""
        names = self.directive_variables
        if not names:
            return ()
        signature = tuple(coerced.get(name) for name in names)
        try:
            hash(signature)
        except TypeError:
            return None
        return signature

    def remember(self, signature: tuple[object, ...], root_fields: RootFields) -> None:
        if len(self.root_fields) < ROOT_FIELDS_PER_OPERATION:
            self.root_fields[signature] = root_fields
