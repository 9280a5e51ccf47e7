"""The one internal vocabulary of messages: what a resident sent and what the bot answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Channel(StrEnum):
    """Where a conversation happens."""

    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    WEBCHAT = "webchat"
    CONSOLE = "console"


class ContentKind(StrEnum):
    """What kind of thing arrived; flows answer the unsupported kinds politely."""

    TEXT = "text"
    LOCATION = "location"
    PHOTO = "photo"
    COMMAND = "command"
    STICKER = "sticker"
    VOICE = "voice"
    DOCUMENT = "document"
    EDITED = "edited"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Location:
    """A point the resident shared (WGS84), with the platform's label when it had one."""

    lat: float
    lon: float
    address: str | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Media:
    """A photo (or other file) the channel adapter has already downloaded into the media store."""

    key: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message from a resident, the same shape whatever the channel."""

    channel: Channel
    chat_id: str
    user_id: str
    message_id: str | None = None
    text: str | None = None
    payload: str | None = None
    location: Location | None = None
    media: tuple[Media, ...] = ()
    kind: ContentKind = ContentKind.TEXT
    profile_name: str | None = None
    start_param: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The client's network address where the channel has one (web chat); None for platforms, whose
    # requests come from their own servers. Used for per-address limits only, never stored.
    origin: str | None = None
    # The language the client shows ("id"/"en": the web chat page's labels); a new resident starts in it.
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A quick-reply option: what the resident sees and what comes back when pressed."""

    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Venue:
    """A place to show as a map pin where the channel can (Telegram venue, a map link elsewhere)."""

    lat: float
    lon: float
    title: str
    address: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from the bot: text, optional buttons, an optional pin or a location request."""

    text: str
    buttons: tuple[Button, ...] = ()
    venue: Venue | None = None
    request_location: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON for the web chat API and the transcript."""
        data: dict[str, object] = {
            "text": self.text,
            "buttons": [{"title": b.title, "payload": b.payload} for b in self.buttons],
        }
        if self.venue is not None:
            data["venue"] = {
                "lat": self.venue.lat,
                "lon": self.venue.lon,
                "title": self.venue.title,
                "address": self.venue.address,
            }
        if self.request_location:
            data["request_location"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Reply:
        """Rebuild a reply stored with :meth:`to_dict`."""
        raw_buttons = data.get("buttons")
        buttons = tuple(
            Button(str(b["title"]), str(b["payload"]))
            for b in (raw_buttons if isinstance(raw_buttons, list) else [])
            if isinstance(b, dict)
        )
        venue_data = data.get("venue")
        venue = None
        if isinstance(venue_data, dict):
            venue = Venue(
                float(venue_data["lat"]),
                float(venue_data["lon"]),
                str(venue_data["title"]),
                str(venue_data["address"]),
            )
        return cls(
            text=str(data.get("text", "")),
            buttons=buttons,
            venue=venue,
            request_location=bool(data.get("request_location", False)),
        )
