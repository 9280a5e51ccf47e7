"""Entities: canonical values of DESIGN 3.2, NIK validation, locations to Kemendagri codes."""

from __future__ import annotations

import pytest

from nlu.entities import (
    COMPLAINT_CATEGORIES,
    DOCUMENT_TYPES,
    OFFICES,
    PERMIT_NUMBER_PATTERN,
    EntityExtractor,
    build_lookups,
    default_extractor,
    resolve_location,
    validate_nik,
)

DOCUMENT_TEXTS = {
    "ktp_el": "syarat bikin e-KTP",
    "kk": "cetak ulang kartu keluarga",
    "akta_kelahiran": "urus akte lahir anak",
    "akta_kematian": "akta kematian bapak",
    "akta_perkawinan": "akta nikah non muslim",
    "akta_perceraian": "syarat akta cerai",
    "kia": "kartu identitas anak",
    "pindah_datang": "surat pindah ke pontianak",
    "pbg": "izin mendirikan bangunan rumah",
    "slf": "sertifikat laik fungsi gedung",
    "nib": "daftar nomor induk berusaha",
    "izin_reklame": "izin reklame toko",
    "sktm": "surat keterangan tidak mampu",
}
COMPLAINT_TEXTS = {
    "road_damage": "jalan berlubang di gang mawar",
    "street_light": "lampu jalan mati",
    "garbage": "sampah menumpuk",
    "drainage_flood": "parit tersumbat, banjir",
    "fallen_tree": "pohon tumbang",
    "clean_water": "air pdam keruh",
    "illegal_parking": "parkir liar depan sekolah",
    "public_facility": "toilet umum kotor",
    "public_service": "ada pungli",
    "other": "masalah lain",
}
OFFICE_TEXTS = {
    "disdukcapil": "dukcapil buka jam berapa",
    "dpmptsp": "alamat dpmptsp",
    "mpp": "mal pelayanan publik dimana",
    "kantor_camat_pontianak_selatan": "kantor camat pontianak selatan",
    "kantor_camat_pontianak_timur": "camat pontianak timur",
    "kantor_camat_pontianak_barat": "kantor kecamatan pontianak barat",
    "kantor_camat_pontianak_utara": "kantor camat ptk utara",
    "kantor_camat_pontianak_kota": "kantor camat pontianak kota",
    "kantor_camat_pontianak_tenggara": "kantor camat tenggara",
    "kantor_lurah": "kantor lurah buka sabtu?",
}


def values(text: str, entity: str) -> list[str]:
    return [e.value for e in default_extractor().extract(text) if e.entity == entity]


def test_test_tables_cover_every_canonical_value() -> None:
    assert set(DOCUMENT_TEXTS) == set(DOCUMENT_TYPES)
    assert set(COMPLAINT_TEXTS) == set(COMPLAINT_CATEGORIES)
    assert set(OFFICE_TEXTS) == set(OFFICES)


@pytest.mark.parametrize(("value", "text"), DOCUMENT_TEXTS.items())
def test_every_document_type(value: str, text: str) -> None:
    assert values(text, "document_type") == [value]


@pytest.mark.parametrize(("value", "text"), COMPLAINT_TEXTS.items())
def test_every_complaint_category(value: str, text: str) -> None:
    assert values(text, "complaint_category")[-1:] == [value]


@pytest.mark.parametrize(("value", "text"), OFFICE_TEXTS.items())
def test_every_office(value: str, text: str) -> None:
    assert values(text, "office") == [value]


def test_spans_point_into_the_original_text() -> None:
    text = "Syarat bikin  KTP-el di Dukcapil?"
    found = default_extractor().extract(text)
    assert [(e.entity, e.value, text[e.start : e.end]) for e in found] == [
        ("document_type", "ktp_el", "KTP-el"),
        ("office", "disdukcapil", "Dukcapil"),
    ]


def test_typos_are_matched_fuzzily() -> None:
    found = default_extractor().extract("jalan berlobang di paret tokaye, disdukcapl")
    assert [(e.entity, e.value, e.extractor) for e in found] == [
        ("complaint_category", "road_damage", "lookup"),
        ("location", "61.71.01.1004", "fuzzy"),
        ("office", "disdukcapil", "fuzzy"),
    ]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Parittokaya", "61.71.01.1004"),
        ("parit tokaya", "61.71.01.1004"),
        ("kel. Benua Melayu Darat", "61.71.01.1003"),
        ("Sei Jawi", "61.71.05.1005"),
        ("sungai jawi dalam", "61.71.03.1002"),
        ("Sungaijawi Luar", "61.71.03.1003"),
        ("kelurahan tengah", "61.71.05.1003"),
        ("Pontianak Tenggara", "61.71.06"),
        ("kec. Pontianak Utara", "61.71.04"),
        ("ptk selatan", "61.71.01"),
        ("bangka belitung laut", "61.71.06.1003"),
        ("siantan hilirr", "61.71.04.1003"),
    ],
)
def test_resolve_location(text: str, code: str) -> None:
    entity = resolve_location(text)
    assert entity is not None
    assert (entity.entity, entity.value) == ("location", code)


def test_resolve_location_nothing() -> None:
    assert resolve_location("di tengah jalan") is None
    assert resolve_location("") is None
    assert resolve_location("jakarta selatan") is None


def test_valid_and_invalid_nik() -> None:
    assert validate_nik("6171015508950001")
    assert validate_nik("6171 0155 0895 0001")
    assert not validate_nik("1234567890123456")  # no real birth date
    assert not validate_nik("6171010101000000")  # serial 0000
    assert not validate_nik("617101550895000")  # 15 digits
    assert not validate_nik("")


def test_only_valid_nik_is_extracted() -> None:
    assert values("nik saya 6171015508950001", "nik") == ["6171015508950001"]
    assert values("nik saya 1234567890123456", "nik") == []


def test_ticket_permit_and_phone() -> None:
    found = default_extractor().extract("laporan adu-2026-000123, izin pbg-2026-00123, hp 0812 3456 7890")
    assert [(e.entity, e.value) for e in found] == [
        ("ticket_number", "ADU-2026-000123"),
        ("permit_number", "PBG-2026-00123"),
        ("phone", "+6281234567890"),
    ]


def test_permit_pattern_is_configurable() -> None:
    extractor = EntityExtractor(build_lookups(), permit_pattern=r"IZN/\d{6}")
    found = extractor.extract("cek IZN/123456 dan PBG-2026-00123")
    assert [e.value for e in found if e.entity == "permit_number"] == ["IZN/123456"]
    assert PERMIT_NUMBER_PATTERN == r"[A-Z]{2,6}-\d{4}-\d{3,6}"


def test_bad_permit_pattern_says_so() -> None:
    with pytest.raises(ValueError, match="permit_pattern"):
        EntityExtractor({}, permit_pattern="[")
