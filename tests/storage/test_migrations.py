"""Migrations are the only way the schema is made: they run both ways and match the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import downgrade, schema_is_current, upgrade
from storage.schema import metadata


def _diff(database_url: str) -> list[object]:
    async def run() -> list[object]:
        db = Database(database_url)
        try:
            async with db.engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
                )
        finally:
            await db.dispose()

    return asyncio.run(run())


def _tables(database_url: str) -> set[str]:
    async def run() -> set[str]:
        db = Database(database_url)
        try:
            async with db.engine.connect() as conn:
                return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    assert _diff(database_url) == []


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    downgrade(database_url, "base")
    assert _tables(database_url) <= {"alembic_version"}

    upgrade(database_url)
    assert {"residents", "conversations", "messages", "processed_messages", "outbox"} <= _tables(database_url)


async def test_schema_is_current_after_upgrade(db: Database) -> None:
    assert await schema_is_current(db.engine) is True
