"""The optional Telegram staff group (``telegram.staff_group_id``, a forum supergroup): one topic per handoff.

* A sync loop opens a forum topic for every open handoff (a header with a link to the console and the
  last lines of the conversation), mirrors what the resident writes next (and replies staff send from
  the web console) into it, and closes the topic when the handoff closes, whoever closed it. Where it
  got to is stored (``staff_group_topics.mirrored_to``), so a restart neither loses nor repeats lines.
  With several workers only the scheduler's leader runs the loop (one topic per handoff).
* A message written in a topic by a group member linked to a console account (``pontibot staff
  link-telegram USER TELEGRAM_ID``) reaches the resident through :meth:`StaffDesk.reply` (the same
  service, audit line and idempotency as the console: one per Telegram update); ``/selesai [note]``
  closes the handoff (:meth:`StaffDesk.close`: the resident is thanked and asked for a rating).
  Messages of unknown members are ignored and logged (masked id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from bot.channels.base import SendFailed, StaffGroupChannel, StaffGroupUpdate
from bot.privacy import mask_id, mask_name, mask_text, neutralise_bidi
from bot.runtime import Runtime
from bot.staff.auth import Principal, principal_for
from bot.staff.handoffs import StaffActionError, StaffDesk
from flows.messages import Channel
from storage import staff_group_repository as staff_group_repo
from storage import staff_repository as staff_repo
from storage.models import Message
from storage.staff_models import Handoff, StaffGroupTopic

logger = logging.getLogger(__name__)

SYNC_SECONDS = 1.0
HISTORY_LINES = 8
CLOSE_COMMAND = re.compile(r"^/selesai(?:@\w+)?(?:\s+(?P<note>.*))?$", re.IGNORECASE | re.DOTALL)
REASONS = {"requested": "Diminta warga", "fallback": "Bot tidak paham", "emergency": "DARURAT"}
CHANNELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Web chat", "console": "Konsol"}


class StaffGroupBridge:
    """Keeps the staff group's topics in step with handoffs, and turns topic messages into staff actions."""

    def __init__(
        self, rt: Runtime, channel: StaffGroupChannel, chat_id: str, *, interval: float = SYNC_SECONDS
    ) -> None:
        self.rt = rt
        self.channel = channel
        self.chat_id = chat_id
        self.interval = interval
        self.desk = StaffDesk(rt)
        self._wake = asyncio.Event()

    def install(self) -> None:
        """Receive the staff group's updates and start the sync loop."""
        self.channel.on_staff_group = self.on_update
        self.rt.spawn(self.run(), name="telegram-staff-group")

    def wake(self) -> None:
        """Sync now (a topic message closed a handoff)."""
        self._wake.set()

    # -- the sync loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync every ``interval`` seconds while this process leads; a failed round is logged."""
        while True:
            self._wake.clear()
            try:
                if self._leads():
                    await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("staff group: sync failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    def _leads(self) -> bool:
        scheduler = self.rt.notifications
        if scheduler is None or not self.rt.settings.notifications.enabled:
            return True
        return scheduler.leading.is_set()

    async def sync_once(self) -> None:
        """Open topics for new handoffs, mirror new lines, close topics of closed handoffs."""
        async with self.rt.db.session() as session:
            fresh = list(await staff_group_repo.handoffs_without_topic(session))
        for handoff in fresh:
            await self._open_topic(handoff)
        async with self.rt.db.session() as session:
            live = list(await staff_group_repo.live_topics(session))
        for topic, handoff in live:
            await self._mirror(topic, handoff)
            if handoff.closed_at is not None:
                await self._close_topic(topic, handoff)

    async def _open_topic(self, handoff: Handoff) -> None:
        async with self.rt.db.session() as session:
            rows = await staff_repo.handoff_rows(session, handoff_id=handoff.id)
            if not rows:
                return
            row = rows[0]
            lines = await staff_group_repo.messages_after(
                session, conversation_id=row.conversation.id, after_id=0, limit=10_000
            )
        channel = CHANNELS.get(row.resident.channel, row.resident.channel)
        who = mask_name(row.resident.display_name or "") or f"Warga {mask_id(row.resident.external_id)}"
        name = f"#{handoff.id} {REASONS.get(handoff.reason, handoff.reason)} · {who} ({channel})"
        try:
            thread_id = await self.channel.create_forum_topic(self.chat_id, name)
        except SendFailed:
            logger.warning("staff group: no topic for handoff %s (will retry)", handoff.id, exc_info=True)
            return
        recent = [line for line in lines if _shown(line)][-HISTORY_LINES:]
        header = [
            f"🆕 Percakapan #{handoff.id} — {REASONS.get(handoff.reason, handoff.reason)}, lewat {channel}.",
            f"Konsol: {self.rt.settings.server.public_url.rstrip('/')}/staff/handoffs/{handoff.id}",
            "Balas di topik ini untuk menjawab warga; /selesai [catatan] untuk menutup.",
        ]
        if recent:
            header += ["", "Percakapan terakhir:", *(_render(line) for line in recent)]
        try:
            await self.channel.send_to_topic(self.chat_id, thread_id, "\n".join(header))
        except SendFailed:
            logger.warning("staff group: header of topic %s not posted", thread_id, exc_info=True)
        async with self.rt.db.session() as session:
            await staff_group_repo.add_topic(
                session,
                handoff_id=handoff.id,
                chat_id=self.chat_id,
                thread_id=thread_id,
                mirrored_to=lines[-1].id if lines else 0,
                now=self.desk.now(),
            )
        logger.info("staff group: topic %s opened for handoff %s", thread_id, handoff.id)

    async def _mirror(self, topic: StaffGroupTopic, handoff: Handoff) -> None:
        async with self.rt.db.session() as session:
            lines = await staff_group_repo.messages_after(
                session, conversation_id=handoff.conversation_id, after_id=topic.mirrored_to
            )
        last = topic.mirrored_to
        for line in lines:
            if _shown(line) and not _from_topic(line):
                try:
                    await self.channel.send_to_topic(topic.chat_id, topic.thread_id, _render(line))
                except SendFailed:
                    logger.warning(
                        "staff group: mirroring to topic %s failed", topic.thread_id, exc_info=True
                    )
                    break
            last = line.id
        if last != topic.mirrored_to:
            async with self.rt.db.session() as session:
                stored = await staff_group_repo.topic_of_handoff(session, handoff_id=topic.handoff_id)
                if stored is not None:
                    stored.mirrored_to = last

    async def _close_topic(self, topic: StaffGroupTopic, handoff: Handoff) -> None:
        by = "warga" if handoff.closed_by == "resident" else (handoff.closed_by or "petugas")
        try:
            await self.channel.send_to_topic(
                topic.chat_id, topic.thread_id, f"✅ Percakapan #{handoff.id} ditutup oleh {by}."
            )
            await self.channel.close_forum_topic(topic.chat_id, topic.thread_id)
        except SendFailed:
            logger.warning("staff group: closing topic %s failed", topic.thread_id, exc_info=True)
        async with self.rt.db.session() as session:
            stored = await staff_group_repo.topic_of_handoff(session, handoff_id=topic.handoff_id)
            if stored is not None:
                stored.closed_at = self.desk.now()

    # -- messages from the group ---------------------------------------------------------------

    async def on_update(self, update: StaffGroupUpdate) -> None:
        """A message in the staff group: a reply to the resident, ``/selesai``, or ignored."""
        if update.chat_id != self.chat_id or update.thread_id is None or not (update.text or "").strip():
            return
        if update.user_id is None:
            return
        async with self.rt.db.session() as session:
            user = await staff_group_repo.staff_by_telegram(session, telegram_user_id=update.user_id)
            topic = await staff_group_repo.topic_by_thread(
                session, chat_id=update.chat_id, thread_id=update.thread_id
            )
            principal = principal_for(user) if user is not None else None
        if principal is None:
            logger.warning(
                "staff group: message from unlinked member %s ignored (pontibot staff link-telegram)",
                mask_id(update.user_id),
            )
            return
        if topic is None:
            logger.info(
                "staff group: message in topic %s, which belongs to no handoff; ignored", update.thread_id
            )
            return
        await self._act(principal, topic, update)

    async def _act(self, principal: Principal, topic: StaffGroupTopic, update: StaffGroupUpdate) -> None:
        text = (update.text or "").strip()
        command = CLOSE_COMMAND.match(text)
        try:
            if command is not None:
                await self.desk.close(topic.handoff_id, principal, (command.group("note") or "").strip())
                self.wake()
            else:
                await self.desk.reply(
                    topic.handoff_id,
                    principal,
                    text,
                    idempotency_key=f"tg-{update.update_id}",
                    via=Channel.TELEGRAM.value,
                )
        except StaffActionError as exc:
            try:
                await self.channel.send_to_topic(topic.chat_id, topic.thread_id, f"⚠️ {exc}")
            except SendFailed:
                logger.warning("staff group: could not report a refused action", exc_info=True)


def _shown(line: Message) -> bool:
    """Lines worth showing staff in the topic: the resident's messages and staff replies."""
    return line.direction == "in" or line.kind == "staff"


def _from_topic(line: Message) -> bool:
    return line.kind == "staff" and (line.data or {}).get("via") == Channel.TELEGRAM.value


def _render(line: Message) -> str:
    if line.direction == "in":
        text = line.text or line.payload or f"[{(line.data or {}).get('kind', 'pesan')}]"
        return f"👤 Warga: {mask_text(text)}"
    staff = (line.data or {}).get("staff") or "petugas"
    return neutralise_bidi(f"🧑‍💼 {staff} (konsol): {line.text or ''}")
