"""The OpenAPI 3.1 document of /api/v1, generated from the route table and the handlers' models."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode, JsonSchemaValue

import gateway
from gateway.jsoncodec import Json, JsonObject
from gateway.rest.framework import Endpoint
from gateway.rest.wire import SETTINGS_KEY
from gateway.settings import Settings

REF_TEMPLATE = "#/components/schemas/{model}"

# JSON schemas as pydantic writes them (`JsonSchemaValue`): of the routes' parts, by (route
# index, "body" | "query" | "response"), and the components they share, by name.
Schemas = dict[tuple[int, str], JsonSchemaValue]
Components = dict[str, JsonSchemaValue]

ERROR_DESCRIPTIONS = {
    400: "Malformed or invalid input; the message names the field",
    401: "Missing, invalid or expired token",
    403: "Authenticated but not allowed",
    404: "Not found, or not yours",
    409: "Conflict",
    415: "The body is not JSON",
    422: "Valid JSON that the domain refuses",
    429: "Rate limited; see Retry-After",
    503: "The database is unavailable or no connection became free in time; see Retry-After",
}

RETRY_AFTER: JsonObject = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}

ERROR_ENVELOPE: JsonObject = {
    "type": "object",
    "description": "Every failure: a non-2xx status and a message written for people.",
    "required": ["success", "error"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string", "description": "Human-readable message"},
    },
}

SECURITY_SCHEME: JsonObject = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "An API key (`gwk_…`) or an identity-provider JWT (a leading `workos:` is accepted). "
        "`/internal/*` routes take the service token instead."
    ),
}


def _tag(path: str) -> str:
    return path.strip("/").split("/")[0] or "root"


def _operation_id(endpoint: Endpoint, used: set[str]) -> str:
    base = endpoint.handler.__name__
    words = [w for w in re.split(r"[^A-Za-z0-9]+", endpoint.path) if w]
    candidate = base if base not in used else f"{base}_{words[0] if words else 'root'}"
    suffix = 2
    unique = candidate
    while unique in used:
        unique = f"{candidate}_{suffix}"
        suffix += 1
    used.add(unique)
    return unique


def _envelope(data: JsonObject) -> JsonObject:
    return {
        "type": "object",
        "required": ["success", "data"],
        "properties": {"success": {"const": True}, "data": data},
    }


def _json(schema: JsonObject) -> JsonObject:
    return {"application/json": {"schema": schema}}


def _collect_schemas(
    endpoints: Sequence[Endpoint],
) -> tuple[Schemas, Components]:
    """JSON schemas of every body, query and response model, sharing one set of components."""
    inputs: list[tuple[tuple[int, str], JsonSchemaMode, TypeAdapter[object]]] = []
    for index, endpoint in enumerate(endpoints):
        if endpoint.body is not None:
            inputs.append(((index, "body"), "validation", TypeAdapter(endpoint.body)))
        if endpoint.query is not None:
            inputs.append(((index, "query"), "validation", TypeAdapter(endpoint.query)))
        if endpoint.response is not None:
            inputs.append(((index, "response"), "serialization", TypeAdapter(endpoint.response)))
    if not inputs:
        return {}, {}
    keys, top = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE, by_alias=True)
    return {k[0]: v for k, v in keys.items()}, dict(top.get("$defs", {}))


def _resolve(schema: JsonSchemaValue, components: Components) -> JsonSchemaValue:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return components[ref.rsplit("/", 1)[1]]
    return schema


def _non_null(prop: JsonSchemaValue) -> JsonSchemaValue:
    """A query parameter is absent rather than null: drop `null` branches and defaults."""
    schema = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
    options = schema.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            schema.pop("anyOf")
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if prop.get("default") is not None:
        schema["default"] = prop["default"]
    return schema


def _query_parameters(schema: JsonSchemaValue, components: Components) -> list[Json]:
    model = _resolve(schema, components)
    required = set(model.get("required", []))
    params: list[Json] = []
    for name, prop in model.get("properties", {}).items():
        param: JsonObject = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _non_null(prop),
        }
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    return params


def _operation(
    endpoint: Endpoint,
    index: int,
    schemas: Schemas,
    components: Components,
    used_ids: set[str],
) -> JsonObject:
    doc = (endpoint.handler.__doc__ or "").strip()
    operation: JsonObject = {
        "operationId": _operation_id(endpoint, used_ids),
        "summary": endpoint.summary,
        "tags": [_tag(endpoint.path)],
    }
    if doc:
        operation["description"] = doc
    if endpoint.auth == "none":
        operation["security"] = []
    parameters: list[Json] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in endpoint.path_params
    ]
    if (index, "query") in schemas:
        parameters.extend(_query_parameters(schemas[(index, "query")], components))
    if endpoint.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "A replay with the same key and body returns the first response",
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    if parameters:
        operation["parameters"] = parameters
    if (index, "body") in schemas:
        body_schema = schemas[(index, "body")]
        operation["requestBody"] = {
            "required": bool(_resolve(body_schema, components).get("required")),
            "content": _json(body_schema),
        }

    responses: JsonObject = {}
    status = endpoint.status
    if status == 204:
        responses["204"] = {"description": "No Content"}
    else:
        data = schemas.get((index, "response"))
        responses[str(status)] = {
            "description": "Success",
            "content": _json(_envelope(data if data is not None else {})),
        }
    errors = {503}  # every route reads the database
    if endpoint.auth != "none":
        errors |= {401, 404, 429}
    if endpoint.path_params or endpoint.query is not None or endpoint.body is not None:
        errors |= {400, 404}
    if endpoint.body is not None:
        errors.add(415)
    for code in sorted(errors):
        response: JsonObject = {
            "description": ERROR_DESCRIPTIONS[code],
            "content": _json({"$ref": REF_TEMPLATE.format(model="ErrorEnvelope")}),
        }
        if code in (429, 503):
            response["headers"] = RETRY_AFTER
        responses[str(code)] = response
    responses["default"] = {
        "description": "Any other failure (403, 405, 409, 422, 5xx) in the same envelope",
        "content": _json({"$ref": REF_TEMPLATE.format(model="ErrorEnvelope")}),
    }
    operation["responses"] = responses
    return operation


def _apply_settings(node: Schemas | Components, settings: Settings | None) -> None:
    """Bounds declared with `from_settings` become the running settings' values (without
    settings, the defaults'); the marker itself leaves the document."""
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            keywords = item.pop(SETTINGS_KEY, None)
            if keywords:
                source = settings or Settings()
                for keyword, attribute in keywords.items():
                    item[keyword] = getattr(source, attribute)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def build_openapi(
    endpoints: Sequence[Endpoint],
    *,
    server_url: str = "/api/v1",
    settings: Settings | None = None,
) -> JsonObject:
    """The whole document: one path item per route path, one operation per method."""
    endpoints = list(endpoints)
    schemas, components = _collect_schemas(endpoints)
    _apply_settings(schemas, settings)
    _apply_settings(components, settings)
    components["ErrorEnvelope"] = ERROR_ENVELOPE
    operations: dict[str, JsonObject] = {}
    used_ids: set[str] = set()
    for index, endpoint in enumerate(endpoints):
        item = operations.setdefault(endpoint.path, {})
        item[endpoint.method.lower()] = _operation(endpoint, index, schemas, components, used_ids)
    paths: JsonObject = dict(operations)  # path -> its operations, as a JSON value
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Account gateway REST API",
            "version": gateway.__version__,
            "description": (
                'The `/api/v1` compatibility layer. Success is `{"success": true, "data": …}`; '
                'failure is a non-2xx status with `{"success": false, "error": "…"}`.'
            ),
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearerAuth": SECURITY_SCHEME},
        },
    }
