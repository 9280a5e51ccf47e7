"""Our replies as Twilio messages: text split at 1,600 characters, numbered options, quick replies."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.channels.base import numbered_options, split_text
from flows.messages import Button, Reply
from flows.texts import Texts

MAX_BODY_CHARS = 1600  # Twilio's limit for one message body
QUICK_REPLY_MAX_BUTTONS = 3  # in-session WhatsApp quick replies (Content API, twilio/quick-reply)
QUICK_REPLY_TITLE_MAX = 20
QUICK_REPLY_ID_MAX = 200
QUICK_REPLY_BODY_MAX = 1024


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One Twilio message: a free-form body, or a Content API template with its variables."""

    body: str | None = None
    content_sid: str | None = None
    content_variables: tuple[tuple[str, str], ...] = ()

    def params(self) -> dict[str, str]:
        """The message-create parameters (without To/From) in twilio-python's names."""
        if self.content_sid is not None:
            variables = json.dumps(dict(self.content_variables), ensure_ascii=False)
            return {"content_sid": self.content_sid, "content_variables": variables}
        return {"body": self.body or ""}


def map_link(lat: float, lon: float) -> str:
    """A map link that opens in WhatsApp's browser or the maps app."""
    return f"https://maps.google.com/?q={lat:.6f},{lon:.6f}"


def quick_reply(text: str, buttons: Sequence[Button], templates: Mapping[str, str]) -> OutboundMessage | None:
    """The reply as a Content API quick reply when ``quick_reply_<n>`` is configured and it fits.

    The template (twilio/quick-reply) has body ``{{1}}`` and, per button i, title ``{{2i}}`` and
    id ``{{2i+1}}``; WhatsApp allows three in-session buttons of at most 20 characters.
    """
    content_sid = templates.get(f"quick_reply_{len(buttons)}")
    if (
        content_sid is None
        or not 1 <= len(buttons) <= QUICK_REPLY_MAX_BUTTONS
        or not text.strip()
        or len(text) > QUICK_REPLY_BODY_MAX
        or any(len(b.title) > QUICK_REPLY_TITLE_MAX or len(b.payload) > QUICK_REPLY_ID_MAX for b in buttons)
    ):
        return None
    variables = [("1", text)]
    for i, button in enumerate(buttons, start=1):
        variables += [(str(2 * i), button.title), (str(2 * i + 1), button.payload)]
    return OutboundMessage(content_sid=content_sid, content_variables=tuple(variables))


def render_reply(
    reply: Reply, *, lang: str, texts: Texts, templates: Mapping[str, str]
) -> tuple[list[OutboundMessage], tuple[Button, ...]]:
    """Twilio messages for one reply, and the buttons shown as numbered lines (empty when none were)."""
    parts = [reply.text.strip()] if reply.text.strip() else []
    if reply.venue is not None:
        venue = reply.venue
        link = map_link(venue.lat, venue.lon)
        parts.append(
            texts.render(lang, "whatsapp.venue", title=venue.title, address=venue.address, map_url=link)
        )
    if reply.request_location:
        parts.append(texts.render(lang, "whatsapp.share_location"))
    text = "\n\n".join(parts)
    numbered: tuple[Button, ...] = ()
    if reply.buttons:
        quick = quick_reply(text, reply.buttons, templates)
        if quick is not None:
            return [quick], ()
        text = "\n\n".join([*([text] if text else []), numbered_options(reply.buttons, lang=lang)])
        numbered = reply.buttons
    if not text:
        return [], ()
    return [OutboundMessage(body=chunk) for chunk in split_text(text, MAX_BODY_CHARS) if chunk], numbered
