"""Build an NLU parser: the embedded model (trained on demand, keyed by a data hash) or a Rasa server.

Every backend honours button payloads (``/intent{"entity": "value"}``) and the fallback threshold.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

from nlu.classifier import MODEL_VERSION, IntentModel, Progress, stored_hash, train
from nlu.entities import EntityExtractor, build_lookups, default_extractor
from nlu.errors import ModelError
from nlu.language import LanguageDetector, ensure_detector, fit_detector, neutral_spans
from nlu.normalize import CUE_FILE, LEXICON_FILES, default_cues, default_lexicon, tokens
from nlu.payload import parse_payload
from nlu.rasa_http import RasaHttpParser
from nlu.result import (
    FALLBACK_INTENT,
    RANKING_SIZE,
    Entity,
    IntentScore,
    NluParser,
    ParseResult,
    apply_threshold,
)
from nlu.training_data import TRAIN_DIR, data_hash, load, yaml_files

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_THRESHOLD",
    "EmbeddedParser",
    "build_parser",
    "classifier_tokens",
    "ensure_model",
    "parse_payload",
    "train_model",
]

DEFAULT_THRESHOLD = 0.3  # chosen on blind/dev.yml + 5-fold CV (never on blind/test.yml), docs/BENCHMARKS.md
MAX_CLASSIFY_CHARS = 1000
OUT_OF_SCOPE = "out_of_scope"
# Entities whose presence the classifier sees as a tag token ("<document_type>"): a message naming a
# document or a complaint category is rarely out of scope, whatever words surround it.
TAGGED_ENTITIES = frozenset({"document_type", "complaint_category", "office", "location"})
_WORD = re.compile(r"[^\W_]")
# Cue words (data/cues.csv) add "<cue:KIND>" tags: "danger" words mark emergencies phrased in words the
# training data lacks (issue 18: cross-validation read a fifth of the emergencies as out of scope).
USE_CUES = True


def classifier_tokens(
    text: str, entities: Iterable[Entity], lexicon: dict[tuple[str, ...], tuple[str, ...]]
) -> list[str]:
    """What the intent classifier reads: normalised tokens, one tag per entity type and per cue found.

    A message that is nothing but entities ("KIA", "akta nikah") also gets ``<only:TYPE>``: a bare
    document name is a different request from a sentence that merely mentions one, and the tag lets
    the classifier learn that without leaning on the document's own words.
    """
    tagged = [e for e in entities if e.entity in TAGGED_ENTITIES]
    tags = sorted({f"<{e.entity}>" for e in tagged})
    if tagged and _only_entities(text, tagged):
        tags.extend(sorted({f"<only:{e.entity}>" for e in tagged}))
    words = tokens(text[:MAX_CLASSIFY_CHARS], lexicon)
    if USE_CUES:
        cues = default_cues()
        tags.extend(sorted({f"<cue:{cues[w]}>" for w in words if w in cues}))
    return [*words, *tags]


def _only_entities(text: str, entities: Iterable[Entity]) -> bool:
    """True when no word of ``text`` lies outside the entities' spans."""
    rest = list(text)
    for e in entities:
        rest[e.start : e.end] = " " * (e.end - e.start)
    return _WORD.search("".join(rest)) is None


def training_hash(data_dir: Path = TRAIN_DIR) -> str:
    """Hash of the training data, the lexicons and the model version (the artifact's key)."""
    return data_hash([*yaml_files(data_dir), *LEXICON_FILES, CUE_FILE], salt=MODEL_VERSION)


def train_model(
    model_dir: Path, *, data_dir: Path = TRAIN_DIR, progress: Progress | None = None
) -> IntentModel:
    """Train on ``data_dir`` and save the artifact into ``model_dir``."""
    started = time.perf_counter()
    data = load(data_dir)
    lexicon = default_lexicon()
    extractor = default_extractor()
    docs = [classifier_tokens(ex.text, extractor.extract(ex.text), lexicon) for ex in data.examples]
    labels = [ex.intent for ex in data.examples]
    model = train(docs, labels, data_hash=training_hash(data_dir), progress=progress)
    model.save(model_dir)
    fit_detector(model_dir, data_dir=data_dir)
    logger.info(
        "trained NLU model on %d examples, %d intents, in %.1f s",
        len(docs),
        len(model.labels),
        time.perf_counter() - started,
    )
    return model


