"""Starts what a runtime runs in the background and closes everything in the reverse order."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot.booth.sessions import idle_reset_loop
from bot.channels.telegram.channel import TelegramChannel
from bot.notifications.retention import purge_expired
from bot.notifications.scheduler import NotificationScheduler
from bot.runtime import Runtime
from bot.staff.telegram_group import StaffGroupBridge
from bot.tasks import run_every
from flows.messages import Channel
from storage import privacy_repository as privacy_repo

logger = logging.getLogger(__name__)


def notification_scheduler(rt: Runtime) -> NotificationScheduler:
    """The scheduler (leadership, jobs, outbox dispatch) over this runtime's parts."""
    return NotificationScheduler(
        rt.settings,
        db=rt.db,
        texts=rt.texts,
        backends=rt.backends,
        channels=rt.channels,
        spawn=rt.spawn,
        clock=rt.dispatcher.clock,
        metrics=rt.metrics,
    )


async def retention_run(rt: Runtime) -> privacy_repo.Purge:
    """One purge with the runtime's settings and clock."""
    clock = rt.dispatcher.clock
    return await purge_expired(
        rt.db,
        rt.media,
        retention_days=rt.settings.privacy.retention_days,
        media_grace=timedelta(minutes=rt.settings.privacy.media_grace_minutes),
        now=clock() if clock is not None else None,
    )


def start_staff_group(rt: Runtime) -> StaffGroupBridge | None:
    """Wire the staff group when ``telegram.staff_group_id`` is set and Telegram is on."""
    group = rt.settings.telegram.staff_group_id
    channel = rt.channels.get(Channel.TELEGRAM)
    if group is None or not isinstance(channel, TelegramChannel):
        return None
    bridge = StaffGroupBridge(rt, channel, str(group))
    bridge.install()
    logger.info("staff group: handoffs get a topic in the Telegram staff group")
    return bridge


async def start_runtime(rt: Runtime) -> None:
    """Start the scheduler, the retention purge, channels (polling, webhook registration) and loops."""
    scheduler = notification_scheduler(rt)
    rt.notifications = scheduler
    await scheduler.start()
    interval = rt.settings.privacy.retention_interval_minutes * 60.0
    rt.spawn(run_every(interval, lambda: retention_run(rt), name="retention"), name="retention")
    if rt.settings.demo.enabled:
        rt.spawn(
            idle_reset_loop(rt.db, idle_minutes=rt.settings.demo.idle_reset_minutes),
            name="booth-idle-reset",
        )
    for channel in rt.channels.values():
        await channel.start()
    if rt.settings.telegram.staff_group_id is not None:
        start_staff_group(rt)


async def close_runtime(rt: Runtime) -> None:
    """Stop channels and background tasks, then release back ends, parser and database."""
    if rt.notifications is not None:
        await rt.notifications.stop()  # sends in flight finish while the channels are still open
    for channel in rt.channels.values():
        try:
            await channel.stop()
        except Exception:
            logger.exception("channel %s did not stop cleanly", channel.channel)
    await rt.background.cancel_all()
    await rt.backends.aclose()
    await rt.parser.aclose()
    await rt.db.dispose()
    rt.metrics.close()
