"""`.env.example` and the README's configuration table name every setting, with its default."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import SecretStr

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^#? ?((?:GATEWAY|OTEL)_[A-Z0-9_]+)=(.*)$")


def example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {m[1]: m[2] for m in map(LINE.match, lines) if m}


def by_variable() -> dict[str, str]:
    """Each setting's environment variable (GATEWAY_<NAME>, or the alias it is read by, as
    OpenTelemetry's own OTEL_EXPORTER_OTLP_ENDPOINT) → the setting's name."""
    found = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        found[alias if isinstance(alias, str) else f"GATEWAY_{name.upper()}"] = name
    return found


def variables() -> set[str]:
    return set(by_variable())


def plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_env_example_names_every_setting_and_nothing_else() -> None:
    assert set(example()) == variables()


def test_env_example_shows_each_settings_default() -> None:
    names = by_variable()
    for variable, shown in example().items():
        name = names[variable]
        default = Settings.model_fields[name].default
        if shown == "":
            assert default is None, variable
            continue
        parsed = Settings.model_validate({name: shown})
        assert plain(getattr(parsed, name)) == plain(default), variable


def test_readme_configuration_table_names_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert sorted(v for v in variables() if f"`{v}`" not in readme) == []
