"""First contact with the command line: mistakes in the environment or an unusable database
are one line and a non-zero exit; `--version`, help, stdout export, operator listings."""

from __future__ import annotations

import os
import socket
import sys
import tomllib
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.platform.test_cli import run

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_SCRIPT = Path(sys.executable).with_name("gateway")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture
def migrated(tmp_path: Path) -> Path:
    result = run(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_a_port_that_is_no_number_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", GATEWAY_PORT="abc")
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "error: GATEWAY_PORT='abc': Input should be a valid integer, "
        "unable to parse string as an integer"
    )


@pytest.mark.parametrize(
    ("variable", "value", "words", "secret"),
    [
        ("GATEWAY_DATABASE_URL", "mysql://root:hunter2@db/app", "mysql databases are", "hunter2"),
        ("GATEWAY_PROVIDER_API_KEYS", "sk-hunter2-not-json", "must be a JSON object", "hunter2"),
    ],
)
def test_a_refused_url_or_secret_is_named_in_one_line_but_never_shown(
    tmp_path: Path, variable: str, value: str, words: str, secret: str
) -> None:
    result = run(tmp_path, "migrate", **{variable: value})
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"error: {variable}: ")
    assert words in line
    assert secret not in line


def test_a_trusted_documents_manifest_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-manifest.json"
    result = run(tmp_path, "serve", GATEWAY_TRUSTED_DOCUMENTS=str(missing))
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(
        f"error: GATEWAY_TRUSTED_DOCUMENTS: cannot read {missing}: "
    )


@pytest.mark.skipif(not PG_URL, reason="GATEWAY_TEST_DATABASE_URL not set")
def test_a_missing_postgresql_database_is_one_line(tmp_path: Path) -> None:
    assert PG_URL is not None
    missing = make_url(PG_URL).set(database="gateway_no_such_database")
    url = missing.render_as_string(hide_password=False)
    result = run(tmp_path, "migrate", GATEWAY_DATABASE_URL=url)
    assert result.returncode == 1
    assert 'database "gateway_no_such_database" does not exist' in one_line(result.stderr)


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    # Port 1 on the loopback: nothing listens, the connection is refused at once.
    url = "postgresql://gateway:hunter2@127.0.0.1:1/gateway"
    result = run(tmp_path, "serve", GATEWAY_DATABASE_URL=url)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith("error: cannot use the database postgresql://gateway:***@127.0.0.1:1/")
    assert "hunter2" not in line


def test_a_sqlite_file_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/gateway.db"
    result = run(tmp_path, "migrate", GATEWAY_DATABASE_URL=url)
    assert result.returncode == 1
    assert one_line(result.stderr).endswith(": unable to open database file")


def test_version_is_the_package_version(tmp_path: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gateway {declared}"


def test_serve_help_describes_its_options(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--help")
    assert result.returncode == 0
    assert "--host HOST  address to listen on" in result.stdout
    assert "--port PORT  port to listen on" in result.stdout


def test_export_schema_dash_writes_the_sdl_to_stdout(tmp_path: Path) -> None:
    result = run(tmp_path, "export-schema", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schema.graphql").read_text()
    assert not (tmp_path / "-").exists()


def test_export_schema_to_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "no" / "schema.graphql"
    result = run(tmp_path, "export-schema", str(target))
    assert result.returncode == 1
    assert one_line(result.stderr) == f"error: cannot write {target}: No such file or directory"


def test_first_start_hint_is_a_command_that_works_from_here(migrated: Path) -> None:
    # Run as `make serve` runs it (`.venv/bin/gateway`, not on PATH), on a port already taken
    # so that it stops right after the hint.
    relative = os.path.relpath(GATEWAY_SCRIPT, migrated)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        served = run(migrated, "serve", "--port", port, command=[relative])
    assert served.returncode != 0
    hint = served.stderr.splitlines()[1].split()
    assert hint[0] in (relative, str(GATEWAY_SCRIPT))
    created = run(migrated, *hint[1:3], "first@example.com", command=[hint[0]])
    assert created.returncode == 0, created.stderr
    assert "api key: gwk_" in created.stdout


def test_keys_list_shows_keys_without_their_secrets(migrated: Path) -> None:
    created = run(migrated, "create-user", "--email", "ops@example.com")
    token = created.stdout.split("api key:")[1].split()[0]
    result = run(migrated, "keys", "list")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split()[:3] == ["id", "prefix", "user"]
    assert row.startswith("key-") and "ops@example.com" in row and "first key" in row
    assert token[:12] in row
    assert token not in result.stdout and token[12:] not in result.stdout


def test_keys_revoke_stops_the_key_and_lists_it_as_revoked(migrated: Path) -> None:
    run(migrated, "create-user", "--email", "ops@example.com")
    key_id = run(migrated, "keys", "list").stdout.splitlines()[1].split()[0]
    revoked = run(migrated, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert run(migrated, "keys", "list").stdout.strip().splitlines() == [
        "id  prefix  user  organization  created  last used  expires  state  name"
    ]
    assert "revoked" in run(migrated, "keys", "list", "--revoked").stdout
    again = run(migrated, "keys", "revoke", key_id)
    assert again.returncode == 1
    assert one_line(again.stderr) == f"error: no live API key {key_id}"


def test_users_list_shows_users_newest_first(migrated: Path) -> None:
    run(migrated, "create-user", "--email", "first@example.com", "--name", "First")
    run(migrated, "create-user", "--email", "second@example.com", "--name", "Second")
    lines = run(migrated, "users", "list").stdout.strip().splitlines()
    assert [line.split()[1] for line in lines] == [
        "email",
        "second@example.com",
        "first@example.com",
    ]
    assert lines[1].endswith("active  Second")
