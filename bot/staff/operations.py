"""Console operations besides handoffs and complaints: dead letters, demo permits, announcements.

Each action writes its audit line. Advancing a demo permit queues its subscribers' notifications in
the same transaction (as a complaint status change does), so the visitor's phone at the booth gets
the push on the spot, and the poller, finding them told, queues nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.notifications import broadcast, changes
from bot.notifications import dead_letters as dead_letter_queue
from bot.runtime import Runtime
from bot.staff.auth import Principal
from bot.staff.handoffs import StaffActionError, StaffDesk
from integrations.base import BackendRejected, DemoPermits, Permit
from integrations.permit_stages import next_stage
from integrations.units import joined
from storage import outbox as outbox_repo
from storage import staff_repository as staff_repo
from storage.notify_models import Broadcast

logger = logging.getLogger(__name__)

DEAD_PAGE = 50
STAGE_LABELS = {
    "diterima": "Diterima",
    "verifikasi_berkas": "Verifikasi berkas",
    "survei_lapangan": "Survei lapangan",
    "menunggu_pembayaran": "Menunggu pembayaran",
    "disetujui": "Disetujui",
    "ditolak": "Ditolak",
    "selesai": "Selesai",
}
SEGMENT_LABELS = {"subscribers": "Pelanggan pengumuman", "all": "Semua warga yang bisa dihubungi"}


@dataclass(frozen=True, slots=True)
class DemoPermitLine:
    """A demo permit with its stage and the stage a press of the button moves it to."""

    number: str
    permit_type: str
    stage: str
    next_stage: str | None
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "number": self.number,
            "permit_type": self.permit_type,
            "stage": self.stage,
            "next_stage": self.next_stage,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class BroadcastLine:
    """A past announcement with how far its delivery has come."""

    id: int
    text: str
    segment: str
    language: str | None
    actor: str
    created_at: datetime
    progress: broadcast.BroadcastProgress

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        p = self.progress
        return {
            "id": self.id,
            "text": self.text,
            "segment": self.segment,
            "language": self.language,
            "actor": self.actor,
            "created_at": self.created_at.isoformat(),
            "total": p.total,
            "sent": p.sent,
            "skipped": p.skipped,
            "dead": p.dead,
            "waiting": p.waiting,
            "finished": p.finished,
        }


def dead_letter_dict(letter: dead_letter_queue.DeadLetter) -> dict[str, Any]:
    """JSON of a dead letter (chat id masked)."""
    return {
        "id": letter.id,
        "channel": letter.channel,
        "chat": letter.chat,
        "kind": letter.kind,
        "text": letter.text,
        "attempts": letter.attempts,
        "last_error": letter.last_error,
        "created_at": letter.created_at.isoformat(),
    }


class Operations:
    """Dead letters, demo permits and announcements, each change with its audit line."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.desk = StaffDesk(rt)

    # -- dead letters ----------------------------------------------------------------------------

    async def dead_letters(
        self, *, page: int = 1, channel: str | None = None
    ) -> tuple[list[dead_letter_queue.DeadLetter], int]:
        """One page of dead letters (newest first) and how many there are in all."""
        letters = await dead_letter_queue.dead_letters(
            self.rt.db, limit=DEAD_PAGE, offset=(max(1, page) - 1) * DEAD_PAGE, channel=channel or None
        )
        async with self.rt.db.session() as session:
            total = await outbox_repo.count_dead(session)
        return letters, total

    async def requeue(self, outbox_id: int, principal: Principal, *, ip: str | None = None) -> None:
        """Send a dead letter again from scratch and wake the dispatcher."""
        if not await dead_letter_queue.requeue(
            self.rt.db, outbox_id, principal.username, now=self.desk.now()
        ):
            raise StaffActionError("Pesan ini tidak (lagi) ada di daftar gagal kirim.", 404)
        await self._audit(principal, "outbox.requeue", f"outbox:{outbox_id}", {}, ip=ip)
        self.rt.wake_outbox()

    # -- demo permits ----------------------------------------------------------------------------

    @property
    def demo(self) -> DemoPermits | None:
        """The demo permit back end, when ``permits.backend`` is demo."""
        return self.rt.backends.demo_permits

    async def demo_permits(self) -> list[DemoPermitLine]:
        """Every demo permit with its stage and next stage."""
        backend = self._demo()
        permits: Sequence[Permit] = await backend.all()
        return [
            DemoPermitLine(
                number=p.number,
                permit_type=p.permit_type,
                stage=p.stage.value,
                next_stage=(n.value if (n := next_stage(p.permit_type, p.stage)) else None),
                updated_at=p.updated_at,
            )
            for p in permits
        ]

    async def advance(
        self, number: str, principal: Principal, *, ip: str | None = None
    ) -> tuple[Permit, int]:
        """Move a demo permit to its next stage; its subscribers' pushes are queued in the same step."""
        backend = self._demo()
        texts = self.rt.texts
        async with self.rt.db.session() as session:
            with joined(session):
                try:
                    permit = await backend.advance(number.strip().upper(), None)
                except BackendRejected as exc:
                    raise StaffActionError(f"Izin {number} tidak bisa dimajukan: {exc}", 409) from None
                queued = await changes.queue_change(
                    session,
                    topic=changes.PERMIT_TOPIC,
                    ref=permit.number,
                    status=permit.stage.value,
                    render=lambda lang: changes.permit_notice(texts, lang, permit),
                    at=self.desk.now(),
                )
                await staff_repo.add_audit(
                    session,
                    who=principal.username,
                    staff_user_id=principal.user_id,
                    what="demo.advance",
                    target=f"permit:{permit.number}",
                    details={"to": permit.stage.value, "notified": queued},
                    ip=ip,
                    now=self.desk.now(),
                )
        if queued:
            self.rt.wake_outbox()
        logger.info(
            "demo permit %s -> %s by %s (%d notified)",
            permit.number,
            permit.stage,
            principal.username,
            queued,
        )
        return permit, queued

    def _demo(self) -> DemoPermits:
        if self.demo is None:
            raise StaffActionError("Izin demo hanya tersedia bila permits.backend: demo.", 409)
        return self.demo

    # -- announcements ---------------------------------------------------------------------------

    async def broadcast(
        self,
        principal: Principal,
        *,
        text: str,
        segment: str,
        language: str | None,
        urgent: bool = False,
        ip: str | None = None,
    ) -> broadcast.BroadcastQueued:
        """Queue an announcement (admins; checked by the caller) and write the audit line."""
        try:
            queued = await broadcast.announce(
                self.rt.db,
                self.rt.texts,
                wake=self.rt.wake_outbox,
                text=text,
                segment=segment,
                language=language or None,
                actor=principal.username,
                urgent=urgent,
                now=self.desk.now(),
            )
        except broadcast.BroadcastError as exc:
            raise StaffActionError(_broadcast_error(exc, text), 422) from None
        await self._audit(
            principal,
            "broadcast.send",
            f"broadcast:{queued.id}",
            {
                "segment": segment,
                "language": language or "*",
                "recipients": queued.recipients,
                "urgent": urgent,
            },
            ip=ip,
        )
        return queued

    async def broadcasts(self, *, limit: int = 10) -> list[BroadcastLine]:
        """The newest announcements with their progress."""
        async with self.rt.db.session() as session:
            rows = (
                (await session.execute(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)))
                .scalars()
                .all()
            )
        return [await self._line(row) for row in rows]

    async def broadcast_line(self, broadcast_id: int) -> BroadcastLine:
        """One announcement with its progress."""
        async with self.rt.db.session() as session:
            row = await session.get(Broadcast, broadcast_id)
        if row is None:
            raise StaffActionError("Pengumuman tidak ditemukan.", 404)
        return await self._line(row)

    async def _line(self, row: Broadcast) -> BroadcastLine:
        return BroadcastLine(
            id=row.id,
            text=row.text,
            segment=row.segment,
            language=row.language,
            actor=row.actor,
            created_at=row.created_at,
            progress=await broadcast.broadcast_progress(self.rt.db, row.id),
        )

    async def _audit(
        self, principal: Principal, what: str, target: str, details: dict[str, Any], *, ip: str | None
    ) -> None:
        async with self.rt.db.session() as session:
            await staff_repo.add_audit(
                session,
                who=principal.username,
                staff_user_id=principal.user_id,
                what=what,
                target=target,
                details=details,
                ip=ip,
                now=self.desk.now(),
            )


def _broadcast_error(exc: broadcast.BroadcastError, text: str) -> str:
    if not text.strip():
        return "Tulis isi pengumuman."
    if len(text.strip()) > changes.MAX_BROADCAST_CHARS:
        return f"Pengumuman terlalu panjang (paling banyak {changes.MAX_BROADCAST_CHARS} karakter)."
    return f"Pengumuman tidak bisa dikirim: {exc}"
