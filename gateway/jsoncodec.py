"""JSON decoding that keeps numbers exactly, at orjson's speed where that is safe."""

from __future__ import annotations

import json
import re
from typing import Any, TypeAlias

import orjson

# An integer of 19 digits or more may not fit in 64 bits, which orjson would turn into a float.
_LONG_NUMBER = re.compile(r"[0-9]{19}")

# A JSON value as `json.loads` returns it (and as `dump_json` writes it).
Json: TypeAlias = dict[str, "Json"] | list["Json"] | str | int | float | bool | None
JsonObject: TypeAlias = dict[str, Json]


def load_json(text: str) -> Json:
    """JSON (columns, request bodies) as the standard library decodes it, mostly at orjson's
    speed.

    orjson returns the same values as `json.loads` for every document it accepts but one kind:
    an integer beyond 64 bits comes back as a float. Documents with a run of 19 digits or more
    (even inside a string), and those orjson refuses (NaN, Infinity, lone surrogates), are
    decoded by `json.loads`.
    """
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return loads_exactly(text)


def loads_exactly(data: str | bytes) -> Any:
    """`json.loads`, with a document nested too deeply for the interpreter's stack (orjson
    refuses past 1,024 levels, then the standard library recurses until it fails) refused as
    invalid JSON, like any other bad document, instead of a RecursionError.

    Typed as `json.loads` is, untyped: its callers read documents of a known shape (a Stripe
    event, a GraphQL request) and check what they read."""
    try:
        return json.loads(data)
    except RecursionError as error:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from error


def dump_json(value: object, *, sort_keys: bool = False) -> bytes:
    """Compact JSON by orjson, or by the standard library for what orjson refuses (an
    integer beyond 64 bits); one value always takes the same path."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
    except TypeError:
        return json.dumps(
            value,
            sort_keys=sort_keys,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_fragment_value,
        ).encode()


def parse_fragment(fragment: orjson.Fragment) -> Json:
    """The value of JSON text that orjson embeds as it is (an `orjson.Fragment`)."""
    return orjson.loads(orjson.dumps(fragment))


def _fragment_value(value: object) -> Json:
    """What the standard library writes for an `orjson.Fragment`: its value."""
    if isinstance(value, orjson.Fragment):
        return parse_fragment(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
