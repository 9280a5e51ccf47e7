"""Resident-facing copy, by language and key; the only place texts live.

``<lang>.yml`` holds the core texts; each journey may keep its own ``<lang>/<journey>.yml`` fragment
(keys must be unique across files).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Formatter
from typing import Any

import yaml

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
TEXTS_DIR = Path(__file__).parent


class MissingText(KeyError):
    """A key has no text in the requested language (a bug: every key exists in id and en)."""


class Texts:
    """Named texts per language; a key may hold a list of variants to vary the bot's wording."""

    def __init__(self, catalogs: Mapping[str, Mapping[str, str | list[str]]]) -> None:
        self._catalogs = {lang: dict(catalog) for lang, catalog in catalogs.items()}

    @classmethod
    def load(cls, directory: Path = TEXTS_DIR) -> Texts:
        """Read ``<lang>.yml`` for every supported language (nested keys are joined with dots)."""
        catalogs: dict[str, dict[str, str | list[str]]] = {}
        for lang in LANGUAGES:
            files = [directory / f"{lang}.yml", *sorted((directory / lang).glob("*.yml"))]
            catalog: dict[str, str | list[str]] = {}
            for path in files:
                raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                flat = _flatten(raw)
                clash = catalog.keys() & flat.keys()
                if clash:
                    raise ValueError(f"{path}: keys defined twice: {', '.join(sorted(clash))}")
                catalog.update(flat)
            catalogs[lang] = catalog
        return cls(catalogs)

    def keys(self, lang: str = DEFAULT_LANGUAGE) -> set[str]:
        """Every key defined for ``lang``."""
        return set(self._catalogs.get(lang, {}))

    def variants(self, lang: str, key: str, **params: Any) -> list[str]:
        """Every wording of ``key`` in ``lang``, rendered with ``params``."""
        catalog = self._catalogs.get(lang) or self._catalogs[DEFAULT_LANGUAGE]
        try:
            entry = catalog[key]
        except KeyError:
            raise MissingText(f"{lang}:{key}") from None
        options = entry if isinstance(entry, list) else [entry]
        return [str(option).format(**params).strip() for option in options]

    def render(self, lang: str, key: str, *, seed: int = 0, **params: Any) -> str:
        """One wording of ``key`` in ``lang``; ``seed`` picks among variants deterministically."""
        options = self.variants(lang, key, **params)
        return options[seed % len(options)]

    def section(self, lang: str, prefix: str) -> dict[str, str]:
        """Every single-wording text under ``prefix.`` (e.g. a page's labels), keyed without the prefix."""
        catalog = self._catalogs.get(lang) or self._catalogs[DEFAULT_LANGUAGE]
        start = f"{prefix}."
        return {
            key[len(start) :]: str(value)
            for key, value in catalog.items()
            if key.startswith(start) and not isinstance(value, list)
        }

    def placeholders(self, lang: str, key: str) -> set[str]:
        """The ``{name}`` parameters a text expects (for consistency checks)."""
        entry = self._catalogs[lang][key]
        options = entry if isinstance(entry, list) else [entry]
        return {name for option in options for _, name, _, _ in Formatter().parse(str(option)) if name}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str | list[str]]:
    flat: dict[str, str | list[str]] = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat
