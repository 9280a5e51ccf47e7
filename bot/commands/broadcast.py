"""``pontibot broadcast``: queue an announcement through the outbox and watch it being delivered."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bot.commands import ConfigOption, open_database, settings_from
from bot.notifications.broadcast import BroadcastError, BroadcastProgress, broadcast_progress, queue_broadcast
from bot.settings import Settings
from flows.texts import Texts
from storage.db import Database

NAME = "broadcast"
app = typer.Typer(
    name=NAME,
    help="Send an announcement to residents through the outbox (with a delivery progress bar).",
    add_completion=False,
)
_err = Console(stderr=True)
POLL_SECONDS = 0.25


@app.callback(invoke_without_command=True)
def broadcast(
    text_file: Annotated[
        Path, typer.Option("--text-file", exists=True, dir_okay=False, help="The announcement (UTF-8 text).")
    ],
    segment: Annotated[
        str, typer.Option("--segment", help="subscribers (of announcements) or all (everyone reachable).")
    ] = "subscribers",
    lang: Annotated[str | None, typer.Option("--lang", help="Only residents who speak id or en.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Show delivery progress until done.")] = True,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600.0,
    config: ConfigOption = None,
) -> None:
    """Queue the announcement in TEXT_FILE for a segment of residents and show its delivery.

    A running pontibot server delivers it; when none runs, this command delivers it itself.
    """
    settings = settings_from(config)
    text = text_file.read_text(encoding="utf-8")
    actor = f"cli:{getpass.getuser()}"
    try:
        asyncio.run(
            _run(
                settings, text=text, segment=segment, lang=lang, actor=actor, wait=wait, watch_seconds=timeout
            )
        )
    except BroadcastError as exc:
        _err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


async def _run(
    settings: Settings,
    *,
    text: str,
    segment: str,
    lang: str | None,
    actor: str,
    wait: bool,
    watch_seconds: float,
) -> None:
    async def queue_and_watch(db: Database) -> BroadcastProgress | None:
        queued = await queue_broadcast(
            db, Texts.load(), text=text, segment=segment, language=lang, actor=actor
        )
        _err.print(f"broadcast {queued.id}: {queued.recipients} recipients ({segment}, {lang or 'id+en'})")
        if not wait or queued.recipients == 0:
            return None
        return await _watch(settings, db, queued.id, queued.recipients, watch_seconds)

    progress = await open_database(settings, queue_and_watch)
    if progress is None:
        return
    _err.print(
        f"sent {progress.sent}, skipped {progress.skipped}, failed {progress.dead}, "
        f"waiting {progress.waiting}"
    )
    if progress.waiting:
        raise typer.Exit(1)


async def _watch(
    settings: Settings, db: Database, broadcast_id: int, total: int, watch_seconds: float
) -> BroadcastProgress:
    from bot.notifications.leadership import leadership_for
    from bot.notifications.scheduler import NotificationScheduler
    from bot.wiring import build_runtime, close_runtime, notification_scheduler

    leadership = leadership_for(db)
    runtime = None
    scheduler: NotificationScheduler | None = None
    if await leadership.acquire():
        # No server leads this database: deliver from here (the server would do the same).
        await leadership.release()
        _err.print("no pontibot server is running: delivering from this command")
        runtime = await build_runtime(settings)
        scheduler = notification_scheduler(runtime)
        await scheduler.start()
    columns = (
        TextColumn("[bold]broadcast {task.fields[id]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("sent {task.fields[sent]} · skipped {task.fields[skipped]} · failed {task.fields[dead]}"),
        TimeElapsedColumn(),
    )
    deadline = asyncio.get_running_loop().time() + watch_seconds
    try:
        with Progress(*columns, console=_err) as bar:
            task = bar.add_task("delivery", total=total, id=broadcast_id, sent=0, skipped=0, dead=0)
            while True:
                progress = await broadcast_progress(db, broadcast_id)
                bar.update(
                    task,
                    completed=progress.done,
                    sent=progress.sent,
                    skipped=progress.skipped,
                    dead=progress.dead,
                )
                if progress.finished or asyncio.get_running_loop().time() > deadline:
                    return progress
                await asyncio.sleep(POLL_SECONDS)
    finally:
        if scheduler is not None:
            await scheduler.stop()
        if runtime is not None:
            await close_runtime(runtime)
