"""Evaluation like ``rasa test nlu``: intent report, errors, confusion matrix, entity accuracy.

``nlu_fallback`` is kept as a predicted label in the report and the matrix. The summary also gives
``accuracy_fallback_as_oos``: a fallback on an out-of-scope message counts as correct, because both
mean "the bot did not pretend to understand" (this is what out-of-scope rejection measures).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlu.result import FALLBACK_INTENT, ParseResult
from nlu.training_data import Example, TrainingData

OUT_OF_SCOPE = "out_of_scope"
THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Parse = Callable[[str], ParseResult]


@dataclass(frozen=True, slots=True)
class Prediction:
    """One evaluated example: gold data and the parse result (before and after the threshold)."""

    example: Example
    result: ParseResult
    top_intent: str
    top_confidence: float


def predict(parse: Parse, examples: Sequence[Example]) -> list[Prediction]:
    """Parse every example (``parse`` applies the threshold; the raw top guess is kept as well)."""
    out = []
    for ex in examples:
        result = parse(ex.text)
        ranking = [s for s in result.intent_ranking if s.name != FALLBACK_INTENT]
        if ranking:
            out.append(Prediction(ex, result, ranking[0].name, ranking[0].confidence))
        else:  # nothing the model knows: rejected at any threshold
            out.append(Prediction(ex, result, FALLBACK_INTENT, 0.0))
    return out


def _is_rejection(name: str) -> bool:
    return name in {OUT_OF_SCOPE, FALLBACK_INTENT}


def intent_report(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Per-intent precision/recall/F1/support (+ ``confused_with``), accuracy, macro/weighted avg."""
    from sklearn.metrics import classification_report

    gold = [p.example.intent for p in predictions]
    pred = [p.result.intent.name for p in predictions]
    labels = sorted(set(gold) | set(pred))
    report: dict[str, Any] = classification_report(
        gold, pred, labels=labels, output_dict=True, zero_division=0
    )
    report["accuracy"] = sum(g == p for g, p in zip(gold, pred, strict=True)) / max(len(gold), 1)
    for label in labels:
        confused: dict[str, int] = {}
        for g, p in zip(gold, pred, strict=True):
            if g == label and p != label:
                confused[p] = confused.get(p, 0) + 1
        if label in report:
            report[label]["confused_with"] = dict(sorted(confused.items(), key=lambda kv: -kv[1])[:5])
    return report


def summary(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """The headline figures: accuracy, macro-F1, out-of-scope rejection, in-scope accuracy."""
    report = intent_report(predictions)
    n = max(len(predictions), 1)
    lenient = sum(
        p.result.intent.name == p.example.intent
        or (p.example.intent == OUT_OF_SCOPE and _is_rejection(p.result.intent.name))
        for p in predictions
    )
    oos = [p for p in predictions if p.example.intent == OUT_OF_SCOPE]
    ins = [p for p in predictions if p.example.intent != OUT_OF_SCOPE]
    return {
        "examples": len(predictions),
        "accuracy": round(report["accuracy"], 4),
        "accuracy_fallback_as_oos": round(lenient / n, 4),
        # Over the true intents (nlu_fallback, which has no gold examples, would count as F1 0).
        "macro_f1": round(_macro_f1(predictions), 4),
        "weighted_f1": round(report["weighted avg"]["f1-score"], 4),
        "out_of_scope_rejection": round(
            sum(_is_rejection(p.result.intent.name) for p in oos) / max(len(oos), 1), 4
        ),
        "in_scope_accuracy": round(
            sum(p.result.intent.name == p.example.intent for p in ins) / max(len(ins), 1), 4
        ),
        "in_scope_fallback_rate": round(
            sum(p.result.intent.name == FALLBACK_INTENT for p in ins) / max(len(ins), 1), 4
        ),
    }


def _macro_f1(predictions: Sequence[Prediction]) -> float:
    from sklearn.metrics import f1_score

    gold = [p.example.intent for p in predictions]
    pred = [p.result.intent.name for p in predictions]
    return float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0))


def threshold_sweep(
    predictions: Sequence[Prediction], thresholds: Sequence[float] = THRESHOLDS
) -> list[dict[str, float]]:
    """What in-scope accuracy and out-of-scope rejection each fallback threshold would give."""
    rows = []
    oos = [p for p in predictions if p.example.intent == OUT_OF_SCOPE]
    ins = [p for p in predictions if p.example.intent != OUT_OF_SCOPE]
    for t in thresholds:
        in_acc = sum(p.top_intent == p.example.intent and p.top_confidence >= t for p in ins)
        rejected = sum(p.top_intent == OUT_OF_SCOPE or p.top_confidence < t for p in oos)
        n_in, n_oos = max(len(ins), 1), max(len(oos), 1)
        rows.append(
            {
                "threshold": t,
                "in_scope_accuracy": round(in_acc / n_in, 4),
                "out_of_scope_rejection": round(rejected / n_oos, 4),
                "accuracy_fallback_as_oos": round((in_acc + rejected) / (n_in + n_oos), 4),
            }
        )
    return rows


