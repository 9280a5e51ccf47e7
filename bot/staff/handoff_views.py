"""What the console shows of handoffs: queue rows, a conversation with its transcript, the dashboard."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bot.privacy import mask_name, neutralise_bidi
from flows.handoff import SUSPICIOUS_KEY
from storage.models import Message
from storage.staff_models import Handoff

logger = logging.getLogger(__name__)

# Why a handoff is marked (bot.conversation.client_limits.HandoffFlag), as staff read it.
SUSPICIOUS_LABELS = {
    "urgent_flood": "Banyak permintaan darurat dari satu alamat jaringan dalam waktu singkat; "
    "dimasukkan ke antrean biasa. Periksa dulu apakah benar darurat.",
    "flood": "Banyak permintaan petugas dari satu alamat jaringan dalam waktu singkat.",
}


@dataclass(frozen=True, slots=True)
class HandoffSummary:
    """One line of the queue (personal data masked)."""

    id: int
    reason: str
    urgent: bool
    channel: str
    resident: str
    language: str
    opened_at: datetime
    waiting_minutes: int
    assigned_to: str | None
    last_message: str | None
    last_message_at: datetime | None
    answered: bool
    closed_at: datetime | None = None
    suspicious: str | None = None  # why it is marked (one address opened many): see SUSPICIOUS_LABELS

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "id": self.id,
            "reason": self.reason,
            "urgent": self.urgent,
            "channel": self.channel,
            "resident": self.resident,
            "language": self.language,
            "opened_at": self.opened_at.isoformat(),
            "waiting_minutes": self.waiting_minutes,
            "assigned_to": self.assigned_to,
            "last_message": self.last_message,
            "last_message_at": self.last_message_at.isoformat() if self.last_message_at else None,
            "answered": self.answered,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "suspicious": self.suspicious is not None,
            "suspicious_reason": self.suspicious_reason,
        }

    @property
    def suspicious_reason(self) -> str | None:
        """Why the handoff is marked, for staff (Indonesian), or None."""
        return SUSPICIOUS_LABELS.get(self.suspicious) if self.suspicious else None


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One message of the conversation as staff see it."""

    id: int
    direction: str
    kind: str
    text: str
    at: datetime
    intent: str | None = None
    buttons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "id": self.id,
            "direction": self.direction,
            "kind": self.kind,
            "text": self.text,
            "at": self.at.isoformat(),
            "intent": self.intent,
            "buttons": list(self.buttons),
        }


@dataclass(frozen=True, slots=True)
class HandoffDetail:
    """The conversation view: the handoff, the whole transcript and the collected slots."""

    summary: HandoffSummary
    revealed: bool
    resident_id: str
    display_name: str | None
    slots: dict[str, str]
    transcript: tuple[TranscriptLine, ...]
    close_note: str | None
    closed_by: str | None
    rating: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            **self.summary.to_dict(),
            "revealed": self.revealed,
            "resident_id": self.resident_id,
            "display_name": self.display_name,
            "slots": self.slots,
            "transcript": [line.to_dict() for line in self.transcript],
            "close_note": self.close_note,
            "closed_by": self.closed_by,
            "rating": self.rating,
        }


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Figures of the last days: traffic, what residents ask, misunderstanding, handoffs, satisfaction."""

    days: int
    messages_per_day: tuple[tuple[date, int], ...]
    top_intents: tuple[tuple[str, int], ...]
    fallback_rate: float | None
    messages_total: int
    open_handoffs: int
    ratings: dict[int, int] = field(default_factory=dict)
    sla_breaches: tuple[tuple[str, int], ...] = ()  # overdue open complaints per category, most first

    @property
    def overdue_complaints(self) -> int:
        """Open complaints past their due date (all categories)."""
        return sum(n for _, n in self.sla_breaches)

    @property
    def satisfaction(self) -> float | None:
        """The mean rating, or None without ratings."""
        count = sum(self.ratings.values())
        return sum(s * n for s, n in self.ratings.items()) / count if count else None

    @property
    def rating_count(self) -> int:
        """How many ratings were given."""
        return sum(self.ratings.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON for the API."""
        return {
            "days": self.days,
            "messages_per_day": [{"date": d.isoformat(), "count": n} for d, n in self.messages_per_day],
            "top_intents": [{"intent": i, "count": n} for i, n in self.top_intents],
            "fallback_rate": self.fallback_rate,
            "messages_total": self.messages_total,
            "open_handoffs": self.open_handoffs,
            "satisfaction": self.satisfaction,
            "ratings": {str(k): v for k, v in self.ratings.items()},
            "overdue_complaints": self.overdue_complaints,
            "sla_breaches": [{"category": c, "count": n} for c, n in self.sla_breaches],
        }


def _suspicious(handoff: Handoff) -> str | None:
    flag = (handoff.context or {}).get(SUSPICIOUS_KEY)
    return flag if flag in SUSPICIOUS_LABELS else None


def _shown_name(name: str | None, *, reveal: bool) -> str | None:
    """A resident's profile name: initials only unless revealed (never a bidi control)."""
    if not name:
        return None
    return neutralise_bidi(name) if reveal else mask_name(name)


def _public_slots(slots: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in slots.items() if not k.startswith("_")}


def _slot_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _line(message: Message, show: Any) -> TranscriptLine:
    buttons = tuple(
        str(b.get("title", "")) for b in (message.data or {}).get("buttons", []) if isinstance(b, dict)
    )
    text = message.text or ""
    if not text and message.payload:
        text = message.payload
    if not text and (message.data or {}).get("kind") not in (None, "text"):
        text = f"[{(message.data or {}).get('kind')}]"
    return TranscriptLine(
        id=message.id,
        direction=message.direction,
        kind=message.kind,
        text=show(text),
        at=message.created_at,
        intent=message.intent,
        buttons=buttons,
    )
