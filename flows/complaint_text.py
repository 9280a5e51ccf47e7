"""What residents type in the complaint flow: word lists, descriptions, places and addresses.

Places are Kota Pontianak's kecamatan and kelurahan by Kemendagri code (``nlu`` resolves the names);
a typed text that is not one may still be an address, and the city's bounding box tells a shared pin
inside the city from one outside.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from flows.engine import FlowContext
from nlu.entities import load_locations, resolve_location
from nlu.result import ParseResult

KANTOR_CAMAT = "kantor_camat_pontianak_"
MIN_DESCRIPTION_WORDS = 3
MIN_DESCRIPTION_CHARS = 12
MAX_DESCRIPTION_CHARS = 1000

WORD = re.compile(r"[^\W_]+")


def word_set(text: str) -> frozenset[str]:
    """A word list written as one string (easier to read and extend than a literal of quoted words)."""
    return frozenset(text.split())


# Words that say "I want to report" without saying what is wrong: a first message made only of
# these (and a category) is not a description yet.
FILLER_WORDS = word_set(
    "saya aku sy gw gue kami kamek mau ingin pengen pingin nak lapor melapor laporkan melaporkan "
    "laporan pengaduan aduan mengadu adukan komplain keluhan tolong mohon min admin kak pak bu bang "
    "ada nih dong ya yg yang buat bikin membuat ini itu i want to report a an complaint about there "
    "is please file"
)
SKIP_WORDS = frozenset(
    {"lewati", "lewat", "skip", "tidak ada", "gak ada", "ga ada", "nggak ada", "ndak ada", "tidak", "no"}
)
SEND_WORDS = frozenset({"kirim", "kirimkan", "send", "ok kirim", "sudah benar", "benar"})
# A typed place that is not a kelurahan may still be an address: these words say it is one.
ADDRESS_WORDS = word_set(
    "jl jln jalan gg gang komplek komp kompleks perumahan perum depan dekat samping belakang seberang "
    "simpang persimpangan parit rt rw no nomor blok street road near"
)
# Words around a place name that do not make it an address ("di kelurahan Sungai Jawi").
PLACE_PREFIXES = word_set(
    "di ke daerah wilayah sekitar kel kelurahan kec kecamatan desa kota pontianak in at"
)
# Neighbouring regencies and other towns residents name: refused politely as outside the city.
OUTSIDE_PLACES = (
    "kubu raya",
    "mempawah",
    "sungai raya",
    "ambawang",
    "sungai kakap",
    "rasau jaya",
    "landak",
    "singkawang",
    "sambas",
    "sanggau",
    "sintang",
    "ketapang",
    "jakarta",
    "kuching",
)


@dataclass(frozen=True, slots=True)
class CityBounds:
    """A latitude/longitude box around Kota Pontianak."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point lies inside the box."""
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


# Kota Pontianak spans 0°02'24" N to 0°05'37" S and 109°16'25" E to 109°23'01" E (RPJMD Kota
# Pontianak, "Kondisi Fisik Dasar"; the same extents in BPS "Kota Pontianak Dalam Angka"), i.e.
# lat +0.0400..-0.0936, lon 109.2736..109.3836; the box adds ~330 m (0.003°) for GPS error. It is
# NOT -0.10..0.00: Pontianak Utara lies partly north of the equator (Tugu Khatulistiwa at lat 0.000,
# Batu Layang, Siantan Hulu). Our kelurahan data (nlu/data/pontianak_wilayah.csv) has codes and
# names but no coordinates, so this is a box, not the boundary polygon: near its edges it also
# admits some land of Kubu Raya and Mempawah (staff see the pin). Every office coordinate in
# flows/knowledge/offices.yml lies inside (tests/flows/test_complaint.py checks).
CITY_BOUNDS = CityBounds(min_lat=-0.0966, max_lat=0.0430, min_lon=109.2706, max_lon=109.3866)


