"""Texts are data: every key exists in Indonesian and English with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from flows.texts import LANGUAGES, Texts

TEXTS = Texts.load()
FLOWS = Path(__file__).resolve().parents[2] / "flows"


def test_every_key_exists_in_every_language_with_the_same_placeholders() -> None:
    keys = TEXTS.keys("id")
    for lang in LANGUAGES:
        assert TEXTS.keys(lang) == keys, lang
    for key in keys:
        assert TEXTS.placeholders("id", key) == TEXTS.placeholders("en", key), key


def test_every_key_used_in_flow_code_exists() -> None:
    used: set[str] = set()
    for path in FLOWS.glob("*.py"):
        used |= set(
            re.findall(
                r"""(?:ctx\.(?:t|reply|button)|menu_reply\(ctx,)\s*\(?\s*["']([a-z_.]+)["']""",
                path.read_text(),
            )
        )
    assert used, "no text keys found in flows/"
    assert used <= TEXTS.keys("id")


def test_variants_rotate_with_the_seed() -> None:
    variants = TEXTS.variants("id", "greet")

    assert len(variants) > 1
    assert {TEXTS.render("id", "greet", seed=i) for i in range(len(variants))} == set(variants)
