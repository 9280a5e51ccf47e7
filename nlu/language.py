"""Which language a message is in, Indonesian or English: character n-grams of its words, naive Bayes.

Each word is scored on its own — the summed log-likelihood ratio (English over Indonesian) of the word
and its character 1–4-grams, divided by the number of those features so long words do not count more
than short ones, then clipped so a message needs more than one telling word. A message's score is the
sum over its words, turned into a probability by a scale fitted on held-out folds at training time.
Only a clear decision is returned: three words or more, and a probability of at least :data:`DECISION`;
otherwise ``None`` ("keep the language you had"): "ok", "KTP", "PBG-2026-00123", emoji, numbers,
"halo", and two-word pleasantries ("thank you", "ok thanks") Indonesian residents use as much as English.

Training data (``data/language/``, see ``labels.tsv``): the Rasa examples of ``data/nlu`` (Indonesian
unless ``labels.tsv`` says English or either), plus messages written for this detector (``en.txt``,
``id.txt``). ``heldout.tsv`` is never trained on. The model is a dictionary of feature weights, stored
as JSON beside the intent model; fitting it is counting, so no scikit-learn is needed at all.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from nlu.errors import ModelError
from nlu.result import LANGUAGES, Entity
from nlu.training_data import BLIND_DEV, TEST_DIR, TRAIN_DIR, data_hash, load, yaml_files

LANGUAGE_DIR = Path(__file__).with_name("data") / "language"
LABELS_FILE = LANGUAGE_DIR / "labels.tsv"
HELDOUT_FILE = LANGUAGE_DIR / "heldout.tsv"
SENTENCE_FILES = {"en": LANGUAGE_DIR / "en.txt", "id": LANGUAGE_DIR / "id.txt"}
MODEL_FILE = "language_model.json"
NEITHER = "none"

DETECTOR_VERSION = "language-nb-v1"
NGRAMS = (1, 2, 3, 4)
SMOOTHING = 0.5  # additive smoothing of the feature counts
WORD_WEIGHT = 3.0  # the whole word counts as this many n-grams (a known word says more than its letters)
WORD_CLIP = 1.6  # a word's score is clipped to ±this: a message needs more than one telling word
MIN_WORDS = 3  # "thank you", "ok thanks": Indonesian residents say these too
# Entities whose words say nothing of the language ("KTP", "Disdukcapil", "Sungai Bangkong").
NEUTRAL_ENTITIES = frozenset({"document_type", "office", "location"})
DECISION = 0.9  # probability needed to report a language

_CHUNK = re.compile(r"\S+")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_REPEATED = re.compile(r"([a-z])\1{2,}")


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """The detector's answer: ``language`` ("id", "en" or None when unclear) and its probability."""

    language: str | None
    confidence: float
    english: float  # probability that the message is English (0.5: no evidence)


def words(text: str) -> list[str]:
    """The words the detector reads: folded, letters only; chunks with a digit (ids, numbers) dropped."""
    # Not nlu.normalize.fold: that one turns emoji into Indonesian words ("🙏" → "terima kasih").
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    plain = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn").casefold()
    folded = _REPEATED.sub(r"\1\1", plain)
    out: list[str] = []
    for chunk in _CHUNK.findall(folded):
        if not any(ch.isdigit() for ch in chunk):
            out.extend(_WORD.findall(chunk))
    return out


