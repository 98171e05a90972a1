"""The one Strawberry schema: per-domain Query and Mutation types merged together."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import strawberry
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.tools import merge_types
from strawberry.types import Info, get_object_definition

from gateway.ids import prefix_of
from gateway.settings import Settings
from resolvers import nodes
from schema import declare
from schema.api_key import ApiKey, ApiKeyMutation
from schema.engine.execution import ExecutionContext
from schema.engine.persisted import PersistedDocuments, PersistedSettings, TrustedDocuments
from schema.engine.prepared import PreparedOperations, PreparedSchema
from schema.inputs import NoNulInStrings
from schema.invite import Invite, InviteMutation
from schema.limits import QueryLimits
from schema.member import Member, MemberMutation, MemberQuery
from schema.organization import Organization, OrganizationMutation, OrganizationQuery
from schema.payment import Payment, PaymentMutation
from schema.plan import Plan, PlanMutation, PlanQuery, Subscription
from schema.promotion import PromotionMutation
from schema.relay import Node
from schema.scalars import SCALAR_MAP
from schema.usage import Usage, UsageMutation
from schema.user import User, UserMutation, UserQuery

_NODE_CLASSES: dict[str, Any] = {
    "usr": User,
    "org": Organization,
    "mbr": Member,
    "usg": Usage,
    "inv": Invite,
    "key": ApiKey,
    "pay": Payment,
    "pln": Plan,
    "sub": Subscription,
}
NODE_TYPES: dict[str, Callable[[Any], Node]] = {
    prefix: cls.from_model for prefix, cls in _NODE_CLASSES.items()
}
# Each id prefix's GraphQL type name: what `node(id:)` shows (schema/declare.py `by_id`).
_NODE_NAMES = {
    prefix: get_object_definition(cls, strict=True).name for prefix, cls in _NODE_CLASSES.items()
}


def _node_target(arguments: Mapping[str, object]) -> tuple[str, str] | None:
    node_id = arguments.get("id")
    if not isinstance(node_id, str):
        return None
    name = _NODE_NAMES.get(prefix_of(node_id) or "")
    return None if name is None else (name, node_id)


@strawberry.type
class NodeQuery:
    @strawberry.field(description="Any object by its global id, if you may see it.")
    @declare.by_id(_node_target)
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        found = await nodes.node(info.context, str(id))
        return NODE_TYPES[found[0]](found[1]) if found is not None else None

    @strawberry.field(description="Objects by global id, in order; null where not visible.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > info.context.settings.max_page_size:
            from gateway.errors import ValidationFailed

            raise ValidationFailed(
                f"At most {info.context.settings.max_page_size} ids", field="ids"
            )
        found = await asyncio.gather(*(nodes.node(info.context, str(i)) for i in ids))
        return [NODE_TYPES[f[0]](f[1]) if f is not None else None for f in found]


class CachedNameConverter(NameConverter):
    """NameConverter remembering its conversions: argument names are converted on every call."""

    def __init__(self, auto_camel_case: bool = True) -> None:
        super().__init__(auto_camel_case)
        self._converted: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        converted = self._converted.get(name)
        if converted is None:
            converted = self._converted[name] = super().apply_naming_config(name)
        return converted


QUERY_TYPES: tuple[type, ...] = (NodeQuery, UserQuery, OrganizationQuery, MemberQuery, PlanQuery)
MUTATION_TYPES: tuple[type, ...] = (
    UserMutation,
    OrganizationMutation,
    MemberMutation,
    InviteMutation,
    ApiKeyMutation,
    UsageMutation,
    PaymentMutation,
    PromotionMutation,
    PlanMutation,
)


def build_schema(settings: Settings | None = None) -> PreparedSchema:
    settings = settings or Settings()
    Query = merge_types("Query", QUERY_TYPES)
    Mutation = merge_types("Mutation", MUTATION_TYPES)
    rules = (
        NoNulInStrings,
        *(
            ()
            if settings.exploration(settings.graphql_introspection)
            else (NoSchemaIntrospectionCustomRule,)
        ),
    )
    suggestions = settings.exploration(settings.graphql_suggestions)
    limits = query_limits(settings)
    return PreparedSchema(
        query=Query,
        mutation=Mutation,
        types=[User, Organization, Member],
        # Parsing within the limits and validation once per query text, errors coded: one hook.
        extensions=[lambda: PreparedOperations(rules)],
        prepared_rules=rules,
        limits=limits,
        hide_suggestions=not suggestions,
        persisted=persisted_documents(settings, limits),
        execution_context_class=type(
            "ExecutionContext", (ExecutionContext,), {"executor_mode": settings.graphql_executor}
        ),
        config=StrawberryConfig(
            name_converter=CachedNameConverter(auto_camel_case=True),
            scalar_map=SCALAR_MAP,
            disable_field_suggestions=not suggestions,
        ),
    )


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_length=settings.graphql_max_length,
        max_tokens=settings.graphql_max_tokens,
        max_depth=settings.graphql_max_depth,
        max_aliases=settings.graphql_max_aliases,
        max_cost=settings.graphql_max_cost,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
    )


def persisted_documents(settings: Settings, limits: QueryLimits) -> PersistedDocuments:
    """Automatic persisted queries and trusted documents; ConfigurationError when the
    manifest cannot be used."""
    trusted = trusted_documents(settings, limits)
    return PersistedDocuments(
        limits,
        PersistedSettings(
            enabled=settings.graphql_persisted_queries,
            max_entries=settings.graphql_persisted_queries_max_entries,
            max_characters=settings.graphql_persisted_queries_max_characters,
            redis_url=settings.redis_url,
            ttl_seconds=settings.graphql_persisted_queries_ttl_seconds,
            trusted=trusted,
            trusted_only=settings.trusted_documents_only,
        ),
    )


def trusted_documents(settings: Settings, limits: QueryLimits) -> TrustedDocuments | None:
    """The manifest `GATEWAY_TRUSTED_DOCUMENTS` names, read and checked (ConfigurationError
    when it cannot be used: `gateway serve` asks before it starts any process)."""
    if not settings.trusted_documents:
        return None
    return TrustedDocuments.load(settings.trusted_documents, limits)
