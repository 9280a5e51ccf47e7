"""The knowledge base: documents and offices, read from YAML that city staff edit, validated on load.

A missing field, an unknown office key or a bad time raises :class:`KnowledgeError` naming the entry,
so a typo in the YAML fails ``make test`` instead of a conversation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

KNOWLEDGE_DIR = Path(__file__).parent
DOCUMENTS_FILE = KNOWLEDGE_DIR / "documents.yml"
OFFICES_FILE = KNOWLEDGE_DIR / "offices.yml"
LANGUAGES = ("id", "en")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_INTERVAL = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class KnowledgeError(ValueError):
    """The knowledge YAML is incomplete or malformed; the message names the entry and field."""


@dataclass(frozen=True, slots=True)
class Localized:
    """One text in Indonesian and English."""

    id: str
    en: str

    def get(self, lang: str) -> str:
        """The text in ``lang`` (Indonesian for unknown languages)."""
        return self.en if lang == "en" else self.id


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What a resident needs to know to obtain one document type."""

    key: str
    name: Localized
    short: Localized
    requirements: Mapping[str, tuple[str, ...]]
    fee: Localized
    processing_time: Localized
    offices: tuple[str, ...]
    online: Localized
    notes: Localized
    source: str
    verified: date
    verify_notes: str = ""


@dataclass(frozen=True, slots=True)
class DocumentBook:
    """Every document type, in the YAML's order, and the words that mark a follow-up question."""

    documents: Mapping[str, DocumentInfo]
    follow_up_words: frozenset[str]


