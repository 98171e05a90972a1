"""The REST wire models' base: camelCase JSON, timestamps, bounded integers, the page query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Self, cast

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo
from pydantic.json_schema import WithJsonSchema

from gateway.inputs import INT64_MAX, YEAR_PATTERN, timestamp_in_range
from gateway.timestamps import format_datetime
from resolvers.context import Context
from resolvers.pagination import PageArgs, decode_cursor

# RFC 3339 UTC with microseconds and `Z` (CONTRACT.md "Casing"), e.g. 2025-12-01T22:34:35.355099Z.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_datetime, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN},
        mode="serialization",
    ),
]


class Wire(BaseModel):
    """A body on the wire: camelCase names, unknown request fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        # Responses always carry every field, so OpenAPI lists them all as required.
        json_schema_serialization_defaults_required=True,
    )


class Out(Wire):
    """A response body read from an object: one declaration gives the wire names (camelCase),
    the OpenAPI schema and the mapping. Each field is the source's attribute of its name, or the
    one its `validation_alias` names (`AliasPath("payment", "id")` for a nested one), through
    the field's `BeforeValidator`s (`EmptyIfNone`, …)."""

    model_config = ConfigDict(
        from_attributes=True,
        # Read by field name (or validation_alias), written in camelCase.
        alias_generator=AliasGenerator(serialization_alias=to_camel),
    )

    @classmethod
    def of(cls, source: object, **values: object) -> Self:
        """The body for `source`; `values` give the fields it has no attribute for."""
        return cls.model_validate(_Overlay(source, values) if values else source)


class _Overlay:
    """`source`'s attributes, with `values` in place of (or besides) some of them."""

    __slots__ = ("_source", "_values")

    def __init__(self, source: object, values: dict[str, object]) -> None:
        self._source = source
        self._values = values

    def __getattr__(self, name: str) -> object:
        if name in self._values:
            return self._values[name]
        return getattr(self._source, name)


# The contract writes "" where the database holds no value (a personal usage's organization).
EmptyIfNone = Annotated[str, BeforeValidator(lambda value: "" if value is None else value)]


# What `row_writer` writes as it is: the field's value is already its JSON.
_AS_IS: tuple[object, ...] = (str, int, float, bool, str | None, int | None, dict[str, Any])

Convert = Callable[[object], object]
_Step = tuple[str, str, str, Convert | None, Callable[[object], bool] | None]


def row_writer(model: type[Out], given: tuple[str, ...] = ()) -> Callable[..., dict[str, object]]:
    """`model.of(row, **values).model_dump(mode="json", by_alias=True)` as `write(row, values)`,
    without building the model: the usage pages send 50 items per request, and validating and
    dumping them as models costs about twice what this does. The fields named in `given` come
    from `values` (the same for a page's rows: the member shown beside each), the others from
    the row's attributes. The declaration's steps (each field's attribute, its
    `BeforeValidator`s, its `exclude_if`, a timestamp's serializer) are written out once as
    straight-line Python, as the GraphQL engine does for its plans: a loop over the steps cost
    ~0.3 M instructions more per page of 50. Only attribute names that are identifiers, and
    `repr()` constants, go into the source. Flat fields only (text, numbers, booleans, JSON
    objects, timestamps); tests/rest/test_rest_wire.py holds the two equal."""
    namespace: dict[str, object] = {}
    lines = ["def write(row, values=None, /):", "    out = {}"]
    fields = model.model_fields
    unknown = set(given) - set(fields)
    if unknown:
        raise TypeError(f"{model.__name__} has no field {sorted(unknown)}")
    for index, (key, name, attribute, convert, exclude_if) in enumerate(
        _step(model, name, field) for name, field in fields.items()
    ):
        if not attribute.isidentifier():
            raise TypeError(f"{model.__name__}.{name}: reads {attribute!r}, not an attribute")
        read = f"values[{name!r}]" if name in given else f"row.{attribute}"
        lines.append(f"    value = {read}")
        if convert is not None:
            namespace[f"convert_{index}"] = convert
            lines.append(f"    value = convert_{index}(value)")
        if exclude_if is not None:
            namespace[f"exclude_{index}"] = exclude_if
            lines.append(f"    if not exclude_{index}(value):")
            lines.append(f"        out[{key!r}] = value")
        else:
            lines.append(f"    out[{key!r}] = value")
    lines.append("    return out")
    exec(compile("\n".join(lines), f"<row_writer {model.__name__}>", "exec"), namespace)
    write: Callable[..., dict[str, object]] = namespace["write"]  # type: ignore[assignment]
    return write


