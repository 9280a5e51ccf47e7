"""``pontibot demo``: the Car Free Day booth — booth mode, the QR poster, demo permits, reset."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bot.commands import ConfigOption, settings_from, with_database
from bot.settings import Settings
from bot.wiring.backends import demo_permit_backend
from integrations.base import DemoPermits, IntegrationError, Permit, PermitStage
from integrations.permit_stages import next_stage
from storage.db import Database

app = typer.Typer(
    name="demo",
    help=(
        "Car Free Day booth: `pontibot demo` serves booth mode on the LAN; poster, demo permits to try, "
        "moving one on (which notifies its subscribers), reset."
    ),
    add_completion=False,
)
_err = Console(stderr=True)
T = TypeVar("T")


def _settings(config: Path | None, **overrides: Any) -> Settings:
    settings = settings_from(config, **overrides)
    if settings.permits.backend != "demo":
        _err.print("[red]permits.backend is not demo: there are no demo permits to show or advance[/red]")
        raise typer.Exit(2)
    return settings


def _with_demo(settings: Settings, work: Callable[[DemoPermits, Database], Awaitable[T]]) -> T:
    """Run ``work`` on the demo permits (seeded when their table is empty) and the database."""

    async def run(db: Database) -> T:
        backend = demo_permit_backend(settings, db)
        await backend.seed()
        return await work(backend, db)

    return with_database(settings, run)


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
    listed = _with_demo(settings, lambda backend, _db: backend.all())
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

    async def move(backend: DemoPermits, _db: Database) -> tuple[Permit | None, Permit]:
        before = await backend.get(number)
        return before, await backend.advance(number, to, note=note)

    try:
        before, after = _with_demo(settings, move)
    except IntegrationError as exc:
        _err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    previous = before.stage.value if before else "?"
    typer.echo(f"{after.number}: {previous} -> {after.stage.value}")


@app.callback(invoke_without_command=True)
def booth(
    ctx: typer.Context,
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="Port (server.port).")] = None,
    lan_url: Annotated[
        str | None, typer.Option("--url", help="Web chat URL phones use (default: detected LAN address).")
    ] = None,
) -> None:
    """Booth mode: serve on 0.0.0.0 for phones on the booth Wi-Fi, demo data seeded, sessions tagged cfd."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bot.app import create_app
    from bot.booth.poster import booth_webchat_url
    from bot.logs import configure_logging
    from storage.migrate import upgrade

    server: dict[str, Any] = {"host": "0.0.0.0"}  # noqa: S104  (the booth's phones are on the LAN)
    if port:
        server["port"] = port
    demo: dict[str, Any] = {"enabled": True}
    if lan_url:
        demo["lan_url"] = lan_url
    settings = _settings(config, server=server, demo=demo)
    configure_logging(settings.log_level, fmt=settings.logging.format)
    upgrade(settings.database_url)
    app_ = create_app(settings)
    _err.print(
        "Booth mode. Phones on the booth Wi-Fi open the web chat; the booth screen is /booth.\n"
        f"  web chat: {booth_webchat_url(settings)}\n  poster:   pontibot demo poster"
    )
    uvicorn.run(
        app_,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # the app reads X-Forwarded-For itself (server.forwarded_allow_ips)
    )


@app.command("poster")
def poster(
    out: Annotated[Path, typer.Option("--out", help="poster.pdf or poster.png")] = Path("poster.pdf"),
    lan_url: Annotated[
        str | None, typer.Option("--url", help="Web chat base URL on the booth LAN (default: detected).")
    ] = None,
    bot_username: Annotated[
        str | None, typer.Option(help="Telegram bot username (default: telegram.bot_username).")
    ] = None,
    lang: Annotated[str, typer.Option(help="Poster language: id or en.")] = "id",
    config: ConfigOption = None,
) -> None:
    """Print-ready A4 QR poster: Telegram deep link, WhatsApp click-to-chat, LAN web chat, demo permits."""
    from bot.booth.poster import (
        PosterLink,
        booth_webchat_url,
        render_poster,
        save_poster,
        telegram_link,
        whatsapp_link,
    )
    from flows.texts import Texts

    settings = _settings(config, server={"host": "0.0.0.0"}, demo={"lan_url": lan_url} if lan_url else {})  # noqa: S104
    texts = Texts.load()
    links = []
    username = bot_username or settings.telegram.bot_username
    if username:
        links.append(PosterLink(texts.render(lang, "booth.qr_telegram"), telegram_link(username)))
    else:
        _err.print("no Telegram QR: set telegram.bot_username or pass --bot-username")
    if settings.twilio.whatsapp_from:
        links.append(
            PosterLink(texts.render(lang, "booth.qr_whatsapp"), whatsapp_link(settings.twilio.whatsapp_from))
        )
    else:
        _err.print("no WhatsApp QR: set twilio.whatsapp_from")
    web = booth_webchat_url(settings)
    links.append(PosterLink(texts.render(lang, "booth.qr_webchat"), web))
    numbers = [p.number for p in _with_demo(settings, lambda backend, _db: backend.all())]
    try:
        image = render_poster(links, texts=texts, permits=numbers[:6], lang=lang)
        written = save_poster(image, out)
    except ValueError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    typer.echo(f"poster written to {written} ({', '.join(link.url for link in links)})")


@app.command("reset")
def reset(config: ConfigOption = None) -> None:
    """After the event: delete booth visitors' sessions and put the demo permits back to their start."""
    from bot.booth.sessions import clear_demo_sessions

    settings = _settings(config)

    async def work(backend: DemoPermits, db: Database) -> tuple[int, int]:
        sessions = await clear_demo_sessions(db)
        permits = await backend.seed(replace=True)
        return sessions, permits

    sessions, permits = _with_demo(settings, work)
    typer.echo(f"cleared {sessions} demo sessions; {permits} demo permits back to their starting stage")
