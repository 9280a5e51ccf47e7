"""Text normalisation: unicode, casefold, repeated letters, numbers and a reviewed slang/dialect lexicon.

The lexicon is ours (``data/lexicon.csv``, chat abbreviations and Pontianak Malay) on top of a reviewed
subset of indo-normalizer's slang list (``data/slangs_indo_normalizer.csv``, MIT, see data/SOURCES.md).
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
LEXICON_FILES = (DATA_DIR / "lexicon.csv", DATA_DIR / "slangs_indo_normalizer.csv")
CUE_FILE = DATA_DIR / "cues.csv"

# Emoji residents send instead of words; the rest of the emoji are dropped.
EMOJI_WORDS = {
    "👍": " oke ",
    "👌": " oke ",
    "🙏": " terima kasih ",
    "👋": " halo ",
    "❤": " terima kasih ",
    "🆘": " tolong darurat ",
    "🔥": " kebakaran ",
    "👎": " tidak ",
    "❌": " tidak ",
    "✅": " ya ",
}

_TICKET = re.compile(r"\badu\s*[-/ ]\s*\d{4}\s*[-/ ]\s*\d{3,8}\b")
# Permit numbers, also typed with spaces for dashes ("nib 2026 00311").
_PERMIT = re.compile(
    r"\b[a-z]{2,6}(?:\s*[-/]\s*\d{4}\s*[-/]\s*\d{3,6}\b|\s+(?:19|20)\d{2}\s+\d{3,6}\b(?![ -]*\d))"
)
_NIK = re.compile(r"(?<!\d)\d{16}(?!\d)")
_PHONE = re.compile(r"(?<![\d+])(?:\+62|62|0)[ -]?8\d{1,3}[ .-]?\d{3,4}[ .-]?\d{2,5}(?!\d)")
_LONG_NUMBER = re.compile(r"\d{5,}")
_REDUPLICATION = re.compile(r"\b([a-z]{3,})2\b")
_REPEATED = re.compile(r"([a-z])\1{2,}")
# "pagii", "iyaa", "heyy": a doubled last letter of a longer word is chat emphasis.
_DOUBLED_END = re.compile(r"\b([a-z]{2,}?)([a-z])\2\b")
# Pontianak Malay "-nye" is Indonesian "-nya" ("kantornye", "biayanye").
_NYE = re.compile(r"\b([a-z]{2,})nye\b")
_TOKEN = re.compile(r"[^\W_]+")

# Placeholder words that replace identifiers, so the classifier sees "a ticket number" not its digits.
TICKET_WORD = "nomortiket"
PERMIT_WORD = "nomorizin"
NIK_WORD = "nomornik"
PHONE_WORD = "nomorhp"
NUMBER_WORD = "angkapanjang"


def load_lexicon(paths: Iterable[Path] = LEXICON_FILES) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Read ``slang,formal`` CSV files; earlier files win. Keys and values are token tuples."""
    lexicon: dict[tuple[str, ...], tuple[str, ...]] = {}
    for path in paths:
        for first, second in _pairs(path):
            key = tuple(_TOKEN.findall(first.casefold()))
            value = tuple(_TOKEN.findall(second.casefold()))
            if key and key not in lexicon:
                lexicon[key] = value
    return lexicon


def _pairs(path: Path) -> Iterator[tuple[str, str]]:
    """The first two fields of each row of a data CSV (``#`` comment lines and the header skipped)."""
    with path.open(encoding="utf-8") as fh:
        rows = csv.reader(line for line in fh if not line.startswith("#"))
        next(rows, None)
        for row in rows:
            if len(row) >= 2:
                yield row[0], row[1]


@lru_cache(maxsize=1)
def default_lexicon() -> dict[tuple[str, ...], tuple[str, ...]]:
    """The packaged lexicon (loaded once)."""
    return load_lexicon()


def load_cues(path: Path = CUE_FILE) -> dict[str, str]:
    """Read ``word,cue`` rows: words that mark a kind of message (``danger``, …), keyed by the token
    the word normalises to (so "shopee" matches what the tokeniser makes of it)."""
    cues: dict[str, str] = {}
    for word_field, cue in _pairs(path):
        for word in {word_field.strip().casefold(), *tokens(word_field)}:
            if word:
                cues[word] = cue.strip()
    return cues


@lru_cache(maxsize=1)
def default_cues() -> dict[str, str]:
    """The packaged cue words (loaded once)."""
    return load_cues()


def fold(text: str) -> str:
    """Unicode-normalise, strip accents and control characters, casefold."""
    text = unicodedata.normalize("NFKC", text)
    for emoji, word in EMOJI_WORDS.items():
        if emoji in text:
            text = text.replace(emoji, word)
    decomposed = unicodedata.normalize("NFKD", text)
    chars = []
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category == "Mn":
            continue
        chars.append(" " if category[0] in "CZ" else ch)
    return "".join(chars).casefold()


def tokens(text: str, lexicon: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> list[str]:
    """Normalised tokens of ``text``: folded, identifiers replaced, repeats collapsed, slang mapped."""
    lex = default_lexicon() if lexicon is None else lexicon
    folded = fold(text)
    folded = _TICKET.sub(f" {TICKET_WORD} ", folded)
    folded = _PERMIT.sub(f" {PERMIT_WORD} ", folded)
    folded = _NIK.sub(f" {NIK_WORD} ", folded)
    folded = _PHONE.sub(f" {PHONE_WORD} ", folded)
    folded = _LONG_NUMBER.sub(f" {NUMBER_WORD} ", folded)
    folded = _REDUPLICATION.sub(r"\1 \1", folded)
    folded = _REPEATED.sub(r"\1", folded)
    folded = _DOUBLED_END.sub(r"\1\2", folded)
    folded = _NYE.sub(r"\1nya", folded)
    raw = _TOKEN.findall(folded)
    out: list[str] = []
    i = 0
    while i < len(raw):
        pair = (raw[i], raw[i + 1]) if i + 1 < len(raw) else None
        if pair is not None and pair in lex:
            out.extend(lex[pair])
            i += 2
            continue
        out.extend(lex.get((raw[i],), (raw[i],)))
        i += 1
    return out


def normalize(text: str, lexicon: dict[tuple[str, ...], tuple[str, ...]] | None = None) -> str:
    """The normalised text as one space-separated string (what the classifier reads)."""
    return " ".join(tokens(text, lexicon))
