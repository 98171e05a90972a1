"""`make test` ends by saying what did not run, why, and the command that runs it all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_without_postgresql_and_redis_says_what_it_skipped_and_how_to_run_it() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GATEWAY_TEST_DATABASE_URL", "GATEWAY_TEST_REDIS_URL")
    }
    skipped = (
        "tests/platform/test_cli_first_contact.py::test_a_missing_postgresql_database_is_one_line"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", skipped],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout[result.stdout.index("what did not run") :]
    assert "1 skipped: GATEWAY_TEST_DATABASE_URL not set" in summary
    assert "PostgreSQL: GATEWAY_TEST_DATABASE_URL is not set" in summary
    assert "Redis: GATEWAY_TEST_REDIS_URL is not set" in summary
    assert "GATEWAY_TEST_DATABASE_URL=postgresql://" in summary
