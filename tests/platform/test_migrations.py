"""Alembic owns the schema: migrations must produce exactly the models' tables."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, String, Table
from sqlmodel import SQLModel

from gateway.db import models  # noqa: F401  (registers the tables)
from gateway.db.migrate import MIGRATIONS_DIR, alembic_config, new_revision
from tests.conftest import Env


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrations_match_the_models(env: Env) -> None:
    async with env.state.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


def _copy_of_migrations(tmp_path: Path) -> Path:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


async def test_new_migration_of_unchanged_models_is_empty_and_numbered_after_the_head(
    tmp_path: Path,
) -> None:
    migrations = _copy_of_migrations(tmp_path)
    head = ScriptDirectory.from_config(alembic_config(None, migrations)).get_current_head()
    assert head is not None
    number = f"{int(head) + 1:04d}"
    path = await new_revision("nothing changed", migrations)
    text = path.read_text()
    assert path.name == f"{number}_nothing_changed.py"
    assert f"revision: str = '{number}'" in text
    assert f"down_revision: str | None = '{head}'" in text
    upgrade = text[text.index("def upgrade") : text.index("def downgrade")]
    assert "pass" in upgrade and "op." not in upgrade


async def test_new_migration_writes_what_the_models_add(tmp_path: Path) -> None:
    added = Table("scratch_notes", SQLModel.metadata, Column("id", String(30), primary_key=True))
    try:
        path = await new_revision("scratch notes", _copy_of_migrations(tmp_path))
    finally:
        SQLModel.metadata.remove(added)
    assert "op.create_table('scratch_notes'" in path.read_text()