def describes_problem(text: str) -> bool:
    """True when a first message already says what is wrong (beyond "mau lapor" and a category word)."""
    words = [w for w in WORD.findall(text.casefold()) if w not in FILLER_WORDS]
    return len(words) >= MIN_DESCRIPTION_WORDS


def long_enough(text: str) -> bool:
    return len(WORD.findall(text)) >= MIN_DESCRIPTION_WORDS and len(text) >= MIN_DESCRIPTION_CHARS


def clean_text(text: str) -> str:
    return " ".join(text.split())[:MAX_DESCRIPTION_CHARS]


def place_code(nlu: ParseResult, text: str) -> str | None:
    """The Kemendagri code of the kelurahan/kecamatan named (button entity, NLU entity, or fuzzy match)."""
    code = nlu.entity("location") or kecamatan_of_office(nlu.entity("office"))
    if code is None and text:
        entity = resolve_location(text)
        code = entity.value if entity is not None else None
    return code if code in places() else None


def kecamatan_of_office(office: str | None) -> str | None:
    """The kecamatan of a kantor camat named as a landmark ("depan kantor camat Pontianak Kota")."""
    if not office or not office.startswith(KANTOR_CAMAT):
        return None
    wanted = "pontianak " + office[len(KANTOR_CAMAT) :].replace("_", " ")
    for place in places().values():
        if place.level == "kecamatan" and place.name.casefold() == wanted:
            return place.code
    return None


def address_around_place(nlu: ParseResult, text: str) -> str | None:
    """The typed text as an address, unless it is only the place name ("di Sungai Jawi")."""
    spans = [(e.start, e.end) for e in nlu.entities if e.entity == "location" and e.extractor != "payload"]
    if not spans and text:
        found = resolve_location(text)
        spans = [(found.start, found.end)] if found is not None else []
    rest = text
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    words = [w for w in WORD.findall(rest.casefold()) if w not in PLACE_PREFIXES]
    return clean_text(text) if words else None


def names_outside(text: str) -> bool:
    folded = " ".join(WORD.findall(text.casefold()))
    return any(re.search(rf"\b{re.escape(place)}\b", folded) for place in OUTSIDE_PLACES)


def looks_like_address(text: str) -> bool:
    words = WORD.findall(text.casefold())
    return len(words) >= 2 and any(word in ADDRESS_WORDS for word in words)


@dataclass(frozen=True, slots=True)
class Place:
    """A kelurahan or kecamatan of Kota Pontianak by Kemendagri code."""

    code: str
    level: str
    name: str
    kecamatan: str


@lru_cache(maxsize=1)
def places() -> dict[str, Place]:
    return {loc.code: Place(loc.code, loc.level, loc.name, loc.kecamatan) for loc in load_locations()}


def place_name(ctx: FlowContext, code: str) -> str | None:
    """ "Kel. Sungai Jawi, Kec. Pontianak Kota" for a Kemendagri code (None when it is not ours)."""
    place = places().get(code)
    if place is None:
        return None
    if place.level == "kecamatan":
        return ctx.t("complaints.place_kecamatan", name=place.name)
    return ctx.t("complaints.place_kelurahan", name=place.name, kecamatan=place.kecamatan)


def describe_location(
    ctx: FlowContext, lat: float | None, lon: float | None, address: str | None, kelurahan: str | None
) -> str:
    """The place as the resident reads it: address, kelurahan, and/or the pin's coordinates."""
    parts = [address] if address else []
    area = place_name(ctx, kelurahan) if kelurahan else None
    if area and (not address or area.casefold() not in address.casefold()):
        parts.append(area)
    if lat is not None and lon is not None and not (math.isnan(lat) or math.isnan(lon)):
        parts.append(ctx.t("complaints.location_pin", lat=f"{lat:.5f}", lon=f"{lon:.5f}"))
    return " · ".join(parts) or ctx.t("complaints.location_unknown")
