"""Persisted documents: Apollo's automatic persisted queries and a manifest of trusted
documents, known by the one identity the prepared documents and the plans use, the sha256 of
the document's text.

- **Automatic persisted queries** (Apollo's protocol): a request may send
  `extensions.persistedQuery = {"version": 1, "sha256Hash": "<64 hex digits>"}` instead of
  its `query`. A hash the gateway does not know is `PERSISTED_QUERY_NOT_FOUND` (message
  `PersistedQueryNotFound`, which Apollo's clients answer by sending the hash and the query);
  a hash with a query registers it once the text is within the length limit, hashes to it and
  parses within the limits. Kept least recently used first out in each process (bounded by
  count and characters), and in Redis when configured so that every process knows what one
  was sent (a cache: Redis away is a miss, logged).
- **Trusted documents**: a manifest file of operations (graphql-codegen's persisted documents,
  `{"<id>": "<document>"}`, or Apollo's persisted query manifest), whose ids clients send as
  `sha256Hash`. Its documents are always known; with `trusted_only` (production) nothing else
  runs: any other text or hash is `PERSISTED_QUERY_NOT_TRUSTED`, and nothing registers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import GraphQLError

from gateway.errors import ConfigurationError
from schema.engine.sized_cache import SizedCache
from schema.limits import QueryLimits, check_length

log = logging.getLogger("gateway.graphql")

EXTENSION = "persistedQuery"
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Manifest ids: the hash the client's build computed (sha256, or sha1 with graphql-codegen's
# default), or any short name a manifest gives its operations.
_MANIFEST_ID = re.compile(r"[0-9A-Za-z_.:-]{1,128}")


def document_digest(text: str) -> str:
    """The identity of a document's text: its sha256, as Apollo's clients compute it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _error(code: str, message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def requested_id(extensions: object) -> str | None:
    """The hash (or manifest id) a request's `extensions.persistedQuery` asks for; None when
    it sends none; `PERSISTED_QUERY_INVALID` when the extension is not Apollo's version 1."""
    if not isinstance(extensions, dict) or EXTENSION not in extensions:
        return None
    asked = extensions[EXTENSION]
    found = asked.get("sha256Hash") if isinstance(asked, dict) else None
    if (
        not isinstance(asked, dict)
        or type(asked.get("version")) is not int
        or asked.get("version") != 1
        or not isinstance(found, str)
        or _MANIFEST_ID.fullmatch(found) is None
    ):
        raise _error(
            "PERSISTED_QUERY_INVALID",
            'extensions.persistedQuery must be {"version": 1, "sha256Hash": "<the sha256 of '
            'the query, 64 lowercase hexadecimal digits>"}',
        )
    return found


class TrustedDocuments:
    """A manifest's documents by the id clients send and by their sha256."""

    def __init__(self, documents: dict[str, str]) -> None:
        self.by_id = documents
        self.digests = {key: document_digest(text) for key, text in documents.items()}
        self.by_digest = {digest: documents[key] for key, digest in self.digests.items()}

    @classmethod
    def load(cls, path: str, limits: QueryLimits) -> TrustedDocuments:
        """The manifest at `path`; ConfigurationError (one line) when it cannot be read, is
        neither format, or holds a document past the length limit or an id that is a sha256
        of something else."""
        try:
            loaded: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            message = f"GATEWAY_TRUSTED_DOCUMENTS: cannot read {path}: {error}"
            raise ConfigurationError(message) from None
        if isinstance(loaded, dict) and isinstance(loaded.get("operations"), list):
            # Apollo's persisted query manifest: {"operations": [{"id", "body", ...}]}.
            pairs = [
                (o.get("id"), o.get("body")) if isinstance(o, dict) else (None, None)
                for o in loaded["operations"]
            ]
        elif isinstance(loaded, dict):
            pairs = list(loaded.items())
        else:
            pairs = [(None, None)]
        documents: dict[str, str] = {}
        for key, text in pairs:
            if not isinstance(key, str) or not isinstance(text, str):
                raise ConfigurationError(
                    f"GATEWAY_TRUSTED_DOCUMENTS: {path} must map ids to documents, "
                    '{"<id>": "<document>"} or Apollo\'s {"operations": [{"id", "body"}]}'
                )
            if _MANIFEST_ID.fullmatch(key) is None:
                raise ConfigurationError(f"GATEWAY_TRUSTED_DOCUMENTS: {key[:80]!r} is no id")
            if len(text) > limits.max_length:
                raise ConfigurationError(
                    f"GATEWAY_TRUSTED_DOCUMENTS: document {key} is longer than "
                    f"GATEWAY_GRAPHQL_MAX_LENGTH ({limits.max_length})"
                )
            if _HEX64.fullmatch(key) and key != document_digest(text):
                raise ConfigurationError(
                    f"GATEWAY_TRUSTED_DOCUMENTS: {key} is not the sha256 of its document"
                )
            documents[key] = text
        return cls(documents)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The text a request runs, its sha256 when already known, and whether it registers
    (once it parses within the limits)."""

    query: str
    digest: str | None = None
    register: bool = False


@dataclass(frozen=True)
class PersistedSettings:
    enabled: bool = True
    max_entries: int = 5_000
    max_characters: int = 8 << 20
    redis_url: str | None = None
    ttl_seconds: int = 7 * 86_400
    trusted: TrustedDocuments | None = None
    trusted_only: bool = False


class PersistedDocuments:
    """What a request's query and `persistedQuery` extension resolve to (module docstring)."""

    def __init__(self, limits: QueryLimits, settings: PersistedSettings | None = None) -> None:
        self.limits = limits
        self.settings = settings = settings or PersistedSettings()
        self.trusted = settings.trusted
        self.trusted_only = settings.trusted_only and settings.trusted is not None
        self._texts: SizedCache[str, str] = SizedCache(
            settings.max_entries, settings.max_characters
        )
        self._redis: Any = None
        if settings.redis_url and settings.enabled and not self.trusted_only:
            from redis.asyncio import Redis

            self._redis = Redis.from_url(
                settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0
            )

    async def resolve(self, query: str | None, extensions: object) -> Resolved | None:
        """The document to run; None when the request has neither a query nor a hash (the
        transport's "no query" answer); a coded GraphQLError when it may not run."""
        asked = requested_id(extensions)
        if asked is None:
            if query is None:
                return None
            if not self.trusted_only:
                return Resolved(query)
            check_length(query, self.limits)
            digest = document_digest(query)
            if self.trusted is None or digest not in self.trusted.by_digest:
                raise self._not_trusted()
            return Resolved(query, digest)
        trusted = self.trusted.by_id.get(asked) if self.trusted is not None else None
        if trusted is not None:
            if query is not None and query != trusted:
                raise _error(
                    "PERSISTED_QUERY_HASH_MISMATCH",
                    f"The query is not the trusted document {asked}",
                )
            return Resolved(trusted, self.trusted.digests[asked] if self.trusted else None)
        if self.trusted_only:
            raise self._not_trusted()
        if not self.settings.enabled:
            raise _error("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")
        if _HEX64.fullmatch(asked) is None:
            raise _error(
                "PERSISTED_QUERY_INVALID",
                "extensions.persistedQuery.sha256Hash must be 64 lowercase hexadecimal digits",
            )
        if query is not None:
            check_length(query, self.limits)
            if document_digest(query) != asked:
                raise _error(
                    "PERSISTED_QUERY_HASH_MISMATCH",
                    "extensions.persistedQuery.sha256Hash is not the sha256 of the query",
                )
            return Resolved(query, asked, register=True)
        found = self._texts.get(asked)
        if found is None:
            found = await self._shared(asked)
        if found is None:
            raise _error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return Resolved(found, asked)

    async def register(self, digest: str, query: str) -> None:
        """Keep a document that parsed within the limits, here and in Redis."""
        self._texts.put(digest, query, len(query))
        if self._redis is not None:
            try:
                await self._redis.set(self._key(digest), query, ex=self.settings.ttl_seconds)
            except Exception as error:  # a cache: the document is still known here
                log.warning("persisted query not shared through Redis: %s", error)

    async def _shared(self, digest: str) -> str | None:
        if self._redis is None:
            return None
        try:
            found = await self._redis.get(self._key(digest))
        except Exception as error:  # a miss: the client sends the query again
            log.warning("persisted query lookup in Redis failed: %s", error)
            return None
        if found is None:
            return None
        text = found.decode("utf-8", "surrogatepass") if isinstance(found, bytes) else str(found)
        # Another process checked it; a text that is not what the hash says is not used.
        if len(text) > self.limits.max_length or document_digest(text) != digest:
            return None
        self._texts.put(digest, text, len(text))
        return text

    def _not_trusted(self) -> GraphQLError:
        return _error(
            "PERSISTED_QUERY_NOT_TRUSTED",
            "Only trusted documents run here: send the id of a document of the manifest "
            "(GATEWAY_TRUSTED_DOCUMENTS) as extensions.persistedQuery.sha256Hash",
        )

    @staticmethod
    def _key(digest: str) -> str:
        return f"gateway:apq:{digest}"

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