Interval = tuple[time, time]


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening intervals per weekday (Monday = 0); gaps between intervals are breaks."""

    days: tuple[tuple[Interval, ...], ...]

    def on(self, weekday: int) -> tuple[Interval, ...]:
        """The intervals of one weekday (empty = closed)."""
        return self.days[weekday]


@dataclass(frozen=True, slots=True)
class Office:
    """A service office: where it is and when it serves."""

    key: str
    name: Localized
    short: Localized
    address: str
    lat: float
    lon: float
    hours: WeeklyHours
    services: Localized
    notes: Localized
    online: str
    source: str
    verified: date
    kecamatan: str | None = None
    open_on_cuti_bersama: bool = False
    verify_notes: str = ""


@dataclass(frozen=True, slots=True)
class KelurahanRule:
    """The generic rule for the 29 kantor lurah: shared hours, services and how to find one."""

    hours: WeeklyHours
    services: Localized
    where: Localized
    source: str
    verified: date


@dataclass(frozen=True, slots=True)
class OfficeBook:
    """Every named office and the kelurahan rule."""

    offices: Mapping[str, Office]
    kelurahan: KelurahanRule

    def camat_of(self, kecamatan_code: str) -> Office | None:
        """The kantor camat of a kecamatan (Kemendagri code such as 61.71.02)."""
        for office in self.offices.values():
            if office.kecamatan == kecamatan_code:
                return office
        return None


@lru_cache(maxsize=4)
def load_documents(path: Path = DOCUMENTS_FILE) -> DocumentBook:
    """Read and validate documents.yml (cached)."""
    raw = _read(path)
    entries = raw.get("documents")
    if not isinstance(entries, Mapping) or not entries:
        raise KnowledgeError(f"{path}: expected a `documents:` mapping")
    documents = {str(key): _document(str(key), entry) for key, entry in entries.items()}
    words = frozenset(str(w).casefold() for w in raw.get("follow_up_words") or [])
    return DocumentBook(documents, words)


@lru_cache(maxsize=4)
def load_offices(path: Path = OFFICES_FILE) -> OfficeBook:
    """Read and validate offices.yml (cached)."""
    raw = _read(path)
    schedules = {str(k): _weekly(f"schedules.{k}", v) for k, v in (raw.get("schedules") or {}).items()}
    entries = raw.get("offices")
    if not isinstance(entries, Mapping) or not entries:
        raise KnowledgeError(f"{path}: expected an `offices:` mapping")
    offices = {str(key): _office(str(key), entry, schedules) for key, entry in entries.items()}
    rule = raw.get("kelurahan")
    if not isinstance(rule, Mapping):
        raise KnowledgeError(f"{path}: expected a `kelurahan:` rule")
    kelurahan = KelurahanRule(
        hours=_hours("kelurahan", rule.get("hours"), schedules),
        services=_localized("kelurahan.services", rule.get("services")),
        where=_localized("kelurahan.where", rule.get("where")),
        source=_text("kelurahan.source", rule.get("source")),
        verified=_date("kelurahan.verified", rule.get("verified")),
    )
    return OfficeBook(offices, kelurahan)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise KnowledgeError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level")
    return data


def _document(key: str, entry: Any) -> DocumentInfo:
    where = f"documents.{key}"
    if not isinstance(entry, Mapping):
        raise KnowledgeError(f"{where}: expected a mapping")
    requirements = entry.get("requirements")
    if not isinstance(requirements, Mapping) or any(
        not isinstance(requirements.get(lang), list) or not requirements.get(lang) for lang in LANGUAGES
    ):
        raise KnowledgeError(f"{where}.requirements: expected a non-empty list for id and en")
    offices = entry.get("offices")
    if not isinstance(offices, list) or not offices:
        raise KnowledgeError(f"{where}.offices: expected a list of office keys")
    return DocumentInfo(
        key=key,
        name=_localized(f"{where}.name", entry.get("name")),
        short=_localized(f"{where}.short", entry.get("short")),
        requirements={lang: tuple(str(item) for item in requirements[lang]) for lang in LANGUAGES},
        fee=_localized(f"{where}.fee", entry.get("fee")),
        processing_time=_localized(f"{where}.processing_time", entry.get("processing_time")),
        offices=tuple(str(o) for o in offices),
        online=_localized(f"{where}.online", entry.get("online")),
        notes=_localized(f"{where}.notes", entry.get("notes")),
        source=_text(f"{where}.source", entry.get("source")),
        verified=_date(f"{where}.verified", entry.get("verified")),
        verify_notes=str(entry.get("verify_notes") or ""),
    )


def _office(key: str, entry: Any, schedules: Mapping[str, WeeklyHours]) -> Office:
    where = f"offices.{key}"
    if not isinstance(entry, Mapping):
        raise KnowledgeError(f"{where}: expected a mapping")
    try:
        lat, lon = float(entry["lat"]), float(entry["lon"])
    except (KeyError, TypeError, ValueError):
        raise KnowledgeError(f"{where}: expected numeric lat and lon") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise KnowledgeError(f"{where}: lat/lon out of range")
    notes = entry.get("notes") or {"id": "", "en": ""}
    return Office(
        key=key,
        name=_localized(f"{where}.name", entry.get("name")),
        short=_localized(f"{where}.short", entry.get("short")),
        address=_text(f"{where}.address", entry.get("address")),
        lat=lat,
        lon=lon,
        hours=_hours(where, entry.get("hours"), schedules),
        services=_localized(f"{where}.services", entry.get("services")),
        notes=_localized(f"{where}.notes", notes, allow_empty=True),
        online=str(entry.get("online") or ""),
        source=_text(f"{where}.source", entry.get("source")),
        verified=_date(f"{where}.verified", entry.get("verified")),
        kecamatan=str(entry["kecamatan"]) if entry.get("kecamatan") else None,
        open_on_cuti_bersama=bool(entry.get("open_on_cuti_bersama", False)),
        verify_notes=str(entry.get("verify_notes") or ""),
    )


def _hours(where: str, value: Any, schedules: Mapping[str, WeeklyHours]) -> WeeklyHours:
    if isinstance(value, str):
        if value not in schedules:
            raise KnowledgeError(f"{where}.hours: unknown schedule {value!r}")
        return schedules[value]
    return _weekly(f"{where}.hours", value)


def _weekly(where: str, value: Any) -> WeeklyHours:
    if not isinstance(value, Mapping):
        raise KnowledgeError(f"{where}: expected a mapping of days to opening intervals")
    days: dict[int, tuple[Interval, ...]] = {}
    for spec, intervals in value.items():
        for day in _day_range(where, str(spec)):
            days[day] = _intervals(f"{where}.{spec}", intervals)
    missing = [WEEKDAYS[d] for d in range(7) if d not in days]
    if missing:
        raise KnowledgeError(f"{where}: no hours for {', '.join(missing)} (use [] for closed)")
    return WeeklyHours(tuple(days[d] for d in range(7)))


def _day_range(where: str, spec: str) -> Sequence[int]:
    first, _, last = spec.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise KnowledgeError(
            f"{where}: unknown day {spec!r} (use {', '.join(WEEKDAYS)} or ranges like mon-thu)"
        )
    start = WEEKDAYS.index(first)
    end = WEEKDAYS.index(last) if last else start
    if end < start:
        raise KnowledgeError(f"{where}: day range {spec!r} runs backwards")
    return range(start, end + 1)


def _intervals(where: str, value: Any) -> tuple[Interval, ...]:
    if not isinstance(value, list):
        raise KnowledgeError(f'{where}: expected a list like ["07:30-12:00"]')
    result: list[Interval] = []
    for item in value:
        match = _INTERVAL.match(str(item))
        if match is None:
            raise KnowledgeError(f"{where}: {item!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        opens, closes = time(h1, m1), time(h2, m2)
        if closes <= opens or (result and opens < result[-1][1]):
            raise KnowledgeError(f"{where}: {item!r} overlaps or runs backwards")
        result.append((opens, closes))
    return tuple(result)


def _localized(where: str, value: Any, *, allow_empty: bool = False) -> Localized:
    if not isinstance(value, Mapping):
        raise KnowledgeError(f"{where}: expected id and en texts")
    texts = {lang: str(value.get(lang) or "").strip() for lang in LANGUAGES}
    if not allow_empty and not all(texts.values()):
        raise KnowledgeError(f"{where}: needs a text in both id and en")
    return Localized(texts["id"], texts["en"])


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{where}: expected a non-empty text")
    return value.strip()


def _date(where: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise KnowledgeError(f"{where}: expected a date YYYY-MM-DD") from None
