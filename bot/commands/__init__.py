"""Sub-commands of the ``pontibot`` CLI, one module per command group, and what they share: the
``--config`` option, settings that stop the command with their message, and one database session."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from bot.settings import ConfigError, Settings, load_settings
from storage.db import Database
from storage.migrate import schema_is_current

T = TypeVar("T")
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $PONTIBOT_CONFIG or ./config.yml)."),
]


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """The settings of ``config`` (and the environment); a bad one stops the command (exit 2)."""
    try:
        return load_settings(config, None, **overrides)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


async def open_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` on the database of ``settings`` (exit 1 when its schema is not up to date)."""
    db = Database(settings.database_url)
    try:
        if not await schema_is_current(db.engine):
            err.print("[red]the database schema is not up to date: run `pontibot db upgrade`[/red]")
            raise typer.Exit(1)
        return await work(db)
    finally:
        await db.dispose()


def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """:func:`open_database` from a plain (synchronous) command."""
    return asyncio.run(open_database(settings, work))


def in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the database of ``settings`` (committed when it returns)."""

    async def run(db: Database) -> T:
        async with db.session() as session:
            return await work(session)

    return with_database(settings, run)
