"""Masking personal data before it reaches logs or staff lists (UU No. 27/2022)."""

from __future__ import annotations

import logging
import re

NIK_PATTERN = re.compile(r"(?<!\d)(\d{6})\d{6}(\d{4})(?!\d)")
PHONE_PATTERN = re.compile(r"(?<![\w])(\+?62|0)(8\d{1,2})[\d\- ]{5,11}(\d{3})(?!\d)")
EMAIL_PATTERN = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
TELEGRAM_TOKEN_PATTERN = re.compile(r"bot\d{5,}:[A-Za-z0-9_-]{20,}")


def mask_text(text: str) -> str:
    """``text`` with NIKs, phone numbers, e-mail addresses and bot tokens masked."""
    text = TELEGRAM_TOKEN_PATTERN.sub("bot<token>", text)
    text = NIK_PATTERN.sub(r"\1******\2", text)
    text = PHONE_PATTERN.sub(r"\1\2*****\3", text)
    return EMAIL_PATTERN.sub(r"\1***@\2", text)


def mask_id(value: str) -> str:
    """A chat id or phone shortened to its last four characters, enough to correlate log lines."""
    tail = value[-4:]
    return f"…{tail}" if len(value) > 4 else "…"


class MaskingFilter(logging.Filter):
    """Masks personal data and secrets in every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg = masked
            record.args = None
        return True
