"""The channel port: what every channel adapter offers, its one error tree, and button degradation.

The outbox, staff replies and the rest of the bot reach a platform only through :class:`ChannelSender`
and catch only these errors (each adapter raises its own subclasses, which add platform details)::

    ChannelError                   something went wrong talking to a platform
    ├── ChatUnreachable            the resident blocked the bot; nothing more is sent to them
    ├── RateLimited                the platform still asks to wait (429) after bounded retries
    │                              (``retry_after`` seconds, or None when it did not say)
    └── SendFailed                 the platform refused or could not be reached
                                   (``permanent``: retrying the same message cannot succeed)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flows.messages import Button, Channel, Reply


class ChannelError(Exception):
    """Something went wrong talking to a platform."""


class ChatUnreachable(ChannelError):
    """The resident blocked the bot; they are marked unreachable and nothing more is sent."""


class RateLimited(ChannelError):
    """The platform still asks to wait after bounded retries; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SendFailed(ChannelError):
    """The platform refused a send or could not be reached; ``permanent`` when a retry cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SendLimits(Protocol):
    """A channel's send budget (token buckets shared by replies and notifications)."""

    per_key_rate: float | None

    @property
    def global_rate(self) -> float:
        """Sends per second for the whole channel."""
        ...

    def ready_in(self, key: str) -> float:
        """Seconds until a send to ``key`` fits both budgets (0 when it fits now)."""
        ...

    def pause(self, seconds: float, key: str | None = None) -> None:
        """Hold sends (of the channel, or of ``key``) for ``seconds``."""
        ...


class ChannelSender(Protocol):
    """Sends to one chat on a platform (direct replies, notifications, staff replies)."""

    channel: Channel
    # The delivery status a successful send records: "sent" where the platform reports nothing later
    # (Telegram), None where status callbacks will tell (WhatsApp).
    sent_status: str | None

    @property
    def limiter(self) -> SendLimits:
        """The channel's send budget, shared by replies and notifications."""
        ...

    async def send(self, chat_id: str, replies: Sequence[Reply]) -> list[str]:
        """Deliver ``replies`` in order; returns the provider's message ids."""
        ...

    async def send_notification(
        self,
        chat_id: str,
        reply: Reply,
        *,
        template_key: str,
        variables: Mapping[str, str],
        last_inbound_at: datetime | None,
    ) -> list[str]:
        """Deliver a message that is not an answer (a platform may need an approved template for it)."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every send of this channel for ``seconds`` (the platform asked to slow down)."""
        ...


class ChannelService(ChannelSender, Protocol):
    """A channel the runtime starts and stops (polling loops, webhook registration) and sends through."""

    async def start(self) -> None:
        """Begin receiving (start polling, register the webhook)."""
        ...

    async def stop(self) -> None:
        """Stop receiving and release clients."""
        ...


@dataclass(frozen=True, slots=True)
class StaffGroupUpdate:
    """A message or button press in the configured staff group, without python-telegram-bot types."""

    update_id: int
    chat_id: str
    message_id: int | None
    thread_id: int | None
    user_id: str | None
    user_name: str | None
    text: str | None
    reply_to_message_id: int | None = None
    callback_data: str | None = None
    callback_query_id: str | None = None


StaffGroupHandler = Callable[[StaffGroupUpdate], Awaitable[None]]


class StaffGroupChannel(Protocol):
    """A channel that hosts the staff group: forum topics per handoff and the group's updates."""

    on_staff_group: StaffGroupHandler | None

    async def create_forum_topic(self, chat_id: str, name: str) -> int:
        """Open a topic; returns its thread id (SendFailed when the platform refuses)."""
        ...

    async def close_forum_topic(self, chat_id: str, thread_id: int) -> None:
        """Close a topic (it stays readable)."""
        ...

    async def send_to_topic(self, chat_id: str, thread_id: int, text: str) -> list[str]:
        """Post plain text into a topic; returns the message ids."""
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
