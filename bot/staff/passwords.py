"""Which passwords a console account may have: long enough, not a common one, not the user name."""

from __future__ import annotations

from functools import cache
from pathlib import Path

MIN_PASSWORD = 10
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "common_passwords.txt"


@cache
def common_passwords() -> frozenset[str]:
    """The 1,000 most common passwords, lowercased (see the header of ``common_passwords.txt``)."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def password_problem(password: str, *, username: str) -> str | None:
    """Why ``password`` may not be used by ``username`` (Indonesian, shown to staff), or None."""
    if len(password) < MIN_PASSWORD:
        return f"Kata sandi minimal {MIN_PASSWORD} karakter."
    folded = password.casefold()
    if folded.strip() in common_passwords():
        return "Kata sandi ini terlalu umum; pilih yang lain."
    if username and username.casefold() in folded:
        return "Kata sandi tidak boleh memuat nama pengguna."
    return None
