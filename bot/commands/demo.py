"""``pontibot demo``: the Car Free Day booth tools — list the demo permits, advance one to its next stage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bot.settings import ConfigError, Settings, load_settings
from integrations.base import IntegrationError, Permit, PermitStage
from integrations.demo_permits import DemoPermitBackend, next_stage
from storage.db import Database
from storage.migrate import schema_is_current

app = typer.Typer(
    name="demo",
    help="Car Free Day booth: demo permits to try, and moving one on (which notifies its subscribers).",
    no_args_is_help=True,
    add_completion=False,
)
_err = Console(stderr=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (default: $PONTIBOT_CONFIG or ./config.yml)."),
]


def _settings(config: Path | None) -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    if settings.permits.backend != "demo":
        _err.print("[red]permits.backend is not demo: there are no demo permits to show or advance[/red]")
        raise typer.Exit(2)
    return settings


def _with_demo(settings: Settings, work: Callable[[DemoPermitBackend], Awaitable[T]]) -> T:
    async def run() -> T:
        db = Database(settings.database_url)
        try:
            if not await schema_is_current(db.engine):
                _err.print("[red]the database schema is not up to date: run `pontibot db upgrade`[/red]")
                raise typer.Exit(1)
            backend = DemoPermitBackend(db, seed_path=settings.permits.demo_seed)
            await backend.seed()
            return await work(backend)
        finally:
            await db.dispose()

    return asyncio.run(run())


def permit_json(permit: Permit) -> dict[str, Any]:
    """One permit as the JSON ``demo permits --json`` prints."""
    upcoming = next_stage(permit.permit_type, permit.stage)
    return {
        "number": permit.number,
        "type": permit.permit_type,
        "stage": permit.stage.value,
        "next_stage": upcoming.value if upcoming else None,
        "updated_at": permit.updated_at.isoformat(),
        "applicant": permit.applicant,
        "office": permit.office,
        "note": permit.note,
    }


@app.command("permits")
def permits(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array instead of a table.")] = False,
) -> None:
    """List the demo permit applications (numbers to try at the booth)."""
    settings = _settings(config)
    listed = _with_demo(settings, lambda backend: backend.all())
    if as_json:
        typer.echo(json.dumps([permit_json(p) for p in listed], ensure_ascii=False, indent=2))
        return
    table = Table(title="Demo permits / izin contoh")
    for column in ("number", "type", "stage", "next"):
        table.add_column(column, no_wrap=True)
    table.add_column("note", ratio=1)
    for permit in listed:
        upcoming = next_stage(permit.permit_type, permit.stage)
        table.add_row(
            permit.number,
            permit.permit_type,
            permit.stage.value,
            upcoming.value if upcoming else "-",
            permit.note or "",
        )
    Console().print(table)


@app.command("advance")
def advance(
    number: Annotated[str, typer.Argument(help="Permit number, e.g. PBG-2026-00123.")],
    to: Annotated[
        PermitStage | None, typer.Option("--to", help="Stage to move to (default: the next one).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="The office's note for the new stage.")] = None,
    config: ConfigOption = None,
) -> None:
    """Move a demo permit to its next stage (or --to STAGE); its subscribers get notified."""
    settings = _settings(config)

    async def move(backend: DemoPermitBackend) -> tuple[Permit | None, Permit]:
        before = await backend.get(number)
        return before, await backend.advance(number, to, note=note)

    try:
        before, after = _with_demo(settings, move)
    except IntegrationError as exc:
        _err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    previous = before.stage.value if before else "?"
    typer.echo(f"{after.number}: {previous} -> {after.stage.value}")
