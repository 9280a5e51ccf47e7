"""Masking personal data in stored text (NIK/KK, phone numbers, e-mail addresses), with lokal-id's Samaran.

The lowest layer holds it so every layer masks the same way: logs and staff lists (``bot.privacy``),
erasure (``flows.privacy``) and the retention purge (``bot.notifications.retention``). Masks are
Samaran's partial ones, readable enough to recognise a value: ``6171********0003``, ``0812****7890``,
``b***@gmail.com``.

Detection reads a normalised view of the text (NFKC, format characters such as zero-width spaces and
bidi controls left out), so ``6171​0101…`` with zero-width spaces or full-width digits is found; the
text around a match is returned as it was. Numbers written in groups (``6171.0101.0101.0003``,
``0812 5678 0003 2026``) are masked when 16 digits make a NIK/KK or the digits read as a mobile
number, and any other run of 16 digits too: a mistyped NIK still identifies a person. A run whose
every group reads as a date, clock time, year, amount, region code or reference number (``08.00-12.00
13.00``, ``62.800.000.000``, ``61.71.01.1004``, ``2026-000123``) is left alone, whoever detected it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lokal.samaran import PiiType, Samaran

__all__ = ["MASKED_TYPES", "is_schedule_or_amount", "mask_personal", "partial_mask"]

# Identity numbers and contact details. Names and addresses stay readable: a street in a complaint
# is the case, not the resident.
MASKED_TYPES: tuple[PiiType, ...] = ("NIK", "KK", "PHONE", "EMAIL")
NUMBER_TYPES = frozenset({"NIK", "KK", "PHONE"})
NIK_DIGITS = 16
# National mobile numbers: 08 + 8..11 digits; with the country code 62 instead of the 0, one more.
MOBILE_LENGTHS = {"08": range(10, 14), "628": range(11, 15)}
MAX_TOKEN_GROUPS = 4
# Left out of the detection view: format characters (zero-width, bidi, soft hyphen) and marks.
IGNORED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})

_SEPARATOR = r"[ \t.\-\u2010-\u2015]{1,3}"
_DIGIT_RUN = re.compile(rf"[0-9]+(?:{_SEPARATOR}[0-9]+)*")
_DIGIT_GROUP = re.compile(r"[0-9]+")
_DAY, _MONTH, _YEAR = r"(?:0?[1-9]|[12][0-9]|3[01])", r"(?:0?[1-9]|1[0-2])", r"(?:19|20)[0-9]{2}"
# What a group of digits is when it is not personal data, one alternative per kind.
_NOT_PERSONAL_TOKEN = re.compile(
    "|".join(
        (
            rf"{_DAY}([./-]){_MONTH}\1{_YEAR}",  # date 12-03-2026
            rf"{_YEAR}-(?:0[1-9]|1[0-2])-{_DAY}",  # date 2026-03-12
            rf"{_YEAR}-[0-9]{{5,6}}",  # the number of ADU-2026-000123 / PBG-2026-00123
            r"[1-9][0-9]\.[0-9]{2}(?:\.[0-9]{2}(?:\.[0-9]{4})?)?",  # region code 61.71.01.1004
            r"[1-9][0-9]{0,2}(?:\.[0-9]{3})+",  # amount 62.800.000.000
            r"(?:[01]?[0-9]|2[0-4])\.[0-5][0-9]",  # clock time 08.00
            _YEAR,  # year 2026
        )
    )
)


@functools.cache
def _samaran() -> Samaran:
    """Samaran's detectors, imported on first use: their import costs ~0.1 s of every start-up."""
    from lokal.samaran import Samaran

    return Samaran(mode="partial", types=MASKED_TYPES)


def partial_mask(kind: PiiType, value: str) -> str:
    """Samaran's partial mask of ``value`` read as ``kind`` (``6171********0003``)."""
    from lokal.samaran import partial_mask as samaran_partial_mask

    return samaran_partial_mask(kind, value)


# Every masked type needs an "@" or eight digits in a row (any separators of up to three characters,
# zero-width ones included: they are not word characters). Most log lines have neither, and skip the
# detection view and the scan, which cost a quarter of a millisecond per line.
MIN_NUMBER_DIGITS = 8
_MAYBE_NUMBER = re.compile(rf"\d(?:[^\w/:\"]{{0,3}}\d){{{MIN_NUMBER_DIGITS - 1},}}")


