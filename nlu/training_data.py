"""Read Rasa 3 NLU YAML (``version: "3.1"``): intents with annotated examples, synonyms, regexes, lookups."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlu.errors import TrainingDataError

TRAIN_DIR = Path(__file__).with_name("data") / "nlu"
TEST_DIR = Path(__file__).with_name("data") / "test"
# Resident messages written before the training data was read: dev (for tuning) and test (report only).
BLIND_DIR = Path(__file__).with_name("data") / "blind"
BLIND_DEV = BLIND_DIR / "dev.yml"
BLIND_TEST = BLIND_DIR / "test.yml"
BLIND_PERSONAS = BLIND_DIR / "personas.yml"  # issue 18: written by a helper who never saw nlu/data

# [text](entity), [text](entity:value), [text]{"entity": "...", "value": "..."}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<short>[^)]+)\)|(?P<json>\{[^}]*\}))")


@dataclass(frozen=True, slots=True)
class Annotation:
    """An entity marked in a training example; ``value`` is canonical (synonyms applied)."""

    entity: str
    value: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: plain text (annotations removed) and its intent."""

    text: str
    intent: str
    entities: tuple[Annotation, ...] = ()


@dataclass(slots=True)
class TrainingData:
    """Everything in one or more Rasa NLU files."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        """Intent names, sorted."""
        return sorted({ex.intent for ex in self.examples})

    def merge(self, other: TrainingData) -> None:
        """Add another file's content to this one."""
        self.examples.extend(other.examples)
        self.synonyms.update(other.synonyms)
        for name, items in other.lookups.items():
            self.lookups.setdefault(name, []).extend(items)
        for name, items in other.regexes.items():
            self.regexes.setdefault(name, []).extend(items)


def _items(block: Any) -> list[str]:
    """Rasa's ``examples: |`` block → list of strings (leading ``- `` removed)."""
    if isinstance(block, list):
        return [str(item).strip() for item in block if str(item).strip()]
    lines = []
    for line in str(block or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            lines.append(stripped[2:].strip())
        elif stripped == "-":
            continue
        elif stripped:
            lines.append(stripped)
    return lines


def parse_example(raw: str, intent: str, synonyms: dict[str, str]) -> Example:
    """Remove entity annotations from ``raw``, keeping their positions in the plain text."""
    parts: list[str] = []
    annotations: list[Annotation] = []
    pos = 0
    length = 0
    for match in _ANNOTATION.finditer(raw):
        before = raw[pos : match.start()]
        parts.append(before)
        length += len(before)
        surface = match.group("text")
        if match.group("json"):
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"bad entity annotation in {raw!r}: {exc}") from exc
            entity = str(spec.get("entity", ""))
            value = str(spec.get("value", surface))
        else:
            short = match.group("short")
            entity, _, explicit = short.partition(":")
            value = explicit or surface
        value = synonyms.get(value.casefold(), synonyms.get(value, value))
        annotations.append(Annotation(entity, value, length, length + len(surface)))
        parts.append(surface)
        length += len(surface)
        pos = match.end()
    parts.append(raw[pos:])
    return Example("".join(parts), intent, tuple(annotations))


def _read(path: Path) -> tuple[TrainingData, list[tuple[str, list[str]]]]:
    """One file's synonyms/lookups/regexes, and its intents' raw (annotated) examples."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise TrainingDataError(f"{path}: expected a mapping with 'version' and 'nlu'")
    data = TrainingData()
    raw_intents: list[tuple[str, list[str]]] = []
    for item in doc.get("nlu") or []:
        if not isinstance(item, dict):
            raise TrainingDataError(f"{path}: every 'nlu' item must be a mapping, got {item!r}")
        if "intent" in item:
            raw_intents.append((str(item["intent"]), _items(item.get("examples"))))
        elif "synonym" in item:
            canonical = str(item["synonym"])
            for surface in _items(item.get("examples")):
                data.synonyms[surface.casefold()] = canonical
        elif "lookup" in item:
            data.lookups.setdefault(str(item["lookup"]), []).extend(_items(item.get("examples")))
        elif "regex" in item:
            data.regexes.setdefault(str(item["regex"]), []).extend(_items(item.get("examples")))
    return data, raw_intents


def load_file(path: Path) -> TrainingData:
    """Load one Rasa NLU YAML file."""
    data, raw_intents = _read(path)
    for intent, texts in raw_intents:
        data.examples.extend(parse_example(text, intent, data.synonyms) for text in texts)
    return data


def yaml_files(path: Path) -> list[Path]:
    """A file, or every ``*.yml``/``*.yaml`` under a directory, sorted."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())


def load(path: Path = TRAIN_DIR, *, synonyms_from: Iterable[Path] = ()) -> TrainingData:
    """Load a Rasa NLU file or directory; synonyms of all files (and ``synonyms_from``) apply."""
    files = yaml_files(path)
    if not files:
        raise TrainingDataError(f"no Rasa NLU YAML files under {path}")
    data = TrainingData()
    for extra in synonyms_from:
        for file in yaml_files(extra):
            data.synonyms.update(_read(file)[0].synonyms)
    pending: list[tuple[str, list[str]]] = []
    for file in files:
        part, raw_intents = _read(file)
        data.merge(part)
        pending.extend(raw_intents)
    for intent, texts in pending:
        data.examples.extend(parse_example(text, intent, data.synonyms) for text in texts)
    return data


def data_hash(paths: Iterable[Path], *, salt: str = "") -> str:
    """SHA-256 over the files' names and bytes (and ``salt``: the feature/model version)."""
    digest = hashlib.sha256(salt.encode())
    for path in paths:  # in the order given (callers sort), so a copied data dir hashes the same
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
