"""Logging setup: one format, personal data and tokens masked, noisy HTTP loggers quieted."""

from __future__ import annotations

import logging
import sys

from bot.privacy import MaskingFilter

# httpx logs full request URLs, and Telegram's contain the bot token.
QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncio")


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr through the masking filter; safe to call more than once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pontibot", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    handler._pontibot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
