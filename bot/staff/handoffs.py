"""Staff actions on handoffs (take, assign, reply, close), the views the console shows, and the dashboard.

Every action runs in one transaction that also writes its audit line. Staff replies reach the resident
through their own channel: a transcript line of kind "staff" (the web chat events feed) and an outbox
row of kind "staff" with an idempotency key per staff message (Telegram/WhatsApp); for web chat
residents that row is marked delivered at once, since the events feed is the delivery.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation.locks import ConversationKey
from bot.privacy import mask_id, mask_name, mask_text, neutralise_bidi
from bot.runtime import Runtime
from bot.staff.auth import Principal
from bot.staff.handoff_views import (
    Dashboard,
    HandoffDetail,
    HandoffSummary,
    _line,
    _public_slots,
    _shown_name,
    _slot_text,
    _suspicious,
)
from flows.handoff import HandoffState, closing_replies, staff_message_text
from flows.messages import Channel, Reply
from storage import dashboard_repository as dashboard_repo
from storage import repositories as repo
from storage import staff_repository as staff_repo
from storage.db import advisory_xact_lock
from storage.models import OutboxMessage, Resident
from storage.staff_models import Handoff
from storage.types import utcnow

logger = logging.getLogger(__name__)

MAX_REPLY = 4000
MAX_NOTE = 2000
DASHBOARD_DAYS = 14
# Channels whose residents read pushed messages from our own transcript (the events feed).
TRANSCRIPT_DELIVERED = frozenset({Channel.WEBCHAT.value})


class StaffActionError(Exception):
    """A staff action cannot be done; ``status`` is the HTTP status, the message says why (Indonesian)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class StaffDesk:
    """What staff can do with handoffs, each call one transaction with its audit line."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def now(self) -> datetime:
        """The current time (the runtime's injected clock in tests)."""
        clock = self.rt.dispatcher.clock
        return clock() if clock is not None else utcnow()  # type: ignore[no-any-return]

    # -- reading -------------------------------------------------------------------------------

    async def queue(self, *, closed: bool = False) -> list[HandoffSummary]:
        """Open handoffs, urgent first then longest waiting (or the most recently opened, all)."""
        async with self.rt.db.session() as session:
            rows = await staff_repo.handoff_rows(session, open_only=not closed)
            return [self._summary(row) for row in rows]

    async def detail(self, handoff_id: int, principal: Principal, *, reveal: bool = False) -> HandoffDetail:
        """One handoff with its transcript; ``reveal`` shows name, NIK and phone in full (audit-logged)."""
        async with self.rt.db.session() as session:
            row = await self._row(session, handoff_id)
            if reveal:
                if not self.may_reveal(principal, row.handoff):
                    raise StaffActionError(
                        "Hanya admin atau petugas yang menangani yang boleh melihat data lengkap.", 403
                    )
                await self._audit(session, principal, "handoff.reveal", row.handoff)
            lines = await repo.transcript(session, conversation_id=row.conversation.id, limit=1000)
            rating = await staff_repo.rating_of(session, handoff_id=handoff_id)
            show = neutralise_bidi if reveal else mask_text
            context_slots = row.handoff.context.get("slots") if row.handoff.context else None
            slots = {**(context_slots or {}), **_public_slots(row.conversation.slots or {})}
            return HandoffDetail(
                summary=self._summary(row),
                revealed=reveal,
                resident_id=row.resident.external_id if reveal else mask_id(row.resident.external_id),
                display_name=_shown_name(row.resident.display_name, reveal=reveal),
                slots={k: show(_slot_text(v)) for k, v in sorted(slots.items())},
                transcript=tuple(_line(m, show) for m in lines),
                close_note=row.handoff.close_note,
                closed_by=row.handoff.closed_by,
                rating=rating.score if rating else None,
            )

    def may_reveal(self, principal: Principal, handoff: Handoff) -> bool:
        """Admins, and the agent the handoff is assigned to, may see personal data in full."""
        return principal.is_admin or (
            principal.user_id is not None and handoff.assigned_to == principal.user_id
        )

    async def staff_names(self) -> list[str]:
        """User names of active accounts (for the assign menu)."""
        async with self.rt.db.session() as session:
            return [u.username for u in await staff_repo.list_staff_users(session, active_only=True)]

    async def dashboard(self, *, days: int = DASHBOARD_DAYS) -> Dashboard:
        """The dashboard figures of the last ``days`` days (local dates in WIB)."""
        now = self.now().astimezone(self.rt.dispatcher.timezone)
        first_day = now.date() - timedelta(days=days - 1)
        since = datetime.combine(first_day, datetime.min.time(), tzinfo=now.tzinfo)
        async with self.rt.db.session() as session:
            per_day = dict(
                await dashboard_repo.messages_per_day(
                    session, since=since, timezone=self.rt.settings.timezone
                )
            )
            top = await dashboard_repo.top_intents(session, since=since)
            missed, total = await dashboard_repo.fallback_counts(session, since=since)
            open_count = await dashboard_repo.count_open_handoffs(session)
            ratings = await dashboard_repo.rating_distribution(session, since=since)
            breaches = await dashboard_repo.complaint_sla_breaches(session, now=self.now())
        series = tuple(
            (first_day + timedelta(days=i), per_day.get(first_day + timedelta(days=i), 0))
            for i in range(days)
        )
        return Dashboard(
            days=days,
            messages_per_day=series,
            top_intents=tuple(top),
            fallback_rate=missed / total if total else None,
            messages_total=sum(n for _, n in series),
            open_handoffs=open_count,
            ratings=ratings,
            sla_breaches=tuple(breaches),
        )

    async def audit_log(self, *, limit: int = 200, what: str | None = None) -> list[dict[str, Any]]:
        """The newest audit lines."""
        async with self.rt.db.session() as session:
            entries = await staff_repo.audit_entries(session, limit=limit, what=what)
            return [
                {
                    "id": e.id,
                    "who": e.who,
                    "what": e.what,
                    "target": e.target,
                    "details": e.details,
                    "ip": e.ip,
                    "at": e.created_at.isoformat(),
                }
                for e in entries
            ]

    # -- acting --------------------------------------------------------------------------------

    async def take(self, handoff_id: int, principal: Principal, *, ip: str | None = None) -> None:
        """Assign the handoff to the caller (an admin may take it over from someone else)."""
        if principal.user_id is None:
            raise StaffActionError("Token API tidak punya akun; gunakan 'assign' dengan nama petugas.", 400)
        async with self.rt.db.session() as session:
            row = await self._row(session, handoff_id, must_be_open=True)
            current = row.handoff.assigned_to
            if current not in (None, principal.user_id) and not principal.is_admin:
                raise StaffActionError("Percakapan ini sudah ditangani petugas lain.", 409)
            row.handoff.assigned_to = principal.user_id
            await self._audit(session, principal, "handoff.take", row.handoff, ip=ip)

    async def assign(
        self, handoff_id: int, username: str, principal: Principal, *, ip: str | None = None
    ) -> None:
        """Assign the handoff to a named account (admins only; checked by the caller)."""
        async with self.rt.db.session() as session:
            row = await self._row(session, handoff_id, must_be_open=True)
            user = await staff_repo.find_staff_user(session, username=username)
            if user is None or not user.active:
                raise StaffActionError(f"Akun petugas '{username}' tidak ditemukan.", 404)
            row.handoff.assigned_to = user.id
            await self._audit(session, principal, "handoff.assign", row.handoff, {"to": user.username}, ip=ip)

    async def reply(
        self,
        handoff_id: int,
        principal: Principal,
        text: str,
        *,
        idempotency_key: str | None = None,
        ip: str | None = None,
        via: str = "console",
    ) -> int | None:
        """Send a staff message to the resident; returns its transcript id (None when a repeat).

        ``via`` says where staff wrote it (``console`` or ``telegram``: the staff group's topic).
        """
        text = text.strip()
        if not text:
            raise StaffActionError("Balasan kosong.", 422)
        if len(text) > MAX_REPLY:
            raise StaffActionError(f"Balasan terlalu panjang (paling banyak {MAX_REPLY} karakter).", 422)
        key = f"staff:{handoff_id}:{idempotency_key or uuid.uuid4().hex}"
        async with self.rt.db.session() as session:
            row = await self._row(session, handoff_id, must_be_open=True)
            self._check_owner(principal, row.handoff)
            resident = row.resident
            shown = staff_message_text(self.rt.texts, resident.language, staff_name=principal.name, text=text)
            fresh = await repo.enqueue_outbox(
                session, resident=resident, kind="staff", body=Reply(shown).to_dict(), idempotency_key=key
            )
            if not fresh:
                logger.info("staff reply repeated handoff=%s key=%s", handoff_id, key)
                return None
            message = await repo.add_message(
                session,
                conversation_id=row.conversation.id,
                direction="out",
                kind="staff",
                text=shown,
                data={"buttons": [], "staff": principal.username, "outbox_key": key, "via": via},
                created_at=self.now(),
            )
            await self._delivered_if_transcript(session, resident, [key])
            if row.handoff.assigned_to is None and principal.user_id is not None:
                row.handoff.assigned_to = principal.user_id
            if row.handoff.first_reply_at is None:
                row.handoff.first_reply_at = self.now()
            await self._audit(
                session,
                principal,
                "handoff.reply",
                row.handoff,
                {"message_id": message.id, "chars": len(text), "via": via},
                ip=ip,
            )
            return message.id

    async def close(self, handoff_id: int, principal: Principal, note: str, *, ip: str | None = None) -> None:
        """Close the handoff with an internal note; the resident gets thanks and the 1-5 rating question."""
        note = note.strip()[:MAX_NOTE]
        async with self.rt.db.session() as session:
            row = await self._row(session, handoff_id, must_be_open=True)
            self._check_owner(principal, row.handoff)
        # The conversation's state changes: take the same lock a resident's turn takes.
        key = ConversationKey(row.resident.channel, row.resident.external_id)
        async with self.rt.dispatcher.locks.hold(key), self.rt.db.session() as session:
            await advisory_xact_lock(session, key.channel, key.chat_id)
            row = await self._row(session, handoff_id, must_be_open=True)
            now = self.now()
            await staff_repo.close_handoff(
                session,
                handoff=row.handoff,
                conversation=row.conversation,
                closed_by=principal.username,
                now=now,
                note=note or None,
            )
            row.conversation.state = HandoffState.RATING
            row.conversation.version += 1
            replies = closing_replies(self.rt.texts, row.resident.language)
            keys = []
            for index, reply in enumerate(replies):
                outbox_key = f"handoff:{handoff_id}:closed:{index}"
                await repo.enqueue_outbox(
                    session,
                    resident=row.resident,
                    kind="system",
                    body=reply.to_dict(),
                    idempotency_key=outbox_key,
                )
                await repo.add_message(
                    session,
                    conversation_id=row.conversation.id,
                    direction="out",
                    kind="push",
                    text=reply.text,
                    data={**reply.to_dict(), "outbox_key": outbox_key},
                    created_at=now,
                )
                keys.append(outbox_key)
            await self._delivered_if_transcript(session, row.resident, keys)
            await self._audit(session, principal, "handoff.close", row.handoff, {"note": note[:200]}, ip=ip)

    # -- helpers -------------------------------------------------------------------------------

    async def _row(
        self, session: AsyncSession, handoff_id: int, *, must_be_open: bool = False
    ) -> staff_repo.HandoffRow:
        rows = await staff_repo.handoff_rows(session, handoff_id=handoff_id)
        if not rows:
            raise StaffActionError("Percakapan tidak ditemukan.", 404)
        if must_be_open and rows[0].handoff.closed_at is not None:
            raise StaffActionError("Percakapan ini sudah ditutup.", 409)
        return rows[0]

    def _check_owner(self, principal: Principal, handoff: Handoff) -> None:
        if principal.is_admin or handoff.assigned_to in (None, principal.user_id):
            return
        raise StaffActionError(
            "Percakapan ini ditangani petugas lain; minta admin untuk mengalihkannya.", 409
        )

    async def _delivered_if_transcript(
        self, session: AsyncSession, resident: Resident, keys: list[str]
    ) -> None:
        if resident.channel not in TRANSCRIPT_DELIVERED:
            return
        now = self.now()
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key.in_(keys))
            .values(status="sent", delivery_status="delivered", sent_at=now, attempts=1)
        )

    async def _audit(
        self,
        session: AsyncSession,
        principal: Principal,
        what: str,
        handoff: Handoff,
        details: dict[str, Any] | None = None,
        *,
        ip: str | None = None,
    ) -> None:
        await staff_repo.add_audit(
            session,
            who=principal.username,
            staff_user_id=principal.user_id,
            what=what,
            target=f"handoff:{handoff.id}",
            details=details,
            ip=ip,
            now=self.now(),
        )

    def _summary(self, row: staff_repo.HandoffRow) -> HandoffSummary:
        handoff = row.handoff
        end = handoff.first_reply_at or handoff.closed_at or self.now()
        return HandoffSummary(
            id=handoff.id,
            reason=handoff.reason,
            urgent=handoff.urgent,
            channel=row.resident.channel,
            resident=mask_name(row.resident.display_name or "")
            or f"Warga {mask_id(row.resident.external_id)}",
            language=row.resident.language,
            opened_at=handoff.opened_at,
            waiting_minutes=max(0, int((end - handoff.opened_at).total_seconds() // 60)),
            assigned_to=row.assignee.username if row.assignee else None,
            last_message=mask_text(row.last_inbound_text)[:160] if row.last_inbound_text else None,
            last_message_at=row.last_inbound_at,
            answered=handoff.first_reply_at is not None,
            closed_at=handoff.closed_at,
            suspicious=_suspicious(handoff),
        )
