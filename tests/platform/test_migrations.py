"""Alembic owns the schema: migrations must produce exactly the models' tables."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from gateway.db import models  # noqa: F401  (registers the tables)
from tests.conftest import Env


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrations_match_the_models(env: Env) -> None:
    async with env.state.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []
