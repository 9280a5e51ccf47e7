"""Messages the flows engineers saw misread by the real parser, each with the intent and entities it needs.

The training data holds variations of these (nlu/data/nlu/dialogue.yml), not these exact sentences,
so each case also checks that the fix generalises.
"""

from __future__ import annotations

import pytest

from nlu.pipeline import EmbeddedParser

# A typed yes/no files or supports a complaint only at this confidence (flows/complaint.py).
CLEAR_CONFIDENCE = 0.6
KK = ("document_type", "kk")

CASES = [
    # Follow-ups after a document answer (was subscribe_updates 0.98).
    ("kalau KK?", "document_requirements", [KK]),
    ("kalau kk", "document_requirements", [KK]),
    ("kalau akta?", "document_requirements", [("document_type", "akta_kelahiran")]),
    ("terus kalau KIA", "document_requirements", [("document_type", "kia")]),
    # A document named on its own asks for its requirements.
    ("KIA", "document_requirements", [("document_type", "kia")]),
    ("SKTM", "document_requirements", [("document_type", "sktm")]),
    ("pindah datang", "document_requirements", [("document_type", "pindah_datang")]),
    ("akta kematian", "document_requirements", [("document_type", "akta_kematian")]),
    ("akta cerai", "document_requirements", [("document_type", "akta_perceraian")]),
    ("KTP", "document_requirements", [("document_type", "ktp_el")]),
    ("kartu keluarga", "document_requirements", [KK]),
    ("akta nikah", "document_requirements", [("document_type", "akta_perkawinan")]),
    ("PBG", "document_requirements", [("document_type", "pbg")]),
    ("izin reklame", "document_requirements", [("document_type", "izin_reklame")]),
    ("SLF", "document_requirements", [("document_type", "slf")]),
    ("NIB", "document_requirements", [("document_type", "nib")]),
    # ...but a permit number on its own asks for that permit's status.
    ("PBG-2026-00123", "permit_status", [("permit_number", "PBG-2026-00123")]),
    ("SLF-2026-00777", "permit_status", [("permit_number", "SLF-2026-00777")]),
    # ...also typed with spaces for its dashes (the document's name does not win then).
    ("nib 2026 00311", "permit_status", [("permit_number", "NIB-2026-00311")]),
    # Subscribing, also to one ticket.
    ("langganan pengumuman", "subscribe_updates", []),
    (
        "kabari saya laporan ADU-2026-000001",
        "subscribe_updates",
        [("ticket_number", "ADU-2026-000001")],
    ),
    # Skipping the photo is a "no", not a cancel (a cancel ends the whole complaint).
    ("skip", "deny", []),
    ("lewati", "deny", []),
    ("ga usah foto", "deny", []),
    ("lanjut aja, ga ada foto", "deny", []),
    # "lanjut aja" alone stays a "yes": it answers the confirmation step ("kirim?") too, and the
    # repository's test set has "ok lanjut aja" as affirm.
    ("lanjut aja", "affirm", []),
    # A problem described without "lapor".
    (
        "lubangnya besar sekali, motor sering jatuh",
        "file_complaint",
        [("complaint_category", "road_damage")],
    ),
    (
        "jalannya berlubang besar, sering ada yang jatuh",
        "file_complaint",
        [("complaint_category", "road_damage")],
    ),
    ("airnya bau dan keruh sudah dua hari", "file_complaint", [("complaint_category", "clean_water")]),
    (
        "lampunya padam sejak minggu lalu, gelap sekali",
        "file_complaint",
        [("complaint_category", "street_light")],
    ),
    # Supporting the duplicate report the bot found.
    ("tambahkan ke laporan itu", "affirm", []),
    ("ikut dukung laporan itu", "affirm", []),
    ("gabung aja", "affirm", []),
]


