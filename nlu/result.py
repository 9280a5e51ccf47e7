"""The parse result: intent, ranking and entities, serialised exactly as Rasa's ``POST /model/parse``."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

RANKING_SIZE = 10  # intents listed in a parse's ranking (Rasa's default)

FALLBACK_INTENT = "nlu_fallback"
LANGUAGES = ("id", "en")  # the languages a parse may report (and the bot answers in)


@dataclass(frozen=True, slots=True)
class IntentScore:
    """One intent with the classifier's calibrated confidence (0..1)."""

    name: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """Rasa's ``{"name": ..., "confidence": ...}``."""
        return {"name": self.name, "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class Entity:
    """One extracted entity; ``value`` is the canonical value (e.g. ``ktp_el``, a Kemendagri code)."""

    entity: str
    value: str
    start: int
    end: int
    confidence: float = 1.0
    extractor: str = "regex"
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Rasa's entity object (``confidence_entity`` is Rasa's key; ``confidence`` kept for our tools)."""
        data: dict[str, Any] = {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "confidence": self.confidence,
            "confidence_entity": self.confidence,
            "extractor": self.extractor,
        }
        return data


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What the NLU understood of one message."""

    text: str
    intent: IntentScore
    entities: tuple[Entity, ...] = ()
    intent_ranking: tuple[IntentScore, ...] = field(default=())
    language: str | None = None  # "id" or "en" when the message clearly is in it (nlu.language)

    @property
    def intent_name(self) -> str:
        """The winning intent's name (``nlu_fallback`` below the threshold)."""
        return self.intent.name

    @property
    def confidence(self) -> float:
        """The winning intent's confidence."""
        return self.intent.confidence

    def entity(self, name: str) -> str | None:
        """The canonical value of the first entity called ``name``, if any."""
        for ent in self.entities:
            if ent.entity == name:
                return ent.value
        return None

    def entity_values(self, name: str) -> list[str]:
        """All canonical values of entities called ``name``, in order of appearance."""
        return [ent.value for ent in self.entities if ent.entity == name]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of DESIGN 3.3 (same as Rasa's ``POST /model/parse``).

        One key more than Rasa's: ``language`` ("id", "en" or null when unclear), which Rasa clients
        ignore like any unknown top-level key.
        """
        return {
            "text": self.text,
            "intent": self.intent.to_dict(),
            "entities": [ent.to_dict() for ent in self.entities],
            "intent_ranking": [score.to_dict() for score in self.intent_ranking],
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParseResult:
        """Read Rasa's parse JSON (as answered by a Rasa server or by us; ``language`` when present)."""
        intent = data.get("intent") or {}
        entities = tuple(
            Entity(
                entity=str(e["entity"]),
                value=str(e.get("value", "")),
                start=int(e.get("start", 0)),
                end=int(e.get("end", 0)),
                confidence=float(e.get("confidence_entity", e.get("confidence", 1.0)) or 1.0),
                extractor=str(e.get("extractor", "rasa")),
            )
            for e in data.get("entities") or []
        )
        ranking = tuple(
            IntentScore(str(r.get("name")), float(r.get("confidence") or 0.0))
            for r in data.get("intent_ranking") or []
        )
        return cls(
            text=str(data.get("text", "")),
            intent=IntentScore(
                str(intent.get("name") or FALLBACK_INTENT), float(intent.get("confidence") or 0.0)
            ),
            entities=entities,
            intent_ranking=ranking,
            language=language if (language := data.get("language")) in LANGUAGES else None,
        )


class NluParser(Protocol):
    """Anything that turns a resident's text into a ParseResult (embedded model or a Rasa server)."""

    async def parse(self, text: str) -> ParseResult:
        """Understand one message; never raises on odd text (empty, emoji, 10,000 characters)."""
        ...

    async def aclose(self) -> None:
        """Release resources (HTTP clients)."""
        ...


def apply_threshold(
    text: str,
    ranking: tuple[IntentScore, ...],
    entities: Iterable[Entity],
    threshold: float,
    language: str | None = None,
) -> ParseResult:
    """Rasa's FallbackClassifier rule: below ``threshold`` the intent is ``nlu_fallback``."""
    entities = tuple(entities)
    if not ranking or math.isnan(ranking[0].confidence) or ranking[0].confidence < threshold:
        fallback = IntentScore(FALLBACK_INTENT, threshold)
        return ParseResult(text, fallback, entities, (fallback, *ranking[: RANKING_SIZE - 1]), language)
    return ParseResult(text, ranking[0], entities, ranking, language)
