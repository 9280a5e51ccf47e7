"""Logging setup: text or JSON lines, personal data and tokens masked, noisy HTTP loggers quieted.

Fields bound to the work in hand (:func:`bind`: the request id of an HTTP request, the channel,
masked chat and flow state of a turn) live in a context variable, so every line logged while that
work runs carries them — as ``key=value`` at the end of a text line, as keys of a JSON line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from bot.privacy import MaskingFilter, mask_id

if TYPE_CHECKING:
    from bot.settings import Settings

# httpx logs full request URLs, and Telegram's contain the bot token.
QUIET_LOGGERS = ("httpx", "httpcore", "telegram", "apscheduler", "aiosqlite", "asyncio")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The bound fields as pairs (immutable, so a context never changes another's).
_BOUND: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar("log", default=())
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


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Add ``fields`` to every line logged in this context (this task and what it awaits).

    Values must already be safe to log (mask chat ids with :func:`bot.privacy.mask_id`).
    """
    merged = {**dict(_BOUND.get()), **{k: v for k, v in fields.items() if v is not None}}
    token = _BOUND.set(tuple(merged.items()))
    try:
        yield
    finally:
        _BOUND.reset(token)


class BoundFieldsFilter(logging.Filter):
    """Copies the context's bound fields onto each record (``record.bound``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.bound = dict(_BOUND.get())
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message`` and the bound fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(LOG_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """The line, with the bound fields after the message."""
        line = super().format(record)
        bound: dict[str, str] = getattr(record, "bound", {})
        if not bound:
            return line
        first, _, rest = line.partition("\n")
        extra = " ".join(f"{key}={value}" for key, value in bound.items())
        return f"{first} [{extra}]" + (f"\n{rest}" if rest else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound fields, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (newlines inside values are escaped)."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "bound", {}))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


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
    level: str = "INFO",
    *,
    secrets: list[str] | None = None,
    stream: TextIO | None = None,
    fmt: str = "text",
) -> MaskingFilter:
    """Log to stderr (or ``stream``) through the masking filter, as text or JSON lines (``fmt``);
    safe to call more than once.

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
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(BoundFieldsFilter())
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