def mask_personal(text: str) -> str:
    """``text`` with NIK/KK, phone numbers and e-mail addresses partially masked, however they are written."""
    if not text or ("@" not in text and "\uff20" not in text and _MAYBE_NUMBER.search(text) is None):
        return text
    view, origin = _detection_view(text)
    spans = _grouped_numbers(view)
    spans += [
        (m.start, m.end, partial_mask(m.type, m.value))
        for m in _samaran().scan(view)
        if not any(m.start < end and start < m.end for start, end, _ in spans)
        and not (m.type in NUMBER_TYPES and is_schedule_or_amount(m.value))
    ]
    if not spans:
        return text
    out: list[str] = []
    cursor = 0
    for start, end, replacement in sorted(spans):
        first, last = origin(start), origin(end - 1) + 1
        out.append(text[cursor:first])
        out.append(replacement)
        cursor = last
    out.append(text[cursor:])
    return "".join(out)


def is_schedule_or_amount(run: str) -> bool:
    """Whether every group of digits in ``run`` reads as a date, clock time, year, amount, region code or
    reference number (``08.00-12.00 13.00``, ``Rp 62.800.000.000``): a run that is not personal data."""
    groups = [m.span() for m in _DIGIT_GROUP.finditer(run)]
    if not groups:
        return False
    # covered[i]: groups i.. can be read as such tokens, separated by anything.
    covered = [False] * len(groups) + [True]
    for i in reversed(range(len(groups))):
        for j in range(i, min(i + MAX_TOKEN_GROUPS, len(groups))):
            token = run[groups[i][0] : groups[j][1]]
            if covered[j + 1] and _NOT_PERSONAL_TOKEN.fullmatch(token):
                covered[i] = True
                break
    return covered[0]


def _detection_view(text: str) -> tuple[str, _Origin]:
    """``text`` in NFKC without format characters, and the map from a view index to a ``text`` index."""
    if text.isascii():
        return text, _Origin(None)
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) in IGNORED_CATEGORIES:
            continue
        for normal in unicodedata.normalize("NFKC", char):
            if unicodedata.category(normal) not in IGNORED_CATEGORIES:
                chars.append(normal)
                origin.append(index)
    return "".join(chars), _Origin(origin)


class _Origin:
    """Index in the view → index in the original text (the identity for ASCII text)."""

    __slots__ = ("indexes",)

    def __init__(self, indexes: list[int] | None) -> None:
        self.indexes = indexes

    def __call__(self, index: int) -> int:
        return index if self.indexes is None else self.indexes[index]


def _grouped_numbers(view: str) -> list[tuple[int, int, str]]:
    """Mobile numbers and 16-digit numbers, whatever separates their digits: (start, end, mask) spans."""
    found: list[tuple[int, int, str]] = []
    for run in _DIGIT_RUN.finditer(view):
        if is_schedule_or_amount(run.group()):
            continue
        groups = [
            (run.start() + m.start(), run.start() + m.end()) for m in _DIGIT_GROUP.finditer(run.group())
        ]
        i = 0
        while i < len(groups):
            match = _mobile_at(view, groups, i) or _nik_at(view, groups, i)
            if match is None:
                i += 1
                continue
            last, replacement = match
            start = groups[i][0] - 1 if groups[i][0] and view[groups[i][0] - 1] == "+" else groups[i][0]
            found.append((start, groups[last][1], replacement))
            i = last + 1
    return found


def _digits(view: str, groups: list[tuple[int, int]], first: int, last: int) -> str:
    return "".join(view[start:end] for start, end in groups[first : last + 1])


def _mobile_at(view: str, groups: list[tuple[int, int]], first: int) -> tuple[int, str] | None:
    """The longest mobile number starting at group ``first``: (its last group, its mask)."""
    best: int | None = None
    for last in range(first, len(groups)):
        digits = _digits(view, groups, first, last)
        lengths = next((n for prefix, n in MOBILE_LENGTHS.items() if digits.startswith(prefix)), None)
        if len(digits) >= 3 and lengths is None:
            return None
        if lengths is not None and len(digits) > lengths.stop - 1:
            break
        if lengths is not None and len(digits) in lengths:
            best = last
    if best is None:
        return None
    digits = _digits(view, groups, first, best)
    national = f"0{digits[2:]}" if digits.startswith("62") else digits
    return best, partial_mask("PHONE", national)


def _nik_at(view: str, groups: list[tuple[int, int]], first: int) -> tuple[int, str] | None:
    """Sixteen digits starting at group ``first``: (their last group, the NIK mask)."""
    count = 0
    for last in range(first, len(groups)):
        count += groups[last][1] - groups[last][0]
        if count == NIK_DIGITS:
            return last, partial_mask("NIK", _digits(view, groups, first, last))
        if count > NIK_DIGITS:
            return None
    return None
