"""What every channel adapter offers, and the degradation of buttons for text-only channels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from flows.messages import Button, Channel, Reply


class ChannelSender(Protocol):
    """Sends replies to one chat on a platform; returns the provider's message ids."""

    channel: Channel

    async def send(self, chat_id: str, replies: Sequence[Reply]) -> list[str]:
        """Deliver ``replies`` in order."""
        ...


class ChannelService(ChannelSender, Protocol):
    """A channel the runtime starts and stops (polling loops, webhook registration) and sends through."""

    async def start(self) -> None:
        """Begin receiving (start polling, register the webhook)."""
        ...

    async def stop(self) -> None:
        """Stop receiving and release clients."""
        ...


def numbered_options(buttons: Sequence[Button], *, lang: str = "id") -> str:
    """Buttons as numbered lines plus how to answer, for channels without buttons (Rasa's way)."""
    lines = [f"{i}. {button.title}" for i, button in enumerate(buttons, start=1)]
    numbers = [str(i) for i in range(1, len(buttons) + 1)]
    if len(numbers) == 1:
        choice = numbers[0]
    else:
        joiner = " atau " if lang == "id" else " or "
        choice = ", ".join(numbers[:-1]) + joiner + numbers[-1]
    hint = f"Balas {choice}." if lang == "id" else f"Reply {choice}."
    return "\n".join([*lines, hint])


def pick_numbered(text: str, buttons: Sequence[Button]) -> Button | None:
    """The button a reply like "2" (or "2." / " 2 ") chooses among numbered options."""
    stripped = text.strip().rstrip(".)")
    if stripped.isdigit():
        index = int(stripped) - 1
        if 0 <= index < len(buttons):
            return buttons[index]
    return None


def split_text(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, at paragraph or line breaks if possible."""
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind("\n", 0, limit)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not chunks:
        chunks.append(rest)
    return chunks
