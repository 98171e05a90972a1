"""Settings: safe defaults, refusals that protect production, structured logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
from pydantic import ValidationError

from gateway.logging import JsonFormatter, request_id_var
from gateway.settings import Settings


def test_defaults_are_the_embedded_sqlite_and_sandbox() -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite")
    assert settings.payments_provider == "sandbox"


def test_production_refuses_sandbox_payments() -> None:
    with pytest.raises(ValidationError, match="sandbox is refused in production"):
        Settings(_env_file=None, environment="production")


def test_production_may_allow_sandbox_explicitly() -> None:
    settings = Settings(_env_file=None, environment="production", allow_sandbox_in_production=True)
    assert settings.payments_provider == "sandbox"


def test_stripe_needs_an_api_key() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_STRIPE_API_KEY"):
        Settings(_env_file=None, payments_provider="stripe")


def test_settings_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9123")
    monkeypatch.setenv("GATEWAY_MAX_PAGE_SIZE", "42")
    settings = Settings(_env_file=None)
    assert (settings.port, settings.max_page_size) == (9123, 42)


def test_json_logs_are_one_object_per_line_with_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.json")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-1")
    try:
        logger.warning("charged %s", "acc-1", extra={"amount_cents": 500})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "charged acc-1"
    assert line["request_id"] == "req-1"
    assert line["amount_cents"] == 500
    assert line["level"] == "warning"


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.com", "smtp://", "mail.example.com:587"],
    ids=["other-scheme", "no-host", "no-scheme"],
)
def test_smtp_url_must_be_one_the_worker_speaks(url: str) -> None:
    with pytest.raises(ValidationError, match="GATEWAY_SMTP_URL must be smtp://"):
        Settings(_env_file=None, smtp_url=url)


@pytest.mark.parametrize("field", ["mail_from", "public_url"])
def test_mail_headers_and_links_refuse_line_breaks(field: str) -> None:
    with pytest.raises(ValidationError, match="must be one line of text"):
        Settings(_env_file=None, **{field: "x@example.com\r\nBcc: evil@example.net"})
