"""Masking of NIK and phone numbers however they are written, of profile names, and of bidi controls.

Detection runs on a normalised view of the text (NFKC, zero-width and other format characters left
out), so a NIK with dots, dashes or zero-width spaces between its digits is masked like a plain one.
Ticket and permit numbers, dates, clock times, kelurahan codes and amounts are not personal data and
pass unchanged. The properties are checked with hypothesis over numbers written with any separators.
"""

from __future__ import annotations

import logging
import re
import unicodedata

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bot.privacy import MaskingFilter, mask_name, mask_text, neutralise_bidi
from storage.masking import is_schedule_or_amount, mask_personal

NIK = "6171015508900003"
ZWSP = "\u200b"
BIDI = [*"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"]
# What a separator may be once detection has normalised the text.
VISIBLE_SEPARATORS = [" ", ".", "-", " - ", "\u00a0", "\u2009", "\u2013"]
INVISIBLE_SEPARATORS = [ZWSP, "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u2066"]
STRIPPED = re.compile(r"[\s.\-\u2010-\u2015]")

# Province codes of Indonesia: the first two digits of every NIK.
PROVINCES = [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63, 64, 65]
PROVINCES += [71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96, 97]


def view(text: str) -> str:
    """The text as a reader sees it: NFKC, no format characters."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch) != "Cf")


def digits_only(text: str) -> str:
    """The text's numbers as a reader sees them: no format characters, no separators."""
    return STRIPPED.sub("", view(text))


@st.composite
def niks(draw: st.DrawFn) -> str:
    """A structurally real NIK: province, regency, district, birth date (+40 for women), serial."""
    province = draw(st.sampled_from(PROVINCES))
    regency, district = draw(st.integers(1, 79)), draw(st.integers(1, 40))
    day = draw(st.integers(1, 28)) + draw(st.sampled_from([0, 40]))
    month, year = draw(st.integers(1, 12)), draw(st.integers(0, 99))
    serial = draw(st.integers(1, 9999))
    return f"{province:02d}{regency:02d}{district:02d}{day:02d}{month:02d}{year:02d}{serial:04d}"


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str]:
    """(prefix, subscriber digits) of an Indonesian mobile number: 0 / 62 / +62, then 8…, 9-12 digits."""
    rest = draw(st.text(alphabet="0123456789", min_size=6, max_size=9))
    operator = draw(st.integers(11, 99).filter(lambda n: n % 10 != 0))
    return draw(st.sampled_from(["0", "62", "+62"])), f"8{operator:02d}{rest}"


def written(draw: st.DrawFn, digits: str, *, fullwidth: bool = True) -> str:
    """``digits`` with any separators between them (most positions none), maybe as full-width digits."""
    out = []
    for i, digit in enumerate(digits):
        if i:
            out.append(
                draw(
                    st.one_of(
                        st.just(""),
                        st.sampled_from(VISIBLE_SEPARATORS),
                        st.sampled_from(INVISIBLE_SEPARATORS),
                    )
                )
            )
        wide = fullwidth and draw(st.booleans()) and draw(st.booleans())
        out.append(chr(ord(digit) + 0xFEE0) if wide else digit)
    return "".join(out)


CONTEXTS = st.tuples(
    st.sampled_from(["", "NIK saya ", "hp: ", "tolong cek ", "KK-", "(", "no "]),
    st.sampled_from(["", " ya", ".", ", terima kasih", " 🙏", ")", "\n"]),
)


