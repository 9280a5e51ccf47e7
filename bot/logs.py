"""Logging setup: one format, personal data and tokens masked, noisy HTTP loggers quieted."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from bot.privacy import MaskingFilter, mask_id

if TYPE_CHECKING:
    from bot.settings import Settings

# httpx logs full request URLs, and Telegram's contain the bot token.
QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncio")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A web chat session id is the conversation's only credential; request paths carry it.
SESSION_PATH = re.compile(r"^(/api/chat/)([^/?#]+)(?=/)")


class AccessLogFilter(logging.Filter):
    """Masks the web chat session id in uvicorn's access lines (``/api/chat/…1a2b/events``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.access: (client, method, path with query, http version, status)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = SESSION_PATH.sub(lambda m: m.group(1) + mask_id(m.group(2)), args[2])
            if path != args[2]:
                record.args = (args[0], args[1], path, args[3], args[4])
        return True


def install_access_log_filter() -> None:
    """Put :class:`AccessLogFilter` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret value, so the log filter can replace it wherever it appears."""
    values: list[str | None] = []
    secrets = settings.secrets
    for secret in (secrets.telegram_bot_token, secrets.twilio_auth_token, secrets.staff_api_token):
        values.append(secret.get_secret_value() if secret is not None else None)
    if settings.telegram.webhook_secret is not None:
        values.append(settings.telegram.webhook_secret.get_secret_value())
    values.append(urlsplit(settings.database_url).password)
    return [v for v in values if v]


def configure_logging(
    level: str = "INFO", *, secrets: list[str] | None = None, stream: TextIO | None = None
) -> MaskingFilter:
    """Log to stderr (or ``stream``) through the masking filter; safe to call more than once.

    The filter sits on the root handler, so it sees every logger that propagates (uvicorn with
    ``log_config=None``, alembic, apscheduler, httpx, telegram); handlers that libraries attached
    to their own loggers get the same filter.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_pontibot", False):
            root.removeHandler(handler)
    masking = MaskingFilter(secrets=secrets or ())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(masking)
    handler._pontibot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    install_access_log_filter()
    for logger in list(logging.Logger.manager.loggerDict.values()):
        for other in getattr(logger, "handlers", ()):
            if not any(isinstance(f, MaskingFilter) for f in other.filters):
                other.addFilter(masking)
    return masking