def ensure_model(
    model_dir: Path, *, data_dir: Path = TRAIN_DIR, progress: Progress | None = None
) -> IntentModel:
    """Load the artifact if it matches the training data; otherwise train and save it."""
    wanted = training_hash(data_dir)
    if stored_hash(model_dir) == wanted:
        try:
            return IntentModel.load(model_dir)
        except ModelError:
            logger.warning("NLU model in %s unreadable; retraining", model_dir, exc_info=True)
    else:
        logger.info("NLU model in %s missing or stale; training", model_dir)
    return train_model(model_dir, data_dir=data_dir, progress=progress)


class EmbeddedParser:
    """Our own parser: normaliser + linear classifier + entity extractors + language detector, in process."""

    def __init__(
        self,
        model: IntentModel,
        extractor: EntityExtractor,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        language: LanguageDetector | None = None,
    ) -> None:
        self.model = model
        self.extractor = extractor
        self.threshold = threshold
        self.language = language
        self._lexicon = default_lexicon()
        # Payloads naming an intent we do not know (Telegram's "/start") are read as text.
        self._intents = {*model.labels, FALLBACK_INTENT}

    def classify(self, text: str, entities: Iterable[Entity] = ()) -> tuple[IntentScore, ...]:
        """The intent ranking (best first, up to RANKING_SIZE), without the fallback rule."""
        probs = self.model.probabilities(classifier_tokens(text, entities, self._lexicon))
        if probs is None:
            return ()
        order = probs.argsort()[::-1][:RANKING_SIZE]
        labels = self.model.labels
        return tuple(IntentScore(labels[j], round(float(probs[j]), 6)) for j in order)

    def parse_sync(self, text: str) -> ParseResult:
        """Understand one message (synchronous, for batch use); never raises on odd text."""
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        try:
            payload = parse_payload(text)
            if payload is not None and payload.intent.name in self._intents:
                return payload
            entities = self.extractor.extract(text)
            ranking = self.classify(text, entities)
            language = self.language.language(text, neutral_spans(entities)) if self.language else None
        except Exception:  # a parse must never take the dispatcher down; log and fall back
            logger.exception("NLU parse failed for a message of %d characters", len(text))
            ranking, entities, language = (), (), None
        return apply_threshold(text, ranking, entities, self.threshold, language)

    async def parse(self, text: str) -> ParseResult:
        """Understand one message (fast enough to run on the event loop: well under a millisecond)."""
        return self.parse_sync(text)

    async def aclose(self) -> None:
        """Nothing to release."""


def parser_version(parser: NluParser) -> str:
    """The model a parser serves: the embedded model's data hash (12 digits), else what it is."""
    if isinstance(parser, EmbeddedParser):
        return parser.model.data_hash[:12] or MODEL_VERSION
    if isinstance(parser, RasaHttpParser):
        return "rasa-server"  # the Rasa server's own model; it does not tell which
    return type(parser).__name__


def build_parser(
    backend: str = "embedded",
    *,
    threshold: float,
    rasa_url: str | None = None,
    model_dir: Path,
    timeout: float = 5.0,
    permit_pattern: str | None = None,
    data_dir: Path | None = None,
    progress: Progress | None = None,
) -> NluParser:
    """An NLU parser for ``backend`` (``embedded`` or ``rasa``).

    ``embedded`` loads the artifact from ``model_dir`` (training it first when missing or stale);
    ``rasa`` sends each message to ``{rasa_url}/model/parse``. Both detect the message's language
    here (``nlu.language``, its small artifact also kept in ``model_dir``).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if backend == "embedded":
        model = ensure_model(Path(model_dir), data_dir=data_dir or TRAIN_DIR, progress=progress)
        words = (f[2:] for f in model.vocab if f.startswith("w:"))
        extractor = EntityExtractor(build_lookups(), permit_pattern=permit_pattern, known_words=words)
        language = ensure_detector(Path(model_dir), data_dir=data_dir or TRAIN_DIR)
        return EmbeddedParser(model, extractor, threshold=threshold, language=language)
    if backend == "rasa":
        if not rasa_url:
            raise ValueError("the rasa backend needs rasa_url (nlu.rasa_url in config.yml)")
        language = ensure_detector(Path(model_dir), data_dir=data_dir or TRAIN_DIR)
        return RasaHttpParser(rasa_url, threshold=threshold, timeout=timeout, language=language)
    raise ValueError(f"unknown NLU backend {backend!r}; use 'embedded' or 'rasa'")
