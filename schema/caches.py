"""An operation's preparation, once per query text: parsed, validated, and its errors coded.

One schema extension with one hook does what four did (strawberry's `ParserCache` and
`AddValidationRules`, a validation cache, the error codes): strawberry builds a context manager
per hook of every extension for every request (a wrapper function, a generator, their entry
and exit), which was a fifth of the cost of `{ __typename }`.

- Parsing: one `DocumentNode` per query text (bounded LRU); a text that does not parse is left
  to strawberry, which reports the syntax error as before.
- Validation: strawberry's `ValidationCache` keys an `lru_cache` by `(schema, document, rules)`,
  so every request hashes the whole document (graphql-core's AST nodes hash recursively, ~70
  node hashes for a user page). The parse cache hands out one document per text, so its
  validation result is found by the document's identity (the entry keeps the document, so its
  id is not reused while cached); another document, schema or rule set is validated anew. The
  operation's type is still checked by strawberry before the result is used.
- Errors: `schema.errors.coded_error` on every error of the result.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from graphql import GraphQLError, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from schema.errors import coded_error

_parse = functools.lru_cache(maxsize=256)(parse)


class PreparedOperations(SchemaExtension):
    # (id(schema), id(document)) -> (schema, document, rules, errors); shared by all requests.
    _entries: OrderedDict[tuple[int, int], tuple[Any, Any, tuple[Any, ...], Any]] = OrderedDict()
    maxsize = 256

    def __init__(self, validation_rules: Sequence[Any] = ()) -> None:
        super().__init__()
        self.validation_rules = tuple(validation_rules)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.validation_rules
        if context.graphql_document is None and context.query:
            try:
                document = _parse(context.query, **context.parse_options)
            except GraphQLError:
                document = None
            if document is not None:
                context.graphql_document = document
                context.pre_execution_errors = self._validated(
                    context.schema._schema, document, tuple(context.validation_rules)
                )
        yield
        result = context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [coded_error(error) for error in result.errors]

    def _validated(self, schema: Any, document: Any, rules: tuple[Any, ...]) -> Any:
        entries = self._entries
        key = (id(schema), id(document))
        found = entries.get(key)
        if found is not None and found[0] is schema and found[1] is document and found[2] == rules:
            entries.move_to_end(key)
            return found[3]
        errors = validate_document(schema, document, rules)
        entries[key] = (schema, document, rules, errors)
        if len(entries) > self.maxsize:
            entries.popitem(last=False)
        return errors
