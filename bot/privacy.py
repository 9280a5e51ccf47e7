"""Masking personal data and secrets before they reach logs or staff lists (UU No. 27/2022).

Personal data (NIK/KK, phone numbers, e-mail addresses) is masked by lokal-id's Samaran detectors,
see :mod:`storage.masking`: ``6171********0003``, ``0812****7890``, ``b***@gmail.com``; a resident's
profile name keeps only its initials (``B*** S***``). Secrets that travel inside text are replaced by a
marker: a Telegram bot token (it is part of every Bot API URL), credentials in a URL's user-info, an
``Authorization`` header, and the configured secret values. Bidirectional-text controls (U+202E …),
which can make a line read backwards in a console, a chat or a terminal, are shown as ``[U+202E]``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from storage.masking import mask_personal, partial_mask

__all__ = ["MaskingFilter", "mask_id", "mask_name", "mask_personal", "mask_text", "neutralise_bidi"]

TELEGRAM_TOKEN_PATTERN = re.compile(r"\b(bot)?\d{5,}:[A-Za-z0-9_-]{30,}")
URL_CREDENTIALS_PATTERN = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
AUTH_HEADER_PATTERN = re.compile(
    r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?(?:basic|bearer|token)\s+)[^\s\"',]+"
)
SECRET_MARK = "<secret>"  # noqa: S105 - the marker that replaces secrets
MIN_SECRET_LENGTH = 6
# Embeddings, overrides, isolates and marks of Unicode's bidirectional algorithm (UAX #9).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, SECRET_MARK)
    text = TELEGRAM_TOKEN_PATTERN.sub(lambda m: f"{m.group(1) or ''}{SECRET_MARK}", text)
    text = URL_CREDENTIALS_PATTERN.sub(rf"\1{SECRET_MARK}@", text)
    return AUTH_HEADER_PATTERN.sub(rf"\1{SECRET_MARK}", text)


def neutralise_bidi(text: str) -> str:
    """``text`` with every bidi control shown as a visible mark (``[U+202E]``): it reads as it is stored."""
    return BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def mask_text(text: str, *, secrets: Iterable[str] = ()) -> str:
    """``text`` with secrets replaced, personal data masked and bidi controls neutralised: safe for a log
    line or a staff view."""
    if not text:
        return text
    return neutralise_bidi(mask_personal(_mask_secrets(text, secrets)))


def mask_name(name: str) -> str:
    """A resident's profile name as staff see it by default: initials only (``B*** S***``), numbers and
    e-mail addresses in it masked like any text."""
    clean = "".join(ch for ch in unicodedata.normalize("NFKC", name) if unicodedata.category(ch) != "Cf")
    return " ".join(
        partial_mask("NAME", word) if any(ch.isalpha() for ch in word) and "@" not in word else word
        for word in mask_personal(clean).split()
    )


def mask_id(value: str) -> str:
    """A chat id or phone shortened to its last four characters, enough to correlate log lines."""
    tail = value[-4:]
    return f"…{tail}" if len(value) > 4 else "…"


class MaskingFilter(logging.Filter):
    """Masks personal data and secrets in the message, exception and stack text of every record.

    Attach it to handlers (not loggers): a handler filter sees the records of every logger that
    propagates to it (uvicorn, alembic, apscheduler, httpx, telegram …).
    """

    def __init__(self, name: str = "", *, secrets: Iterable[str] = ()) -> None:
        super().__init__(name)
        self.secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)
        self._formatter = logging.Formatter()

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        """Also replace these exact values (configured tokens and passwords) wherever they appear."""
        fresh = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = tuple(sorted(set(self.secrets) | fresh, key=len, reverse=True))

    def _mask(self, text: str) -> str:
        return mask_text(text, secrets=self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (message already formatted, args dropped); always let it through."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line; log the raw template
            message = f"{record.msg!s} {record.args!r}"
        masked = self._mask(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True
