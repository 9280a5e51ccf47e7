"""Twilio's webhook forms → our values: a resident's message, a delivery status."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from flows.messages import ContentKind, Location

MAX_INBOUND_TEXT = 10_000  # what we read from a resident in one message (as the web chat)
MAX_MEDIA = 10  # Twilio sends at most ten MediaUrlN
MAX_PAYLOAD = 256  # the transcript's payload column
_SID = re.compile(r"^[A-Za-z]{2}[0-9A-Za-z]{8,62}$")
_WHATSAPP_ADDRESS = re.compile(r"^whatsapp:\+?[0-9]{6,20}$")

STATUS_MAP = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "undelivered",
    "canceled": "failed",
}


class BadWebhook(ValueError):
    """A signed request that is not a usable WhatsApp message (missing sender, bad coordinates…)."""


@dataclass(frozen=True, slots=True)
class InboundMedia:
    """One ``MediaUrlN`` with its ``MediaContentTypeN``."""

    url: str
    content_type: str


@dataclass(frozen=True, slots=True)
class WhatsAppInbound:
    """The fields of one inbound Twilio WhatsApp webhook that the bot uses."""

    message_sid: str
    chat_id: str
    user_id: str
    body: str = ""
    button_payload: str | None = None
    button_text: str | None = None
    location: Location | None = None
    media: tuple[InboundMedia, ...] = ()
    profile_name: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """One status callback: our delivery status for a message SID (None when not one we track)."""

    message_sid: str
    status: str | None
    error: str | None = None


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float:
    try:
        value = float(form[name])
    except ValueError:
        raise BadWebhook(f"{name} is not a number") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise BadWebhook(f"{name} is out of range")
    return value


def parse_inbound(form: Mapping[str, str]) -> WhatsAppInbound:
    """The message in a verified inbound webhook; raises BadWebhook when it is not usable.

    Fields we do not use (SmsSid, NumSegments, MessageType, ReferralNumMedia, …) are ignored: Twilio
    adds fields over time, and refusing them would lose residents' messages.
    """
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is missing or malformed")
    sender = (form.get("From") or "").strip()
    if not sender:
        raise BadWebhook("From is missing")
    if not _WHATSAPP_ADDRESS.match(sender):
        raise BadWebhook("From is not a WhatsApp address (whatsapp:+<number>)")
    wa_id = (form.get("WaId") or "").strip()
    user_id = wa_id if wa_id.isdigit() and len(wa_id) <= 20 else sender.removeprefix("whatsapp:")
    location = None
    if form.get("Latitude") or form.get("Longitude"):
        if not (form.get("Latitude") and form.get("Longitude")):
            raise BadWebhook("a location needs both Latitude and Longitude")
        location = Location(
            lat=_coordinate(form, "Latitude", 90.0),
            lon=_coordinate(form, "Longitude", 180.0),
            address=_clean(form.get("Address"), 300),
            label=_clean(form.get("Label"), 300),
        )
    raw_count = (form.get("NumMedia") or "0").strip()
    if not raw_count.isdigit():
        raise BadWebhook("NumMedia is not a number")
    media = []
    for i in range(min(int(raw_count), MAX_MEDIA)):
        url = (form.get(f"MediaUrl{i}") or "").strip()
        if url:
            content_type = (form.get(f"MediaContentType{i}") or "").split(";")[0].strip().lower()
            media.append(InboundMedia(url, content_type))
    payload = _clean(form.get("ButtonPayload"), MAX_PAYLOAD + 1)
    return WhatsAppInbound(
        message_sid=sid,
        chat_id=sender,
        user_id=user_id,
        body=form.get("Body") or "",
        button_payload=payload if payload and len(payload) <= MAX_PAYLOAD else None,
        button_text=_clean(form.get("ButtonText"), 256),
        location=location,
        media=tuple(media),
        profile_name=_clean(form.get("ProfileName"), 128),
    )


def parse_status(form: Mapping[str, str]) -> DeliveryUpdate:
    """The delivery update in a verified status callback; raises BadWebhook without a MessageSid."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is missing or malformed")
    raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    code = (form.get("ErrorCode") or "").strip()
    error = None
    if code:
        error = f"twilio {code[:12]}: {(form.get('ErrorMessage') or '').strip()[:500]}".rstrip(": ")
    return DeliveryUpdate(sid, STATUS_MAP.get(raw), error)


def kind_of(content_type: str) -> ContentKind:
    """What a non-image attachment is, for the flows' "I can read text, locations and photos"."""
    if content_type.startswith("image/"):
        return ContentKind.PHOTO
    if content_type.startswith("audio/"):
        return ContentKind.VOICE
    if content_type.startswith(("application/", "text/")):
        return ContentKind.DOCUMENT
    return ContentKind.OTHER
