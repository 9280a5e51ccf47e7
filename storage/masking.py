"""Masking personal data in stored text (NIK/KK, phone numbers, e-mail addresses), with lokal-id's Samaran.

The lowest layer holds it so every layer masks the same way: logs and staff lists (``bot.privacy``),
erasure (``flows.privacy``) and the retention purge (``bot.notifications.retention``). Masks are
Samaran's partial ones, readable enough to recognise a value: ``6171********0003``, ``0812****7890``,
``b***@gmail.com``.
Any other run of 16 digits is masked too: a mistyped NIK still identifies a person.
"""

from __future__ import annotations

import re

from lokal.samaran import PiiType, Samaran

# Identity numbers and contact details. Names and addresses stay readable: a street in a complaint
# is the case, not the resident.
MASKED_TYPES: tuple[PiiType, ...] = ("NIK", "KK", "PHONE", "EMAIL")
SIXTEEN_DIGITS_PATTERN = re.compile(r"(?<!\d)(\d{4})\d{8}(\d{4})(?!\d)")


def mask_personal(text: str) -> str:
    """``text`` with NIK/KK, phone numbers and e-mail addresses partially masked."""
    if not text:
        return text
    masked = Samaran(mode="partial", types=MASKED_TYPES).mask(text).text
    return SIXTEEN_DIGITS_PATTERN.sub(r"\1********\2", masked)
