"""Intent classifier: TF-IDF word+char n-grams and an "<unk>" count, logistic regression,
temperature-calibrated.

Class weights grow with the inverse square root of the class size, so the large ``out_of_scope`` class
does not swallow phrasings of the small intents it has never seen. Words the model has not seen are
first read as a known word one typo away (``Spelling``); what stays unknown counts as ``<unk>``, a
feature learnt from the words that only one training example has, so a message made of unknown words
leans towards ``out_of_scope`` (issue 18). A linear SVM can still be blended in (``SVM_MIX``); on 5-fold
cross-validation it gained nothing and took three quarters of the training time, so it is off.

scikit-learn is used only for training. The trained model is stored as plain arrays (``.npz``) and a
JSON vocabulary, and inference is a sparse dot product over the message's features: a few tens of
microseconds instead of sklearn's per-call overhead.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nlu.errors import ModelError
from nlu.features import FEATURE_VERSION, char_features, is_tag, word_features

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Progress = Callable[[str, float], None]

MODEL_VERSION = f"{FEATURE_VERSION}+logreg-svm-v3"  # v3: "<unk>" feature, spelling correction
DEFAULT_C = 50.0
SVM_C = 1.0
SVM_MIX = 0.0  # share of the linear SVM in the blend (0: logistic regression only; see the docstring)
CLASS_WEIGHT_POWER = 0.5  # 0: no class weights, 1: sklearn's "balanced"
CHAR_MIN_DF = 2
# Each word the model has not seen also counts as one "<unk>" feature, learnt from the words seen in
# only one training example: a message full of unknown words is more often out of scope.
UNK_FEATURE = "w:<unk>"
USE_UNK = True
UNK_MIN = 1  # unknown words a message needs before "<unk>" counts
# Unknown words of at least this length are read as the known word one typo away (0: off).
TYPO_MIN_LEN = 5


class Spelling:
    """Reads an unknown word as the known word one edit (deletion, insertion, substitution or
    transposition) away, as phone typing gets it wrong: "persyaratn", "kantro", "sayrat".

    A symmetric-delete index (SymSpell's idea): every known word and its one-letter deletions point
    to the word, so a lookup is a handful of dict probes. Ties go to no correction.
    """

    def __init__(self, words: Iterable[str]) -> None:
        index: dict[str, set[str]] = {}
        self._known = set(words)
        for word in self._known:
            if len(word) < TYPO_MIN_LEN - 1 or not word.isalpha():
                continue
            for key in {word, *_deletions(word)}:
                index.setdefault(key, set()).add(word)
        self._index = index
        self._cache: dict[str, str] = {}

    def correct(self, toks: list[str]) -> list[str]:
        """``toks`` with each unknown long alphabetic word replaced by its unique near neighbour."""
        return [
            self._word(tok) if len(tok) >= TYPO_MIN_LEN and tok not in self._known else tok for tok in toks
        ]

    def _word(self, tok: str) -> str:
        hit = self._cache.get(tok)
        if hit is not None:
            return hit
        found: set[str] = set()
        if tok.isalpha():
            for key in (tok, *_deletions(tok)):
                found.update(w for w in self._index.get(key, ()) if _one_edit(tok, w))
        best = next(iter(found)) if len(found) == 1 else tok
        if len(self._cache) < 65536:
            self._cache[tok] = best
        return best


def _deletions(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one edit (Damerau: a swap of neighbours counts one)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i = diff[0]
        return len(diff) == 2 and diff[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


@dataclass(frozen=True, slots=True)
class IntentModel:
    """A trained intent model: vocabulary, idf, weights, bias, softmax temperature."""

    labels: tuple[str, ...]
    vocab: dict[str, int]
    n_word: int
    idf: FloatArray
    weights: FloatArray  # (n_features, n_labels)
    bias: FloatArray  # (n_labels,)
    temperature: float
    data_hash: str
    spelling: Spelling = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = [f[2:] for f in self.vocab if f.startswith("w:") and not is_tag(f[2:])]
        object.__setattr__(self, "spelling", Spelling(words))

    def vectorise(
        self, toks: list[str], rare: frozenset[str] = frozenset()
    ) -> tuple[IntArray, FloatArray] | None:
        """Feature indices and TF-IDF values (each block l2-normalised), or None if nothing is known.

        ``rare`` (training only): words that count as unknown as well as themselves.
        """
        counts: dict[int, int] = {}
        vocab = self.vocab
        if TYPO_MIN_LEN:
            toks = self.spelling.correct(toks)
        unk = vocab.get(UNK_FEATURE)
        if unk is not None:
            n_unk = sum(1 for t in toks if not is_tag(t) and (t in rare or "w:" + t not in vocab))
            if n_unk >= UNK_MIN:
                counts[unk] = n_unk
        for feat in word_features(toks):
            j = vocab.get(feat)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for feat in char_features(toks):
            j = vocab.get(feat)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return None
        idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        vals = (1.0 + np.log(tf)) * self.idf[idx]
        word = idx < self.n_word
        for mask in (word, ~word):
            norm = math.sqrt(float(np.dot(vals[mask], vals[mask])))
            if norm > 0:
                vals[mask] /= norm
        return idx, vals

    def probabilities(self, toks: list[str]) -> FloatArray | None:
        """Calibrated probabilities over ``labels``, or None when no feature is known."""
        vec = self.vectorise(toks)
        if vec is None:
            return None
        idx, vals = vec
        logits = vals @ self.weights[idx] + self.bias
        logits = logits / self.temperature
        logits -= logits.max()
        exp = np.exp(logits)
        result: FloatArray = exp / exp.sum()
        return result

    def save(self, directory: Path) -> Path:
        """Write ``intent_model.npz`` + ``intent_model.json`` atomically; returns the JSON path."""
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "model_version": MODEL_VERSION,
            "data_hash": self.data_hash,
            "labels": list(self.labels),
            "n_word": self.n_word,
            "temperature": self.temperature,
            "vocab": self.vocab,
        }
        _atomic_write(
            directory / "intent_model.npz",
            lambda fh: np.savez(fh, idf=self.idf, weights=self.weights, bias=self.bias),
        )
        # The JSON is written last: its presence with a matching hash means the pair is complete.
        _atomic_write(
            directory / "intent_model.json",
            lambda fh: fh.write(json.dumps(meta, ensure_ascii=False).encode()),
        )
        return directory / "intent_model.json"

    @classmethod
    def load(cls, directory: Path) -> IntentModel:
        """Read a model written by :meth:`save`; raises ModelError if missing or incompatible."""
        try:
            meta = json.loads((directory / "intent_model.json").read_text(encoding="utf-8"))
            with np.load(directory / "intent_model.npz") as arrays:
                idf = np.asarray(arrays["idf"], dtype=np.float64)
                weights = np.asarray(arrays["weights"], dtype=np.float64)
                bias = np.asarray(arrays["bias"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the NLU model in {directory}: {exc}") from exc
        if meta.get("model_version") != MODEL_VERSION:
            raise ModelError(f"model in {directory} was trained by another version; retrain it")
        return cls(
            labels=tuple(meta["labels"]),
            vocab={str(k): int(v) for k, v in meta["vocab"].items()},
            n_word=int(meta["n_word"]),
            idf=idf,
            weights=weights,
            bias=bias,
            temperature=float(meta["temperature"]),
            data_hash=str(meta["data_hash"]),
        )


def stored_hash(directory: Path) -> str | None:
    """The data hash of the model stored in ``directory`` (None if absent or unreadable)."""
    try:
        meta = json.loads((directory / "intent_model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("model_version") != MODEL_VERSION:
        return None
    value = meta.get("data_hash")
    return str(value) if value else None


def _atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build_vocab(docs: Sequence[list[str]]) -> tuple[dict[str, int], int, FloatArray, frozenset[str]]:
    """Vocabulary (words first, then char n-grams seen in >= CHAR_MIN_DF examples), smooth idf, and
    the words seen in one example only (which train the "<unk>" feature)."""
    word_df: dict[str, int] = {}
    char_df: dict[str, int] = {}
    for toks in docs:
        for feat in set(word_features(toks)):
            word_df[feat] = word_df.get(feat, 0) + 1
        for feat in set(char_features(toks)):
            char_df[feat] = char_df.get(feat, 0) + 1
    rare = frozenset(f[2:] for f, df in word_df.items() if df == 1 and f.startswith("w:"))
    if USE_UNK:
        word_df[UNK_FEATURE] = max(1, sum(any(t in rare for t in toks) for toks in docs))
    words = sorted(word_df)
    chars = sorted(f for f, df in char_df.items() if df >= CHAR_MIN_DF)
    vocab = {f: i for i, f in enumerate(words)}
    vocab.update({f: len(words) + i for i, f in enumerate(chars)})
    n = len(docs)
    df = np.array([word_df[f] for f in words] + [char_df[f] for f in chars], dtype=np.float64)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    return vocab, len(words), idf, rare


def _matrix(model: IntentModel, docs: Sequence[list[str]], rare: frozenset[str] = frozenset()) -> Any:
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for toks in docs:
        vec = model.vectorise(toks, rare)
        if vec is not None:
            indices.extend(vec[0].tolist())
            values.extend(vec[1].tolist())
        indptr.append(len(indices))
    return csr_matrix(
        (np.array(values), np.array(indices, dtype=np.int64), np.array(indptr)),
        shape=(len(docs), len(model.vocab)),
    )


def class_weights(y: IntArray, n_labels: int, power: float = CLASS_WEIGHT_POWER) -> dict[int, float]:
    """Per-class weights ``(mean size / class size) ** power`` (1.0 = sklearn's "balanced")."""
    counts = np.bincount(y, minlength=n_labels).astype(np.float64)
    scale = (counts.mean() / np.maximum(counts, 1.0)) ** power
    return {i: float(w) for i, w in enumerate(scale)}


def _linear(clf: Any, x: Any) -> tuple[FloatArray, FloatArray]:
    """A fitted sklearn linear classifier's (weights, bias), divided by its scores' spread on ``x``."""
    spread = float(np.std(clf.decision_function(x))) or 1.0
    weights = np.asarray(clf.coef_.T, dtype=np.float64) / spread
    bias = np.asarray(clf.intercept_, dtype=np.float64) / spread
    return weights, bias


def _fit(docs: Sequence[list[str]], labels: Sequence[str], c: float) -> IntentModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    names = tuple(sorted(set(labels)))
    vocab, n_word, idf, rare = _build_vocab(docs)
    empty = np.zeros((len(vocab), len(names)))
    draft = IntentModel(names, vocab, n_word, idf, empty, np.zeros(len(names)), 1.0, "")
    x = _matrix(draft, docs, rare)
    y = np.array([names.index(label) for label in labels])
    weighting = class_weights(y, len(names))
    logreg = LogisticRegression(C=c, solver="newton-cg", max_iter=500, tol=1e-4, class_weight=weighting)
    weights, bias = _linear(logreg.fit(x, y), x)
    if SVM_MIX > 0:
        svm = LinearSVC(C=SVM_C, class_weight=weighting, max_iter=5000)
        svm_weights, svm_bias = _linear(svm.fit(x, y), x)
        weights = (1 - SVM_MIX) * weights + SVM_MIX * svm_weights
        bias = (1 - SVM_MIX) * bias + SVM_MIX * svm_bias
    return IntentModel(names, vocab, n_word, idf, np.ascontiguousarray(weights), bias, 1.0, "")


def _fit_temperature(logits: FloatArray, y: IntArray) -> float:
    """The softmax temperature that minimises the negative log-likelihood of held-out predictions."""
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_p[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded")
    return float(res.x)


def train(
    docs: Sequence[list[str]],
    labels: Sequence[str],
    *,
    data_hash: str,
    c: float = DEFAULT_C,
    folds: int = 3,
    seed: int = 0,
    progress: Progress | None = None,
) -> IntentModel:
    """Fit the model on normalised token lists; calibrate the temperature on ``folds`` held-out folds."""
    from sklearn.model_selection import StratifiedKFold

    report = progress or (lambda _step, _fraction: None)
    names = tuple(sorted(set(labels)))
    y = np.array([names.index(label) for label in labels])
    logits = np.zeros((len(docs), len(names)))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        report(f"calibration fold {k + 1}/{folds}", k / (folds + 1))
        fold_model = _fit([docs[i] for i in train_idx], [labels[i] for i in train_idx], c)
        order = [fold_model.labels.index(name) for name in names]
        for i in test_idx:
            vec = fold_model.vectorise(docs[i])
            if vec is None:
                continue
            logits[i] = (vec[1] @ fold_model.weights[vec[0]] + fold_model.bias)[order]
    temperature = _fit_temperature(logits, y)
    report("final model", folds / (folds + 1))
    final = _fit(docs, labels, c)
    report("done", 1.0)
    return IntentModel(
        final.labels,
        final.vocab,
        final.n_word,
        final.idf,
        final.weights,
        final.bias,
        temperature,
        data_hash,
    )
