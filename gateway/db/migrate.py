"""Alembic upgrades and revisions driven from code (no alembic.ini needed)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(
    connection: Connection | None = None, migrations_dir: Path = MIGRATIONS_DIR
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync_conn: command.upgrade(alembic_config(sync_conn), revision))


async def new_revision(message: str, migrations_dir: Path = MIGRATIONS_DIR) -> Path:
    """Write the migration that brings the latest one to what `gateway/db/models.py` declares
    (`gateway new-migration`): a scratch SQLite database is upgraded to the head, Alembic
    compares the models with it, and the revision is numbered after the head (`0004`, ...).
    Returns the new file, to be read and edited before it is committed."""
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_async_engine(f"sqlite+aiosqlite:///{scratch}/scratch.db")
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(_revision, message, migrations_dir)
        finally:
            await engine.dispose()


def _revision(connection: Connection, message: str, migrations_dir: Path) -> Path:
    config = alembic_config(connection, migrations_dir)
    command.upgrade(config, "head")
    head = ScriptDirectory.from_config(config).get_current_head()
    number = f"{int(head) + 1:04d}" if head is not None and head.isdigit() else None
    script = command.revision(config, message=message, autogenerate=True, rev_id=number)
    if not isinstance(script, Script):  # one head, one script: a list only with branches
        raise RuntimeError(f"alembic made no single revision: {script!r}")
    return Path(script.path)
