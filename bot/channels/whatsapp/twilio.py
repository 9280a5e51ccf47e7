"""The errors of sending through Twilio (its REST client is in ``rest.py``, imported when WhatsApp is on).

WhatsAppError (a ChannelError of bot.channels.base)
├── SendFailed         Twilio refused the message or could not be reached (code, status, retryable;
│   │                  also the port's SendFailed, permanent when not retryable)
│   └── SendRateLimited    still 429 after the channel's retries (also the port's RateLimited)
└── TemplateRequired   outside the 24-hour window with no approved template (a permanent SendFailed)
"""

from __future__ import annotations

from bot.channels import base
from bot.channels.base import ChannelError

ERROR_WINDOW_CLOSED = 63016  # free-form message outside the 24-hour window
RATE_LIMITED_CODES = frozenset({20429, 14107})


class WhatsAppError(ChannelError):
    """Something this channel could not do."""


class SendFailed(WhatsAppError, base.SendFailed):
    """Twilio did not accept a message; ``retryable`` when trying later may work (429, network)."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None, retryable: bool):
        base.SendFailed.__init__(self, message, permanent=not retryable)
        self.status = status
        self.code = code
        self.retryable = retryable


class SendRateLimited(SendFailed, base.RateLimited):
    """Twilio still answers 429 (or 20429/14107) after the channel's own retries."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message, status=status, code=code, retryable=True)
        self.retry_after = None


class TemplateRequired(WhatsAppError, base.SendFailed):
    """The resident wrote more than 24 hours ago and no approved template is configured for this kind."""

    def __init__(self, message: str) -> None:
        base.SendFailed.__init__(self, message, permanent=True)