@lru_cache(maxsize=65536)
def word_features(word: str) -> tuple[str, ...]:
    """The word itself (``w:``) and its character n-grams, padded with spaces."""
    padded = f" {word} "
    grams = [padded[i : i + n] for n in NGRAMS for i in range(len(padded) - n + 1)]
    return (f"w:{word}", *grams)


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    """Feature weights (log-likelihood ratio English/Indonesian) and the score-to-probability scale."""

    weights: dict[str, float]
    scale: float
    data_hash: str = ""

    def word_score(self, word: str) -> float:
        """One word's evidence (positive: English), clipped to ±WORD_CLIP; 0.0 for an unknown word."""
        total = 0.0
        seen = 0.0
        for feat in word_features(word):
            weight = self.weights.get(feat)
            if weight is None:
                continue
            factor = WORD_WEIGHT if feat.startswith("w:") else 1.0
            total += factor * weight
            seen += factor
        if not seen:
            return 0.0
        return max(-WORD_CLIP, min(WORD_CLIP, total / seen))

    def score(self, text: str, skip: Iterable[tuple[int, int]] = ()) -> tuple[float, int]:
        """The message's summed word evidence and its number of words (``skip``: spans left out)."""
        found = words(_blank(text, skip))
        return sum(self.word_score(w) for w in found), len(found)

    def detect(self, text: str, skip: Iterable[tuple[int, int]] = ()) -> LanguageGuess:
        """The message's language when clear (MIN_WORDS words or more, probability ≥ DECISION), else None.

        ``skip`` lists ``(start, end)`` spans that say nothing of the language (entities: "KTP",
        "Disdukcapil", a kelurahan), so "how to get KTP" is not pulled towards Indonesian by its name.
        """
        total, count = self.score(text, skip)
        english = _sigmoid(self.scale * total)
        language = "en" if english >= 0.5 else "id"
        confidence = max(english, 1.0 - english)
        if count < MIN_WORDS or confidence < DECISION:
            return LanguageGuess(None, confidence, english)
        return LanguageGuess(language, confidence, english)

    def language(self, text: str, skip: Iterable[tuple[int, int]] = ()) -> str | None:
        """Shorthand for ``detect(text, skip).language``."""
        return self.detect(text, skip).language

    def save(self, directory: Path) -> Path:
        """Write ``language_model.json`` into ``directory`` (atomically)."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "version": DETECTOR_VERSION,
            "data_hash": self.data_hash,
            "scale": self.scale,
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
        }
        path = directory / MODEL_FILE
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{MODEL_FILE}.", suffix=".tmp")
        try:  # a unique temporary file: several workers may fit it at the same time
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(meta, ensure_ascii=False))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, directory: Path) -> LanguageDetector:
        """Read a detector written by :meth:`save`; raises ModelError if missing or incompatible."""
        try:
            meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
            weights = {str(k): float(v) for k, v in meta["weights"].items()}
            scale = float(meta["scale"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"cannot read the language model in {directory}: {exc}") from exc
        if meta.get("version") != DETECTOR_VERSION:
            raise ModelError(f"language model in {directory} was fitted by another version; refit it")
        return cls(weights, scale, str(meta.get("data_hash", "")))

    @classmethod
    def fit(
        cls, samples: Sequence[tuple[str, str]], *, folds: int = 5, data_hash: str = ""
    ) -> LanguageDetector:
        """Count features per language, then fit the probability scale on ``folds`` held-out folds."""
        held: list[tuple[float, bool]] = []
        for k in range(folds):
            part = _weights([s for i, s in enumerate(samples) if i % folds != k])
            draft = cls(part, 1.0)
            for i in range(k, len(samples), folds):
                text, lang = samples[i]
                total, count = draft.score(text)
                if count >= MIN_WORDS:
                    held.append((total, lang == "en"))
        return cls(_weights(samples), _fit_scale(held), data_hash)


def neutral_spans(entities: Iterable[Entity]) -> list[tuple[int, int]]:
    """The spans of entities that name something (a document, an office, a place): no language."""
    return [(e.start, e.end) for e in entities if e.entity in NEUTRAL_ENTITIES]


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` with each span replaced by spaces."""
    chars: list[str] | None = None
    for start, end in spans:
        if chars is None:
            chars = list(text)
        chars[start:end] = " " * len(chars[start:end])
    return text if chars is None else "".join(chars)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _weights(samples: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Smoothed log P(feature | en) − log P(feature | id) for every feature seen."""
    counts: dict[str, dict[str, int]] = {lang: {} for lang in LANGUAGES}
    for text, lang in samples:
        bucket = counts[lang]
        for word in words(text):
            for feat in word_features(word):
                bucket[feat] = bucket.get(feat, 0) + 1
    features = counts["en"].keys() | counts["id"].keys()
    totals = {lang: sum(c.values()) + SMOOTHING * len(features) for lang, c in counts.items()}
    return {
        feat: math.log((counts["en"].get(feat, 0) + SMOOTHING) / totals["en"])
        - math.log((counts["id"].get(feat, 0) + SMOOTHING) / totals["id"])
        for feat in features
    }


def _fit_scale(held: Sequence[tuple[float, bool]]) -> float:
    """The scale ``a`` of ``P(en) = sigmoid(a · score)`` with the least log-loss on held-out scores."""
    if not held:
        return 1.0

    def loss(a: float) -> float:
        total = 0.0
        for score, english in held:
            p = min(max(_sigmoid(a * score), 1e-9), 1.0 - 1e-9)
            total -= math.log(p if english else 1.0 - p)
        return total / len(held)

    # The loss is convex in a: a golden-section search on a wide bracket finds its minimum.
    lo, hi = 0.01, 20.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        left, right = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(left) < loss(right):
            hi = right
        else:
            lo = left
    return (lo + hi) / 2


def read_labels(path: Path = LABELS_FILE) -> dict[str, str]:
    """``labels.tsv``: the text of each listed Rasa example → "en" or "none"."""
    return dict(_rows(path))


def read_sentences(path: Path, language: str) -> list[tuple[str, str]]:
    """A plain sentence list (one message a line, ``#`` comments) as ``(text, language)`` pairs."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(line.strip(), language) for line in lines if line.strip() and not line.startswith("#")]


def read_heldout(path: Path = HELDOUT_FILE) -> list[tuple[str, str]]:
    """``heldout.tsv`` as ``(text, label)`` pairs, label "id", "en" or "none"."""
    return [(text, label) for text, label in _rows(path)]


def _rows(path: Path) -> Iterator[tuple[str, str]]:
    """``label<TAB>text`` lines as ``(text, label)``."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, _, text = line.partition("\t")
        if label not in (*LANGUAGES, NEITHER) or not text:
            raise ValueError(f"{path}: expected 'id|en|none<TAB>text', got {line!r}")
        yield text, label


def training_samples(data_dir: Path = TRAIN_DIR) -> list[tuple[str, str]]:
    """``(text, language)`` pairs: labelled Rasa examples (those marked "none" left out) + sentence lists."""
    labels = read_labels()
    examples = load(data_dir).examples
    samples = [(ex.text, labels.get(ex.text, "id")) for ex in examples if labels.get(ex.text) != NEITHER]
    for language, path in SENTENCE_FILES.items():
        samples.extend(read_sentences(path, language))
    return samples


def language_hash(data_dir: Path = TRAIN_DIR) -> str:
    """Hash of everything the detector is fitted on (its artifact's key)."""
    files = [*yaml_files(data_dir), LABELS_FILE, *SENTENCE_FILES.values()]
    return data_hash(files, salt=DETECTOR_VERSION)


def fit_detector(model_dir: Path, *, data_dir: Path = TRAIN_DIR) -> LanguageDetector:
    """Fit the detector on ``data_dir`` and the language lists; save it into ``model_dir``."""
    detector = LanguageDetector.fit(training_samples(data_dir), data_hash=language_hash(data_dir))
    detector.save(model_dir)
    return detector


def ensure_detector(model_dir: Path, *, data_dir: Path = TRAIN_DIR) -> LanguageDetector:
    """Load the stored detector if it matches the data; otherwise fit and save it."""
    try:
        detector = LanguageDetector.load(model_dir)
    except ModelError:
        return fit_detector(model_dir, data_dir=data_dir)
    if detector.data_hash != language_hash(data_dir):
        return fit_detector(model_dir, data_dir=data_dir)
    return detector


def evaluation_sets() -> dict[str, list[tuple[str, str]]]:
    """Labelled messages the detector is not fitted on: ``heldout.tsv``, and the Rasa test set and
    blind dev set labelled by ``labels.tsv`` (Indonesian unless listed)."""
    labels = read_labels()
    sets = {"heldout": read_heldout()}
    for name, path in (("test", TEST_DIR), ("blind_dev", BLIND_DEV)):
        examples = load(path, synonyms_from=[TRAIN_DIR]).examples
        sets[name] = [(ex.text, labels.get(ex.text, "id")) for ex in examples]
    return sets


def evaluate(detector: LanguageDetector) -> dict[str, dict[str, int]]:
    """Per evaluation set, counts of ``"<label>-><detected>"`` (detected "none" when unclear)."""
    report: dict[str, dict[str, int]] = {}
    for name, rows in evaluation_sets().items():
        counts: dict[str, int] = {}
        for text, label in rows:
            key = f"{label}->{detector.language(text) or NEITHER}"
            counts[key] = counts.get(key, 0) + 1
        report[name] = dict(sorted(counts.items()))
    return report