@st.composite
def nik_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(a sentence holding a NIK written any way, the NIK)."""
    nik = draw(niks())
    number = written(draw, nik)
    # A NIK whose groups all read as times, dates or amounts is the documented exception.
    assume(not is_schedule_or_amount(view(number)))
    before, after = draw(CONTEXTS)
    return f"{before}{number}{after}", nik


@st.composite
def phone_texts(draw: st.DrawFn) -> tuple[str, str]:
    """(a sentence holding a mobile number written any way, its digits after 0 / 62)."""
    prefix, subscriber = draw(mobiles())
    joint = draw(st.sampled_from(["", " ", "-", "."])) if prefix != "0" else ""
    number = f"{prefix}{joint}{written(draw, subscriber)}"
    # "62.812.345.678" is written like an amount (62 billion): the documented exception.
    assume(not is_schedule_or_amount(view(number).lstrip("+")))
    before, after = draw(CONTEXTS)
    return f"{before}{number}{after}", subscriber


@settings(max_examples=400, deadline=None)
@given(nik_texts())
@example(("NIK 6171.0101.0101.0003", "6171010101010003"))
@example((f"6171{ZWSP}0101{ZWSP}0101{ZWSP}0003", "6171010101010003"))
@example(("61.71.01.550890.0003 sudah benar", NIK))
def test_a_nik_written_any_way_is_masked(case: tuple[str, str]) -> None:
    text, nik = case
    masked = mask_text(text)
    assert nik not in digits_only(masked)
    assert mask_text(masked) == masked


@settings(max_examples=400, deadline=None)
@given(phone_texts())
@example(("0812-5678-0003", "81256780003"))
@example(("+62 812 5678 0003", "81256780003"))
@example(("wa 0812 5678 0003 2026", "81256780003"))
def test_a_mobile_number_written_any_way_is_masked(case: tuple[str, str]) -> None:
    text, subscriber = case
    masked = mask_text(text)
    assert subscriber not in digits_only(masked)
    assert mask_text(masked) == masked


@st.composite
def not_personal(draw: st.DrawFn) -> str:
    year = draw(st.integers(2020, 2035))
    return draw(
        st.sampled_from(
            [
                f"ADU-{year}-{draw(st.integers(0, 999999)):06d}",
                f"PBG-{year}-{draw(st.integers(0, 99999)):05d}",
                f"{draw(st.integers(1, 28)):02d}/{draw(st.integers(1, 12)):02d}/{year}",
                f"{draw(st.integers(1, 28))}-{draw(st.integers(1, 12)):02d}-{year}",
                f"{year}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}",
                f"{draw(st.integers(0, 23)):02d}.{draw(st.integers(0, 59)):02d}",
                f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d} WIB",
                f"Rp {draw(st.integers(1, 999))}.{draw(st.integers(0, 999)):03d}",
                "Rp" + f"{draw(st.integers(1000, 10**12)):,}".replace(",", ".") + ",00",
                f"61.71.0{draw(st.integers(1, 6))}.{draw(st.integers(1001, 1010))}",
            ]
        )
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(not_personal(), min_size=1, max_size=6), st.sampled_from([", ", " dan ", "; ", "\n"]))
def test_ticket_permit_dates_times_amounts_and_codes_are_unchanged(parts: list[str], joint: str) -> None:
    text = joint.join(parts)
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "laporan ADU-2026-000123 dan izin PBG-2026-00123",
        "Senin–Jumat 07.30–16.00, istirahat 12.00–13.00",
        "jam 08.00-12.00 13.00-16.00 WIB",
        "tanggal 12-03-2026 08.00-12.00 13.00",
        "biaya Rp 150.000, denda Rp 1.500.000,00",
        "anggaran 62.800.000.000 untuk jalan",
        "kelurahan 61.71.01.1004",
        "chat …7890",
    ],
)
def test_text_without_personal_data_is_unchanged(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NIK 6171.0101.0101.0003", "NIK 6171********0003"),
        (f"NIK 6171{ZWSP}0101{ZWSP}0101{ZWSP}0003.", "NIK 6171********0003."),
        ("hp 0812-5678-0003", "hp 0812****0003"),
        ("hp +62 812 5678 0003", "hp 0812****0003"),
        ("wa 0812 5678 0003 2026", "wa 0812****0003 2026"),
        ("NIK ６１７１０１０１０１０１０００３", "NIK 6171********0003"),
    ],
)
def test_masks_after_normalising(text: str, expected: str) -> None:
    assert mask_personal(text) == expected


@pytest.mark.parametrize("control", BIDI)
def test_bidi_controls_are_shown_as_visible_marks(control: str) -> None:
    text = f"jalan rusak {control}kiri ke kanan"
    shown = mask_text(text)
    assert control not in shown and f"[U+{ord(control):04X}]" in shown
    assert neutralise_bidi(text) == shown
    assert mask_text(shown) == shown


def test_log_lines_show_bidi_controls_and_grouped_numbers_masked() -> None:
    record = logging.LogRecord(
        "bot", logging.INFO, __file__, 1, "from %s: %s", ("warga", "\u202e0812-5678-0003"), None
    )
    MaskingFilter().filter(record)
    assert record.getMessage() == "from warga: [U+202E]0812****0003"


def test_emoji_sequences_survive_masking() -> None:
    text = "keluarga 👨\u200d👩\u200d👧 dan bendera 🏳\ufe0f\u200d🌈, hp 0812-5678-0003"
    assert mask_text(text) == "keluarga 👨\u200d👩\u200d👧 dan bendera 🏳\ufe0f\u200d🌈, hp 0812****0003"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Budi Santoso", "B*** S***"),
        ("Rina", "R***"),
        ("  Siti   Nur\u00a0Aisyah ", "S*** N*** A***"),
        ("Budi 081234567890", "B*** 0812****7890"),
        ("\u202eosotnaS iduB", "o*** i***"),
        ("budi.santoso@gmail.com", "b***@gmail.com"),
        ("🌸 Sari 🌸", "🌸 S*** 🌸"),
        ("", ""),
    ],
)
def test_profile_names_keep_only_initials(name: str, expected: str) -> None:
    assert mask_name(name) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_masking_is_idempotent_on_any_text(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once
    assert mask_name(mask_name(text)) == mask_name(text)
