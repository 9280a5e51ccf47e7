"""The normaliser: unicode, case, repeated letters, identifiers, slang and Pontianak Malay."""

from __future__ import annotations

import pytest

from nlu.normalize import default_lexicon, fold, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Halooo Kak!!", "halo kak"),
        ("pagii min", "pagi admin"),
        ("iyaa", "ya"),
        ("makasihhh", "terima kasih"),
        ("gmn sy udh blm tdk yg", "bagaimana saya sudah belum tidak yang"),
        ("brp lama", "berapa lama"),
        ("kamek nak tanya", "saya mau tanya"),
        ("kitak ndak tau ape", "kamu tidak tahu apa"),
        ("mane kantornye, bile buke", "mana kantor kapan buka"),
        ("macam mane caranya", "bagaimana caranya"),
        ("biayanye berape", "biaya berapa"),
        ("gudbai kak", "bye kak"),
        ("gjd", "tidak jadi"),
        ("same-same", "sama sama"),
        ("anak2 saya", "anak anak saya"),
        ("ＫＴＰ", "ktp"),
        ("Café Akcaya", "cafe akcaya"),
        ("e-ktp", "ktp"),
        ("ADU-2026-000123 gimana", "nomortiket bagaimana"),
        ("izin PBG-2026-00123", "izin nomorizin"),
        ("nik 6171015508950001", "nik nomornik"),
        ("hp 0812-3456-7890", "hp nomorhp"),
        ("ref 1234567", "ref angkapanjang"),
        ("👍", "oke"),
        ("", ""),
        ("\x00\x1b[31m\u200b", "31m"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_fold_strips_control_characters_and_accents() -> None:
    assert fold("a\tb\u0000c\u00e9") == "a b c" + "e"


def test_reviewed_lexicon_keeps_domain_words() -> None:
    lexicon = default_lexicon()
    # indo-normalizer maps these wrongly for a Pontianak citizen service; ours must win or drop them.
    assert lexicon[("ndak",)] == ("tidak",)
    assert lexicon[("kk",)] == ("kk",)
    assert ("ade",) not in lexicon
    assert ("see",) not in lexicon
