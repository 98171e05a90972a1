"""Validation results cached per parsed document, by the document's identity.

strawberry's `ValidationCache` keys an `lru_cache` by `(schema, document, rules)`, so every
request hashes the whole document: graphql-core's AST nodes hash recursively, ~70 node hashes
for a user page, every time. `ParserCache` hands out one `DocumentNode` per query text, so the
result of validating it can be found by that object's identity (the entry keeps the document,
so its id is not reused while cached); another document, schema or rule set is validated anew.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document


class DocumentValidationCache(SchemaExtension):
    # (id(schema), id(document)) -> (schema, document, rules, errors); shared by all requests.
    _entries: OrderedDict[tuple[int, int], tuple[Any, Any, tuple[Any, ...], Any]] = OrderedDict()

    def __init__(self, maxsize: int = 256) -> None:
        super().__init__()
        self.maxsize = maxsize

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        schema, document = context.schema._schema, context.graphql_document
        rules = tuple(context.validation_rules)
        entries = self._entries
        key = (id(schema), id(document))
        found = entries.get(key)
        if found is not None and found[0] is schema and found[1] is document and found[2] == rules:
            entries.move_to_end(key)
            errors = found[3]
        else:
            errors = validate_document(schema, document, rules)
            entries[key] = (schema, document, rules, errors)
            if len(entries) > self.maxsize:
                entries.popitem(last=False)
        context.pre_execution_errors = errors
        yield