def entity_report(predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Canonical-value accuracy per entity type (gold found with the same value and an overlapping span)."""
    per: dict[str, dict[str, int]] = {}
    errors: list[dict[str, Any]] = []
    for p in predictions:
        gold_types = {a.entity for a in p.example.entities}
        for ann in p.example.entities:
            row = per.setdefault(ann.entity, {"gold": 0, "correct": 0, "predicted": 0, "matched": 0})
            row["gold"] += 1
            hit = any(
                e.entity == ann.entity and e.value == ann.value and e.start < ann.end and ann.start < e.end
                for e in p.result.entities
            )
            if hit:
                row["correct"] += 1
            else:
                errors.append(
                    {
                        "text": p.example.text,
                        "entity": ann.entity,
                        "expected": ann.value,
                        "span": p.example.text[ann.start : ann.end],
                        "predicted": [
                            {"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                            for e in p.result.entities
                        ],
                    }
                )
        for ent in p.result.entities:
            if ent.entity in gold_types or ent.entity in per:
                row = per.setdefault(ent.entity, {"gold": 0, "correct": 0, "predicted": 0, "matched": 0})
                row["predicted"] += 1
                if any(a.entity == ent.entity and a.value == ent.value for a in p.example.entities):
                    row["matched"] += 1
    total_gold = sum(r["gold"] for r in per.values())
    total_correct = sum(r["correct"] for r in per.values())
    return {
        "accuracy": round(total_correct / max(total_gold, 1), 4),
        "gold": total_gold,
        "correct": total_correct,
        "per_entity": {
            name: {
                **row,
                "accuracy": round(row["correct"] / max(row["gold"], 1), 4),
                "precision": round(row["matched"] / max(row["predicted"], 1), 4),
            }
            for name, row in sorted(per.items())
        },
        "errors": errors,
    }


def intent_errors(predictions: Sequence[Prediction]) -> list[dict[str, Any]]:
    """Rasa's intent_errors.json: misclassified examples with the prediction and its confidence."""
    return [
        {
            "text": p.example.text,
            "intent": p.example.intent,
            "intent_prediction": {
                "name": p.result.intent.name,
                "confidence": round(p.result.intent.confidence, 4),
            },
            "top_guess": {"name": p.top_intent, "confidence": round(p.top_confidence, 4)},
        }
        for p in predictions
        if p.result.intent.name != p.example.intent
    ]


def plot_confusion_matrix(predictions: Sequence[Prediction], path: Path) -> Path:
    """Write the intent confusion matrix as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    gold = [p.example.intent for p in predictions]
    pred = [p.result.intent.name for p in predictions]
    labels = sorted(set(gold) | set(pred))
    matrix = confusion_matrix(gold, pred, labels=labels)
    size = max(6.0, 0.42 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels=labels, fontsize=8)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title(f"Intent confusion matrix ({len(gold)} examples)")
    peak = matrix.max() if matrix.size else 0
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                colour = "white" if matrix[i, j] > peak / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(predictions: Sequence[Prediction], out_dir: Path) -> dict[str, Any]:
    """Write intent_report.json, intent_errors.json, entity_report.json, the PNG and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = intent_report(predictions)
    entities = entity_report(predictions)
    head = {
        **summary(predictions),
        "entity_accuracy": entities["accuracy"],
        "threshold_sweep": threshold_sweep(predictions),
    }
    files = {
        "intent_report.json": report,
        "intent_errors.json": intent_errors(predictions),
        "entity_report.json": entities,
        "summary.json": head,
    }
    for name, content in files.items():
        (out_dir / name).write_text(
            json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    plot_confusion_matrix(predictions, out_dir / "intent_confusion_matrix.png")
    return head


def cross_validate(
    data: TrainingData,
    folds: int,
    *,
    threshold: float,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Prediction]:
    """K-fold cross-validation over ``data``: train on K-1 folds, predict the held-out fold."""
    from sklearn.model_selection import StratifiedKFold

    from nlu.classifier import train
    from nlu.entities import default_extractor
    from nlu.normalize import default_lexicon
    from nlu.pipeline import EmbeddedParser, classifier_tokens

    examples = data.examples
    labels = [ex.intent for ex in examples]
    lexicon = default_lexicon()
    extractor = default_extractor()
    docs = [classifier_tokens(ex.text, extractor.extract(ex.text), lexicon) for ex in examples]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predictions: list[Prediction] = []
    for k, (train_idx, test_idx) in enumerate(splitter.split(docs, labels)):
        if progress:
            progress(k, folds)
        model = train([docs[i] for i in train_idx], [labels[i] for i in train_idx], data_hash=f"cv{k}")
        parser = EmbeddedParser(model, extractor, threshold=threshold)
        predictions.extend(predict(parser.parse_sync, [examples[i] for i in test_idx]))
    if progress:
        progress(folds, folds)
    return predictions


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` and return its result and the seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started
