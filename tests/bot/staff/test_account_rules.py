"""Console accounts: one spelling of a user name, and which passwords are refused."""

from __future__ import annotations

import pytest

from bot.staff.auth import normalize_username, throttle_key
from bot.staff.passwords import MIN_PASSWORD, common_passwords, password_problem


@pytest.mark.parametrize(
    "raw",
    ["sari", " sari", "sari\t", "  sari  ", "sari\u00a0", "SARI", "Ｓａｒｉ", "sa\u200bri", "\u3000sari\n"],
)
def test_every_spelling_of_a_name_is_one_name(raw: str) -> None:
    assert normalize_username(raw) == "sari"


@pytest.mark.parametrize("raw", ["", " ", "\t\u00a0\u2003\u3000", "\u200b\u200d"])
def test_a_name_of_only_spaces_normalises_to_nothing(raw: str) -> None:
    assert normalize_username(raw) == ""


def test_the_throttle_key_is_the_normalised_name_and_the_address() -> None:
    assert throttle_key("sari", "10.0.0.7") == "sari|10.0.0.7"


def test_the_list_holds_the_thousand_most_common_passwords_lowercased() -> None:
    listed = common_passwords()
    assert len(listed) == 1000
    assert {"123456", "password", "qwertyuiop", "1234567890", "iloveyou"} <= listed
    assert all(p == p.casefold() and p.strip() == p and p for p in listed)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("pendek", f"Kata sandi minimal {MIN_PASSWORD} karakter."),
        ("1234567890", "Kata sandi ini terlalu umum; pilih yang lain."),
        ("QwertyUiop", "Kata sandi ini terlalu umum; pilih yang lain."),
        ("rahasia-SARI-2026", "Kata sandi tidak boleh memuat nama pengguna."),
        ("kata-sandi-kota", None),
    ],
)
def test_short_common_and_name_bearing_passwords_are_refused(password: str, expected: str | None) -> None:
    assert password_problem(password, username="sari") == expected
