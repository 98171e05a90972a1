"""Every knob of the service, read from GATEWAY_* environment variables (see README)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./gateway.db"
    # PostgreSQL schema to use (search_path); None uses the server's default.
    database_schema: str | None = None
    # Connections per process, opened once and kept: a request holds one from its first
    # statement to its end. Overflow connections are closed as soon as they are returned, so
    # under sustained concurrency above the pool they are reconnected for every request.
    database_pool_size: int = 20
    database_max_overflow: int = 0
    database_pool_timeout: float = 30.0
    # Seconds a new PostgreSQL connection may take (TCP, TLS, authentication) before the
    # request gives up with 503; `/readyz` gives up on the database after `readiness_timeout`.
    database_connect_timeout: float = Field(default=5.0, gt=0)
    # A statement longer than this is cancelled by PostgreSQL (503); a database that stops
    # answering is given up a second later.
    database_statement_timeout: float = Field(default=30.0, gt=0)
    # How PostgreSQL plans the gateway's prepared statements (its `plan_cache_mode`). Every
    # statement is keyed by ids and carries our own filters in its text, so a plan made once
    # per connection is as good as one made per execution, and planning the larger ones cost
    # more than running them. "auto" is PostgreSQL's default (bench/README.md, "Twelfth
    # pass: plans made once").
    database_plan_cache_mode: Literal["auto", "force_generic_plan", "force_custom_plan"] = (
        "force_generic_plan"
    )
    readiness_timeout: float = Field(default=2.0, gt=0)
    database_echo: bool = False
    migrate_on_start: bool = True

    # The HTTP edge (gateway/http_limits.py): request bodies past this many bytes are 413;
    # a connection whose request headers take longer is closed; an idle keep-alive one too.
    max_body_bytes: int = Field(default=2_097_152, ge=1)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    keep_alive_timeout_seconds: int = Field(default=5, ge=1)

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    # uvicorn's line per request (client, method, path, status; with the request id in JSON).
    access_log: bool = False

    # Identity-provider JWTs: verified against a JWKS URL (RS256/ES256) or an HS256 secret.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks_url: str | None = None
    jwt_hs256_secret: SecretStr | None = None
    jwt_leeway_seconds: int = 30

    # Verified API keys kept in each process for this many seconds (0: every request reads its
    # key), at most `auth_cache_max_entries` of them; a revoked key, a deleted user, a changed
    # one leave every process's cache at the commit (PostgreSQL LISTEN/NOTIFY), and no process
    # serves from its cache while it is not listening. `auth_cache_verify` reads the key on
    # every hit too and fails the request when the two differ (tests, canaries).
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    auth_cache_max_entries: int = Field(default=10_000, ge=1)
    auth_cache_verify: bool = False

    # Service-to-service token for usage ingestion (never a user key).
    service_token: SecretStr | None = None

    payments_provider: Literal["sandbox", "stripe"] = "sandbox"
    allow_sandbox_in_production: bool = False
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None
    credits_per_cent: int = 10_000
    checkout_min_cents: int = 500
    checkout_max_cents: int = 1_000_000

    max_page_size: int = 100
    default_page_size: int = 50
    # What one GraphQL document may cost, checked before validation (schema/limits.py).
    graphql_max_length: int = Field(default=65_536, ge=1)
    graphql_max_tokens: int = Field(default=3_000, ge=1)
    graphql_max_depth: int = Field(default=15, ge=1)
    graphql_max_aliases: int = Field(default=100, ge=0)
    graphql_max_cost: int = Field(default=50_000, ge=1)
    # Query operations run on compiled plans (schema/engine/); `standard` uses graphql-core's
    # executor only; `verify` runs both and fails a query whose results differ (tests, canaries).
    graphql_executor: Literal["compiled", "standard", "verify"] = "compiled"
    # The compiled executor has PostgreSQL write a node's declared connections (`Member.usages`)
    # inside the nodes' JSON, in their page's statement; `off` reads them as objects, one
    # statement per level (`graphql_executor=verify` compares either with the standard path).
    graphql_nested_pages: Literal["on", "off"] = "on"
    # An organization's usage summary and metrics read the daily roll-ups for whole UTC days
    # (raw rows for the partial days at the edges); `raw` sums usage rows only; `verify` does
    # both and fails a read whose answers differ (tests, canaries).
    usage_aggregation: Literal["rollups", "raw", "verify"] = "rollups"
    # Plain reads sent in one event-loop turn (a query level's sibling fields) go to PostgreSQL
    # as one statement (gateway/db/coalesce.py); `off` sends each alone; `verify` sends both
    # and fails a request whose answers differ (tests).
    read_coalescing: Literal["on", "off", "verify"] = "on"
    # The compiled executor starts the reads of an object found by id (`organization(id:)`,
    # `node(id:)`) that need only its id beside the caller's membership, so that with
    # coalesced reads they go in its statement (schema/declare.py `reads_ahead`); a field
    # shows them only after deciding access as always. `off` reads each after its parent;
    # `verify` also fails a field whose read ahead did not serve it (tests).
    read_ahead: Literal["on", "off", "verify"] = "on"
    # A read ahead whose key depends on the caller's role (a members page showing usage) is
    # chosen by the role the caller last had there in this process, of at most this many
    # (organization, user) pairs (`gateway/services.RolesSeen`); a hint, never a decision.
    # A caller not seen as a member there gets no such read ahead. 0: none kept.
    read_ahead_roles_seen: int = Field(default=10_000, ge=0, le=1_000_000)
    # Unset: on, except in production (an anonymous caller learns nothing of the schema).
    graphiql: bool | None = None
    graphql_introspection: bool | None = None
    graphql_suggestions: bool | None = None
    # Automatic persisted queries (Apollo's protocol): documents by sha256, least recently
    # used first out in each process, and in Redis (with this lifetime) when configured.
    graphql_persisted_queries: bool = True
    graphql_persisted_queries_max_entries: int = Field(default=5_000, ge=1)
    graphql_persisted_queries_max_characters: int = Field(default=8_388_608, ge=1)
    graphql_persisted_queries_ttl_seconds: int = Field(default=604_800, ge=1)
    # A manifest of trusted documents ({id: document}, e.g. graphql-codegen's persisted
    # documents); with `trusted_documents_only` no other document runs (production).
    trusted_documents: str | None = None
    trusted_documents_only: bool = False
    invite_ttl_hours: int = 168
    # Promotions (resolvers/promotions.py): how long one runs when its creator gives no expiry
    # (its credits expire with it), and the most micro-credits one may give (1,000 USD).
    promotion_default_days: int = Field(default=90, ge=1, le=3650)
    promotion_max_credits: int = Field(default=1_000_000_000, ge=1, le=2**62)
    # Seconds between the sweeps that expire promotional credits past due (in every `gateway
    # serve` process; 0 = off, leaving it to balance reads and `gateway promotions expire`).
    promotion_sweep_seconds: float = Field(default=300.0, ge=0)
    max_invites_per_request: int = 50

    # Invite e-mails (gateway/mail/): queued in the outbox with the invite, sent by a worker.
    # Unset SMTP: mails are written to the log instead (development). `smtp://` uses STARTTLS
    # when the server offers it, `smtp+starttls://` requires it, `smtps://` is TLS from the start.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from: str = "Account gateway <no-reply@localhost>"
    # Where people open the accept link: `<public_url>/invites/accept?token=…`.
    public_url: str = "http://127.0.0.1:8000"
    # Run the delivery worker inside `gateway serve`; false when `gateway mail-worker` runs apart.
    mail_worker_in_serve: bool = True
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    mail_batch_size: int = Field(default=20, ge=1, le=1000)
    # A failed attempt waits base * 2^(attempts-1) seconds, at most the maximum, before the
    # next; after `mail_max_attempts` the mail is marked failed and logged.
    mail_max_attempts: int = Field(default=8, ge=1, le=100)
    mail_retry_base_seconds: float = Field(default=30.0, ge=0)
    mail_retry_max_seconds: float = Field(default=3600.0, ge=0)

    # Bearer token that /metrics asks for; unset: /metrics is open, except in production
    # where it is not served at all.
    metrics_token: SecretStr | None = None
    # GraphQL operation names that label request metrics, per process: the first this many
    # seen; anonymous operations, invalid ones and any further names share the label `other`.
    metrics_max_operations: int = Field(default=100, ge=0, le=10_000)
    # Traces go to this OTLP/HTTP collector (OpenTelemetry's own variable, no GATEWAY_ prefix);
    # unset, nothing is traced and no instrumentation is installed.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )

    redis_url: str | None = None
    rate_limit_per_minute: int = 0
    # Requests per minute per client address without a valid token (anonymous, or refused):
    # counted in Redis when configured, else in each process.
    rate_limit_anonymous_per_minute: int = 60

    # Inference providers' keys handed to organization members' clients: a JSON object
    # mapping provider name to key, e.g. {"litellm": "sk-..."}.
    provider_api_keys: SecretStr = SecretStr("{}")

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(
                f"{scheme or 'this'} databases are not supported; use SQLite "
                "(sqlite:///path/to/file.db) or PostgreSQL (postgresql://user@host/db)"
            )
        return value

    @field_validator("provider_api_keys")
    @classmethod
    def _provider_keys_are_an_object(cls, value: SecretStr) -> SecretStr:
        try:
            parsed = json.loads(value.get_secret_value() or "{}")
        except ValueError as exc:
            raise ValueError("GATEWAY_PROVIDER_API_KEYS must be a JSON object") from exc
        if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
            raise ValueError("GATEWAY_PROVIDER_API_KEYS must map provider names to string keys")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_is_one_we_speak(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parsed = urlsplit(value.get_secret_value())
        if parsed.scheme not in SMTP_SCHEMES or not parsed.hostname:
            raise ValueError(
                "GATEWAY_SMTP_URL must be smtp://, smtp+starttls:// or smtps://[user:pass@]host[:port]"
            )
        return value

    @field_validator("mail_from", "public_url")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must be one line of text")
        return value.strip()

    def exploration(self, setting: bool | None) -> bool:
        """A schema-exploration setting (GraphiQL, introspection, suggestions): as set, or on
        everywhere but production."""
        return setting if setting is not None else self.environment != "production"

    def provider_api_key_map(self) -> dict[str, str]:
        parsed: dict[str, str] = json.loads(self.provider_api_keys.get_secret_value() or "{}")
        return parsed

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if (
            self.environment == "production"
            and self.payments_provider == "sandbox"
            and not self.allow_sandbox_in_production
        ):
            raise ValueError(
                "GATEWAY_PAYMENTS_PROVIDER=sandbox is refused in production; "
                "set it to stripe or GATEWAY_ALLOW_SANDBOX_IN_PRODUCTION=true"
            )
        if self.trusted_documents_only and not self.trusted_documents:
            raise ValueError(
                "GATEWAY_TRUSTED_DOCUMENTS_ONLY=true needs GATEWAY_TRUSTED_DOCUMENTS "
                "(the manifest's path)"
            )
        if self.payments_provider == "stripe" and self.stripe_api_key is None:
            raise ValueError("GATEWAY_PAYMENTS_PROVIDER=stripe needs GATEWAY_STRIPE_API_KEY")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