@pytest.mark.parametrize(("text", "intent", "entities"), CASES)
def test_intent_and_entities(
    parser: EmbeddedParser, text: str, intent: str, entities: list[tuple[str, str]]
) -> None:
    result = parser.parse_sync(text)
    assert (result.intent_name, [(e.entity, e.value) for e in result.entities]) == (intent, entities)


@pytest.mark.parametrize(
    ("text", "entities"),
    [
        ("depan kantor camat pontianak kota", [("office", "kantor_camat_pontianak_kota")]),
        (
            "dekat kantor lurah sungai bangkong",
            [("office", "kantor_lurah"), ("location", "61.71.05.1001")],
        ),
    ],
)
def test_landmark_addresses_keep_their_entities(
    parser: EmbeddedParser, text: str, entities: list[tuple[str, str]]
) -> None:
    # Typed while filing a complaint: the flow takes office_location there, and needs the entities.
    result = parser.parse_sync(text)
    assert result.intent_name in {"office_location", "file_complaint"}
    assert [(e.entity, e.value) for e in result.entities] == entities


@pytest.mark.parametrize("text", ["yang mana ya", "gimana ya", "maksudnya?", "yang mana ni", "apa ya"])
def test_hesitations_are_never_a_clear_yes(parser: EmbeddedParser, text: str) -> None:
    result = parser.parse_sync(text)
    assert not (result.intent_name == "affirm" and result.confidence >= CLEAR_CONFIDENCE), result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lubangnya besar", ("complaint_category", "road_damage", "lubangnya")),
        ("lampunye mati", ("complaint_category", "street_light", "lampunye mati")),
        ("paritnya mampet", ("complaint_category", "drainage_flood", "paritnya mampet")),
    ],
)
def test_lookups_match_words_with_the_nya_clitic(
    parser: EmbeddedParser, text: str, expected: tuple[str, str, str]
) -> None:
    assert [(e.entity, e.value, e.text) for e in parser.parse_sync(text).entities] == [expected]


def test_clitic_is_not_stripped_from_words_that_merely_end_in_nya(parser: EmbeddedParser) -> None:
    assert parser.parse_sync("saya punya pertanyaan, hanya tanya").entities == ()


def test_a_permit_number_with_spaces_is_not_a_phone_and_a_phone_is_not_a_permit(
    parser: EmbeddedParser,
) -> None:
    found = parser.parse_sync("izin nib 2026 00311 sudah 2 minggu, hp 0812 3456 7890").entities
    assert [(e.entity, e.value) for e in found] == [
        ("permit_number", "NIB-2026-00311"),
        ("phone", "+6281234567890"),
    ]


# Residents' phrasings nobody here wrote (issue 18), misread by the model of 2026-11-22.
UNSEEN_CASES = [
    # Farewells: "jalan" here is leaving, not a road (was file_complaint 0.32).
    ("selamat jalan ya", "goodbye"),
    ("ok saya jalan dulu", "goodbye"),
    # English and Pontianak Malay questions.
    ("what documents do I need for a family card?", "document_requirements"),
    ("kantornye dimane", "office_location"),
    # Other assistants' jobs that share words with ours ("batalkan", "ingatkan", "status").
    ("batalkan alarm jam 5", "out_of_scope"),
    ("ingatkan saya minum obat", "out_of_scope"),
    ("cancel my netflix subscription", "out_of_scope"),
    ("status paket shopee saya", "out_of_scope"),
    # "jalan" idioms are not road damage.
    ("jalan-jalan ke mall", "out_of_scope"),
]


@pytest.mark.parametrize(("text", "intent"), UNSEEN_CASES)
def test_unseen_phrasings(parser: EmbeddedParser, text: str, intent: str) -> None:
    result = parser.parse_sync(text)
    if intent == "out_of_scope":  # rejected either way: the bot does not pretend to understand
        assert result.intent_name in {"out_of_scope", "nlu_fallback"}, result
    else:
        assert result.intent_name == intent, result
