"""Entity extraction: regexes (permit, ticket, NIK, phone) and fuzzy lookups mapped to canonical values.

Canonical values are DESIGN 3.2. Lookups come from ``data/nlu/entities.yml`` (Rasa lookup tables and
synonyms) and, for locations, from ``data/pontianak_wilayah.csv`` (Kemendagri codes, both spellings;
MIT, see data/SOURCES.md). Spans (``start``/``end``) index the original text.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rapidfuzz import fuzz, process

from nlu.errors import TrainingDataError
from nlu.result import Entity
from nlu.training_data import load_file

DATA_DIR = Path(__file__).with_name("data")
ENTITIES_FILE = DATA_DIR / "nlu" / "entities.yml"
WILAYAH_FILE = DATA_DIR / "pontianak_wilayah.csv"

PERMIT_NUMBER_PATTERN = r"[A-Z]{2,6}-\d{4}-\d{3,6}"
TICKET_NUMBER_PATTERN = r"ADU-\d{4}-\d{6}"

DOCUMENT_TYPES = (
    "ktp_el",
    "kk",
    "akta_kelahiran",
    "akta_kematian",
    "akta_perkawinan",
    "akta_perceraian",
    "kia",
    "pindah_datang",
    "pbg",
    "slf",
    "nib",
    "izin_reklame",
    "sktm",
)
COMPLAINT_CATEGORIES = (
    "road_damage",
    "street_light",
    "garbage",
    "drainage_flood",
    "fallen_tree",
    "clean_water",
    "illegal_parking",
    "public_facility",
    "public_service",
    "other",
)
OFFICES = (
    "disdukcapil",
    "dpmptsp",
    "mpp",
    "kantor_camat_pontianak_selatan",
    "kantor_camat_pontianak_timur",
    "kantor_camat_pontianak_barat",
    "kantor_camat_pontianak_utara",
    "kantor_camat_pontianak_kota",
    "kantor_camat_pontianak_tenggara",
    "kantor_lurah",
)
CANONICAL_VALUES: dict[str, tuple[str, ...]] = {
    "document_type": DOCUMENT_TYPES,
    "complaint_category": COMPLAINT_CATEGORIES,
    "office": OFFICES,
}

# Kelurahan names that are everyday words: only recognised after "kelurahan"/"kel".
_NEEDS_PREFIX = {"tengah"}
_KELURAHAN_PREFIXES: tuple[tuple[str, ...], ...] = (("kelurahan",), ("kel",), ("desa",))
_KECAMATAN_PREFIXES: tuple[tuple[str, ...], ...] = (("kecamatan",), ("kec",))
_CITY_ALIASES = (("pontianak",), ("ptk",), ("pnk",))
_TOKEN = re.compile(r"[^\W_]+")
_NIK = re.compile(r"(?<![\d-])\d{2}[ .]?\d{2}[ .]?\d{2}[ .]?\d{6}[ .]?\d{4}(?![\d-])")
_PHONE = re.compile(r"(?<![\d+])(?:\+62|62|0)[ -]?8\d{1,3}[ .-]?\d{3,4}[ .-]?\d{2,5}(?!\d)")
_TICKET = re.compile(r"(?<![A-Za-z0-9])ADU\s*[-/ ]\s*(\d{4})\s*[-/ ]\s*(\d{6})(?!\d)", re.IGNORECASE)
# A permit number typed with spaces for its dashes ("nib 2026 00311"), kept if the dashed form
# matches the configured pattern.
_SPACED_PERMIT = re.compile(
    r"(?<![A-Za-z0-9-])([A-Za-z]{2,6}) +((?:19|20)\d{2}) +(\d{3,6})(?![A-Za-z0-9])(?![ -]*\d)"
)
_MAX_ENTITY_CHARS = 4000
_FUZZY_CUTOFF = 86.0
_FUZZY_CUTOFF_LONG = 80.0
# Residents attach the possessive/definite clitic to the very word that names the problem
# ("lubangnya besar", "lampunye mati"): a lookup also matches with it removed.
_CLITICS = ("nya", "nye")
_CLITIC_MIN_STEM = 3


def validate_nik(value: str) -> bool:
    """True when ``value`` is a structurally valid 16-digit NIK (lokal-id; spaces and dots allowed)."""
    try:
        from lokal import parse_nik  # deferred: importing lokal-id costs ~0.2 s of start-up

        return bool(parse_nik(str(value)).valid)
    except (ValueError, TypeError):
        return False


def _fold_char(ch: str) -> str:
    decomposed = unicodedata.normalize("NFKD", ch)
    kept = [c for c in decomposed if unicodedata.category(c) != "Mn"]
    folded = "".join(kept).casefold()
    if len(folded) != 1 or unicodedata.category(folded)[0] in "CZ":
        return folded[0] if len(folded) > 1 and folded[0].isalnum() else " "
    return folded


@lru_cache(maxsize=4096)
def _fold_char_cached(ch: str) -> str:
    return _fold_char(ch)


def fold_same_length(text: str) -> str:
    """Casefold and strip accents keeping one character per input character (offsets stay valid)."""
    if text.isascii():
        return text.lower()
    return "".join(_fold_char_cached(ch) for ch in text)


def _collapse(token: str) -> str:
    """Collapse letters repeated three or more times ("sampahhh" → "sampah")."""
    return re.sub(r"([a-z])\1{2,}", r"\1", token)


def _key(text: str) -> tuple[str, ...]:
    return tuple(_collapse(tok) for tok in _TOKEN.findall(fold_same_length(text)))


def _without_clitic(token: str) -> str:
    """The word without a trailing "-nya"/"-nye" ("lubangnya" → "lubang", "lampunye" → "lampu")."""
    if len(token) >= _CLITIC_MIN_STEM + 3 and token.endswith(_CLITICS):
        return token[:-3]
    return token


@dataclass(frozen=True, slots=True)
class _Entry:
    entity: str
    value: str
    prefix_len: int = 0  # leading tokens ("kelurahan") that are not part of the entity's span


@dataclass(frozen=True, slots=True)
class Location:
    """A kelurahan or kecamatan of Kota Pontianak."""

    code: str
    level: str
    name: str
    kecamatan: str
    aliases: tuple[str, ...]


def load_locations(path: Path = WILAYAH_FILE) -> list[Location]:
    """Kelurahan and kecamatan of ``pontianak_wilayah.csv`` (city row skipped)."""
    rows: list[Location] = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["level"] not in {"kelurahan", "kecamatan"}:
                continue
            aliases = [row["nama"], *[a for a in row["nama_alternatif"].split("|") if a]]
            rows.append(
                Location(row["kode"], row["level"], row["nama"], row["kecamatan_nama"], tuple(aliases))
            )
    return rows


def _location_keys(loc: Location) -> Iterable[tuple[tuple[str, ...], int]]:
    """Token keys for one location (with the number of prefix tokens outside the span)."""
    names: set[tuple[str, ...]] = set()
    for alias in loc.aliases:
        key = _key(alias)
        if key[:1] in {("kec",), ("kecamatan",)}:
            key = key[1:]
        names.add(key)
        if key and key[0] == "sungai":
            for short in ("sei", "sui", "sg", "sungei"):
                names.add((short, *key[1:]))
            names.add(("sungai" + key[1], *key[2:]) if len(key) > 1 else key)
    if loc.level == "kecamatan":
        direction = _key(loc.name)[1:]
        for city in _CITY_ALIASES:
            names.add(city + direction)
        for prefix in _KECAMATAN_PREFIXES:
            yield prefix + direction, len(prefix)
        prefixes = _KECAMATAN_PREFIXES
    else:
        prefixes = _KELURAHAN_PREFIXES
    for name in sorted(names):
        if not name:
            continue
        if " ".join(name) not in _NEEDS_PREFIX:
            yield name, 0
        for prefix in prefixes:
            yield prefix + name, len(prefix)


class EntityExtractor:
    """Finds entities in a message: regexes first, then the longest lookup match, then fuzzy matches."""

    def __init__(
        self,
        lookups: dict[tuple[str, ...], _Entry],
        *,
        permit_pattern: str | None = None,
        known_words: Iterable[str] = (),
    ) -> None:
        self._lookups = lookups
        self._max_len = max((len(k) for k in lookups), default=1)
        pattern = permit_pattern or PERMIT_NUMBER_PATTERN
        try:
            re.compile(pattern)
            self._permit = re.compile(rf"(?<![A-Za-z0-9-])(?:{pattern})(?![A-Za-z0-9])", re.I)
            self._permit_value = re.compile(pattern, re.I)
        except re.error as exc:
            raise ValueError(f"permit_pattern {pattern!r} is not a valid regex: {exc}") from exc
        self._known = {w for k in lookups for w in k}
        self._choices: dict[int, list[str]] = {}
        self._choice_keys: dict[str, tuple[str, ...]] = {}
        for key in lookups:
            joined = " ".join(key)
            if len(joined) >= 5 and len(key) <= 3:
                self._choices.setdefault(len(key), []).append(joined)
                self._choice_keys[joined] = key
        self._fuzzy_cache: dict[str, tuple[str, ...] | None] = {}
        # Words of the training data skip fuzzy matching, unless they look like a lookup (a typo).
        for word in known_words:
            if word in self._known or not word.isalpha():
                continue
            if len(word) < 5 or self._best(word, 1) is None:
                self._known.add(word)

    def extract(self, text: str) -> tuple[Entity, ...]:
        """All entities of ``text`` with canonical values, ordered by position."""
        text = text[:_MAX_ENTITY_CHARS]
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def free(start: int, end: int) -> bool:
            return all(end <= s or start >= e for s, e in taken)

        for m in _TICKET.finditer(text):
            found.append(
                Entity(
                    "ticket_number",
                    f"ADU-{m.group(1)}-{m.group(2)}",
                    m.start(),
                    m.end(),
                    1.0,
                    "regex",
                    m.group(0),
                )
            )
            taken.append((m.start(), m.end()))
        for m in self._permit.finditer(text):
            if free(m.start(), m.end()):
                value = re.sub(r"\s+", "", m.group(0)).upper()
                found.append(Entity("permit_number", value, m.start(), m.end(), 1.0, "regex", m.group(0)))
                taken.append((m.start(), m.end()))
        for m in _SPACED_PERMIT.finditer(text):
            value = f"{m.group(1).upper()}-{m.group(2)}-{m.group(3)}"
            if free(m.start(), m.end()) and self._permit_value.fullmatch(value):
                found.append(Entity("permit_number", value, m.start(), m.end(), 1.0, "regex", m.group(0)))
                taken.append((m.start(), m.end()))
        for m in _NIK.finditer(text):
            if free(m.start(), m.end()):
                digits = re.sub(r"\D", "", m.group(0))
                taken.append((m.start(), m.end()))
                if validate_nik(digits):
                    found.append(Entity("nik", digits, m.start(), m.end(), 1.0, "regex", m.group(0)))
        for m in _PHONE.finditer(text):
            if free(m.start(), m.end()):
                from lokal import parse_phone  # deferred like parse_nik above

                info = parse_phone(m.group(0))
                if info.valid and info.e164:
                    found.append(Entity("phone", info.e164, m.start(), m.end(), 1.0, "regex", m.group(0)))
                    taken.append((m.start(), m.end()))
        found.extend(self._lookup(text, free))
        found.sort(key=lambda e: (e.start, e.end))
        return tuple(found)

    def _lookup(self, text: str, free: object) -> list[Entity]:
        folded = fold_same_length(text)
        toks = [(_collapse(m.group(0)), m.start(), m.end()) for m in _TOKEN.finditer(folded)]
        is_free = free if callable(free) else (lambda _s, _e: True)
        out: list[Entity] = []
        i = 0
        n = len(toks)
        while i < n:
            hit = None
            for size in range(min(self._max_len, n - i), 0, -1):
                key = tuple(t[0] for t in toks[i : i + size])
                entry = self._lookups.get(key)
                if entry is None:
                    bare = tuple(_without_clitic(t) for t in key)
                    entry = self._lookups.get(bare) if bare != key else None
                if entry is not None:
                    hit = (entry, size, 1.0, "lookup")
                    break
            exact_size = hit[1] if hit is not None else 0
            if exact_size < 3 and any(t[0] not in self._known and t[0].isalpha() for t in toks[i : i + 3]):
                fuzzy = self._fuzzy(toks, i, min_size=exact_size + 1)
                if fuzzy is not None:
                    hit = fuzzy
            if hit is None:
                i += 1
                continue
            entry, size, confidence, extractor = hit
            start = toks[i + entry.prefix_len][1]
            end = toks[i + size - 1][2]
            if is_free(toks[i][1], end):
                out.append(
                    Entity(entry.entity, entry.value, start, end, confidence, extractor, text[start:end])
                )
            i += size
        return out

    def _fuzzy(
        self, toks: list[tuple[str, int, int]], i: int, *, min_size: int = 1
    ) -> tuple[_Entry, int, float, str] | None:
        for size in (3, 2, 1):
            if size < min_size or i + size > len(toks):
                continue
            window = toks[i : i + size]
            if all(t[0] in self._known or not t[0].isalpha() for t in window):
                continue
            query = " ".join(t[0] for t in window)
            if size == 1 and len(query) < 5:
                continue
            key = self._best(query, size)
            if key is not None:
                score = fuzz.ratio(query, " ".join(key)) / 100.0
                return self._lookups[key], size, round(score, 3), "fuzzy"
        return None

    def _best(self, query: str, size: int) -> tuple[str, ...] | None:
        cache_key = f"{size}|{query}"
        if cache_key in self._fuzzy_cache:
            return self._fuzzy_cache[cache_key]
        choices = self._choices.get(size, [])
        # Longer phrases tolerate two typos ("paret tokaye"); short words only one.
        cutoff = _FUZZY_CUTOFF_LONG if len(query) >= 10 else _FUZZY_CUTOFF
        match = process.extractOne(query, choices, scorer=fuzz.ratio, score_cutoff=cutoff)
        result = self._choice_keys[match[0]] if match else None
        if len(self._fuzzy_cache) < 100_000:
            self._fuzzy_cache[cache_key] = result
        return result


def build_lookups(
    entities_file: Path = ENTITIES_FILE, wilayah_file: Path = WILAYAH_FILE
) -> dict[tuple[str, ...], _Entry]:
    """Token-tuple → entry map from the Rasa lookups/synonyms and the wilayah CSV."""
    data = load_file(entities_file)
    lookups: dict[tuple[str, ...], _Entry] = {}
    for entity, allowed in CANONICAL_VALUES.items():
        for surface in data.lookups.get(entity, []):
            value = data.synonyms.get(surface.casefold(), surface)
            if value not in allowed:
                raise TrainingDataError(
                    f"{entities_file}: lookup {entity!r} maps {surface!r} to {value!r}, "
                    f"which is not one of {', '.join(allowed)}"
                )
            key = _key(surface)
            if key:
                lookups.setdefault(key, _Entry(entity, value))
    for loc in load_locations(wilayah_file):
        for key, prefix_len in _location_keys(loc):
            lookups.setdefault(key, _Entry("location", loc.code, prefix_len))
    return lookups


@lru_cache(maxsize=8)
def default_extractor(permit_pattern: str | None = None) -> EntityExtractor:
    """The packaged extractor (built once per permit pattern)."""
    return EntityExtractor(build_lookups(), permit_pattern=permit_pattern)


@lru_cache(maxsize=1)
def _location_choices() -> dict[str, str]:
    choices: dict[str, str] = {}
    for loc in load_locations():
        for key, _prefix in _location_keys(loc):
            choices.setdefault(" ".join(key), loc.code)
    return choices


def resolve_location(text: str) -> Entity | None:
    """The kelurahan or kecamatan named in ``text`` (either spelling, typos tolerated), if any."""
    for ent in default_extractor().extract(text):
        if ent.entity == "location":
            return ent
    folded = " ".join(_key(text[:200]))
    if len(folded) < 4:
        return None
    choices = _location_choices()
    match = process.extractOne(folded, list(choices), scorer=fuzz.ratio, score_cutoff=80.0)
    if match is None:
        return None
    stripped = text.strip()
    start = text.find(stripped) if stripped else 0
    return Entity(
        "location",
        choices[match[0]],
        start,
        start + len(stripped),
        round(match[1] / 100, 3),
        "fuzzy",
        stripped,
    )


def locations_rasa_yaml(path: Path = WILAYAH_FILE) -> str:
    """Rasa YAML (lookup ``location`` + synonyms to Kemendagri codes) generated from the wilayah CSV."""
    lines = [
        'version: "3.1"',
        "",
        "# Generated from nlu/data/pontianak_wilayah.csv by nlu.entities.locations_rasa_yaml();",
        "# source cahyadsn/wilayah, lokal-id, areaid (MIT), see nlu/data/SOURCES.md.",
        "nlu:",
        "- lookup: location",
        "  examples: |",
    ]
    locations = load_locations(path)
    by_code: dict[str, list[str]] = {}
    for loc in locations:
        forms = by_code.setdefault(loc.code, [])
        keys = list(_location_keys(loc))
        plain = [key for key, prefix_len in keys if prefix_len == 0]
        for key in plain or [key for key, _ in keys]:
            form = " ".join(key)
            if form not in forms:
                forms.append(form)
    seen: set[str] = set()
    for forms in by_code.values():
        for form in forms:
            if form not in seen:
                seen.add(form)
                lines.append(f"    - {form}")
    used: set[str] = set()
    for code, forms in by_code.items():
        lines.append(f'- synonym: "{code}"')
        lines.append("  examples: |")
        for form in forms:
            if form not in used:
                used.add(form)
                lines.append(f"    - {form}")
    return "\n".join(lines) + "\n"
