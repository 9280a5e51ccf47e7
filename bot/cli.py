"""The ``pontibot`` command: run, chat, db, nlu (and the booth, staff and broadcast tools)."""

from __future__ import annotations

import asyncio
import getpass
import importlib
import pkgutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bot.commands import ConfigOption, settings_from
from bot.settings import ConfigError

app = typer.Typer(
    name="pontibot",
    help="Pontibot: asisten layanan warga Kota Pontianak / Pontianak citizen-service chatbot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


@app.command()
def run(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address (server.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (server.port).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (server.workers); more than one needs PostgreSQL.")
    ] = None,
) -> None:
    """Start the server: web chat, staff console, webhooks, scheduler (Telegram/WhatsApp if configured)."""
    import os

    import uvicorn

    from bot.commands.doctor import preflight
    from bot.logs import configure_logging, secret_values
    from bot.metrics import shared_across_workers

    server: dict[str, object] = {}
    if host:
        server["host"] = host
    if port:
        server["port"] = port
    if workers:
        server["workers"] = workers
    settings = settings_from(config, **({"server": server} if server else {}))
    configure_logging(settings.log_level, secrets=secret_values(settings), fmt=settings.logging.format)
    failed = preflight(settings)
    for check in failed:
        console.print(f"[red]{check.line()}[/red]", highlight=False)
    if failed:
        raise typer.Exit(1)
    # Each worker process loads its settings itself (bot.app:create_app_from_env): hand it ours.
    if config is not None:
        os.environ["PONTIBOT_CONFIG"] = str(config.resolve())
    for key, value in server.items():
        os.environ[f"PONTIBOT_SERVER__{key.upper()}"] = str(value)
    count = settings.server.workers
    console.print(
        f"pontibot: starting on http://{settings.server.host}:{settings.server.port}"
        + (f" ({count} workers)" if count > 1 else "")
        + "; /healthz answers at once, /readyz and the web chat once the model is loaded"
    )
    # Workers are spawned (fresh interpreters): they inherit the metrics directory set here.
    with shared_across_workers(count):
        uvicorn.run(
            "bot.app:create_app_from_env",
            factory=True,
            workers=count,
            # A spawned worker re-imports everything (NLU, SQLAlchemy) before it answers the supervisor's
            # ping; on a busy 2-core machine that takes longer than uvicorn's 5 s default.
            timeout_worker_healthcheck=60,
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            proxy_headers=False,  # the app reads X-Forwarded-For itself (server.forwarded_allow_ips)
            server_header=False,
        )


@app.command()
def chat(
    config: ConfigOption = None,
    user: Annotated[str, typer.Option(help="Console user id (keeps your conversation).")] = "",
) -> None:
    """Talk to the bot in this terminal (same engine, console channel). Ctrl-D to quit."""
    from bot.channels.console import ConsoleChannel
    from bot.logs import configure_logging
    from bot.wiring import SchemaOutOfDate, build_runtime, close_runtime

    settings = settings_from(config)
    configure_logging("WARNING")
    channel = ConsoleChannel(user or f"console-{getpass.getuser()}", settings.default_language)

    async def loop() -> None:
        runtime = await build_runtime(settings)
        out = Console()
        try:
            out.print("[dim]Ketik pesan (Ctrl-D untuk keluar) / type a message (Ctrl-D to quit)[/dim]")
            while True:
                try:
                    line = await asyncio.to_thread(input, "> ")
                except EOFError:
                    break
                if not line.strip():
                    continue
                result = await runtime.dispatcher.handle(channel.incoming(line))
                out.print(channel.render(result.replies), highlight=False, markup=False)
        finally:
            await close_runtime(runtime)

    try:
        asyncio.run(loop())
    except (ConfigError, SchemaOutOfDate) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from storage.db import sqlite_path
    from storage.migrate import upgrade

    settings = settings_from(config)
    path = sqlite_path(settings.database_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(settings.database_url, revision)
    except (OSError, ConnectionError) as exc:
        console.print(f"[red]cannot reach the database: {exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"database at {revision}")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (.tar.gz).")],
    config: ConfigOption = None,
) -> None:
    """A consistent backup of the database and the media files (safe while the server runs)."""
    from storage.backup import BackupError, backup

    settings = settings_from(config)
    try:
        summary = backup(settings.database_url, settings.server.media_dir, path)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"backup of the {summary.dialect} database and {summary.media_files} media files: "
        f"{summary.path} ({summary.bytes:,} bytes)"
    )


@db_app.command("restore")
def db_restore(
    path: Annotated[Path, typer.Argument(help="A backup made by `pontibot db backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that holds data.")] = False,
    config: ConfigOption = None,
) -> None:
    """Put a backup's database and media files back (stop the server first)."""
    from storage.backup import BackupError, restore

    settings = settings_from(config)
    try:
        manifest = restore(settings.database_url, settings.server.media_dir, path, force=force)
    except BackupError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"restored the backup of {manifest['created_at']} ({len(manifest['media'])} media files)")  # type: ignore[arg-type]


def _mount_commands() -> None:
    """Mount every ``bot/commands/<name>.py`` that defines a typer ``app`` as ``pontibot <name>``."""
    import bot.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"bot.commands.{info.name}")
        sub_app = getattr(module, "app", None)
        if isinstance(sub_app, typer.Typer):
            app.add_typer(sub_app, name=getattr(module, "NAME", info.name))


_mount_commands()


def main() -> None:
    """Console-script entry point."""
    app()