def _step(model: type[Out], name: str, field: FieldInfo) -> _Step:
    # pydantic types these as any of its validator and serializer signatures; the ones a wire
    # model declares take the value alone (row_writer refuses other shapes below).
    functions = [cast(Convert, m.func) for m in field.metadata if isinstance(m, BeforeValidator)]
    serializers = [cast(Convert, m.func) for m in field.metadata if isinstance(m, PlainSerializer)]
    if field.annotation is datetime and len(serializers) == 1 and field.exclude_if is None:
        functions += serializers  # a Timestamp
    elif field.annotation not in _AS_IS or serializers:
        raise TypeError(f"{model.__name__}.{name}: row_writer writes flat fields only")
    attribute = field.validation_alias if isinstance(field.validation_alias, str) else name
    key = field.serialization_alias or name
    return key, name, attribute, _chain(functions), field.exclude_if


def _chain(functions: list[Convert]) -> Convert | None:
    if len(functions) < 2:
        return functions[0] if functions else None

    def chained(value: object) -> object:
        for function in functions:
            value = function(value)
        return value

    return chained


class WireIn(Wire):
    """A request body: JSON's own types only (CONTRACT.md "Units"): `"true"` or `1` is no
    boolean, `"5"` or `5.0` no integer. Timestamps (`Instant`) are the one exception: strings."""

    model_config = ConfigDict(strict=True)


# Integer bounds of what a column holds (BigInteger) and of the domain: every integer of a
# request body has bounds inside 64 bits, these or narrower (tests/security/test_hostile_input.py checks
# the route table).
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Field(ge=1, le=INT64_MAX)]


# An RFC 3339 timestamp in a request: with a timezone, in the range all later arithmetic
# survives (`gateway.inputs`), converted to UTC.
Instant = Annotated[
    datetime,
    Field(strict=False),
    AfterValidator(timestamp_in_range),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": YEAR_PATTERN}, mode="validation"
    ),
]


def from_settings(**keywords: str) -> JsonDict:
    """`json_schema_extra` for a bound that is a setting: OpenAPI keyword → Settings attribute
    (`minimum="checkout_min_cents"`), filled in by `build_openapi` from the running settings,
    so the document states the limit this server enforces."""
    return {SETTINGS_KEY: {**keywords}}


SETTINGS_KEY = "x-gateway-settings"

# The longest cursor this API hands out is far shorter (an id, base64-encoded).
MAX_CURSOR = 200


class PageQuery(Wire):
    """`?limit=&cursor=` of every list route (CONTRACT.md "Lists")."""

    limit: int | None = Field(default=None, ge=1, le=100, description="Page size (default 50)")
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR,
        description="`nextCursor` of the previous page (opaque)",
    )

    def checked_cursor(self) -> str | None:
        """The cursor, checked here so that a bad one is named as the client sent it."""
        if self.cursor:
            decode_cursor(self.cursor, field_name="cursor")
        return self.cursor or None

    def page_size(self, ctx: Context) -> int:
        return min(self.limit or ctx.settings.default_page_size, ctx.settings.max_page_size)

    def page_args(self, ctx: Context, *, backward: bool = False) -> PageArgs:
        """The first `limit` items after the cursor; `backward`, the last `limit` items before
        it (for lists stored oldest first and shown newest first)."""
        size, cursor = self.page_size(ctx), self.checked_cursor()
        direction = (
            {"last": size, "before": cursor} if backward else {"first": size, "after": cursor}
        )
        settings = ctx.settings
        return PageArgs.build(
            **direction, default=settings.default_page_size, maximum=settings.max_page_size
        )
