"""NLU benchmark: accuracy, macro-F1, out-of-scope rejection, entity accuracy, latency, training, RSS.

Run: ``.venv/bin/python bench/nlu_bench.py`` (part of ``make bench``). Writes its figures into
docs/BENCHMARKS.md between ``<!-- nlu:start -->`` and ``<!-- nlu:end -->`` and prints them.
Each phase runs in a fresh subprocess pinned to one CPU core, so load time and RSS are honest.

Besides the test set it reports generalisation: the blind resident sets ``nlu/data/blind/dev.yml`` (used
for tuning), ``test.yml`` and ``personas.yml`` (never used for tuning; personas.yml written by a helper
who never saw the training data), each in full and without the messages that the training data happens
to contain, and 5-fold cross-validation on the training data.

And what residents get from those parses in the dialogue (``flows.engine.FlowEngine.unsure_options``
with config.yml's ``nlu.*`` levels): the bot acts on the right intent, asks with the right journey
among its buttons, asks without it, says it did not understand an in-scope message, or acts on a
wrong intent (confidently wrong: the figure issue 18 is about).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

from benchdoc import replace_section  # noqa: E402 - bench/ is the script's directory

DOC = REPO / "docs" / "BENCHMARKS.md"
MESSAGES = 5000

TARGETS = {
    "accuracy_fallback_as_oos": (">=", 0.95),
    "out_of_scope_rejection": (">=", 0.90),
    "entity_accuracy": (">=", 0.95),
    "parse_p50_ms": ("<=", 0.5),
    "parse_p99_ms": ("<=", 2.0),
    "train_seconds": ("<=", 30.0),
    "cold_start_seconds": ("<=", 3.0),
    "peak_rss_mb": ("<=", 200.0),
}

TRAIN_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from nlu.pipeline import train_model
model = train_model(Path(sys.argv[1]))
print(json.dumps({"train_seconds": time.perf_counter() - started, "train_cpu_seconds": time.process_time(),
                  "examples": None,
                  "features": len(model.vocab), "temperature": model.temperature}))
"""

RUN_CHILD = """
import json, resource, sys, time
started = time.perf_counter()
from pathlib import Path
from nlu.pipeline import build_parser
parser = build_parser("embedded", threshold=float(sys.argv[2]), model_dir=Path(sys.argv[1]))
parser.parse_sync("halo")
cold = time.perf_counter() - started

from nlu.evaluate import entity_report, predict, summary
from nlu.training_data import TEST_DIR, TRAIN_DIR, load
test = load(TEST_DIR, synonyms_from=[TRAIN_DIR]).examples
predictions = predict(parser.parse_sync, test)
head = summary(predictions)
head["entity_accuracy"] = entity_report(predictions)["accuracy"]

from nlu.training_data import BLIND_DEV, BLIND_PERSONAS, BLIND_TEST
from flows.engine import Confidence
from flows.registry import build_engine
engine = build_engine()
levels = Confidence(**json.loads(sys.argv[4]))

def dialogue(found):
    counts = {"acts_right": 0, "asks_right": 0, "asks_wrong": 0, "not_understood": 0, "acts_wrong": 0}
    for p in found:
        expected = p.example.intent
        options = engine.unsure_options(p.result, levels)
        rejected = p.top_intent in ("nlu_fallback", "out_of_scope")
        if options:
            counts["asks_right" if expected in options else "asks_wrong"] += 1
        elif p.top_intent == expected or (expected == "out_of_scope" and rejected):
            counts["acts_right"] += 1
        elif p.top_intent == "nlu_fallback":
            counts["not_understood"] += 1
        else:
            counts["acts_wrong"] += 1
    return {key: value / max(len(found), 1) for key, value in counts.items()}

seen = {ex.text.casefold() for ex in load(TRAIN_DIR).examples}
sets = {}
dialogues = {}
for name, path in (("blind_dev", BLIND_DEV), ("blind_test", BLIND_TEST), ("blind_personas", BLIND_PERSONAS)):
    if not path.exists():
        continue
    examples = load(path, synonyms_from=[TRAIN_DIR]).examples
    unseen = [ex for ex in examples if ex.text.casefold() not in seen]
    for key, subset in ((name, examples), (name + "_unseen", unseen)):
        found = predict(parser.parse_sync, subset)
        sets[key] = {**summary(found), "entity_accuracy": entity_report(found)["accuracy"]}
        if key == name:
            dialogues[key] = dialogue(found)

# Latency over N messages: the test set plus variants (typos, case, suffixes), cycled.
texts = [ex.text for ex in test]
variants = []
for i, t in enumerate(texts):
    variants += [t, t.upper(), t + " kak", "min " + t, t.replace("a", "aa", 1), t + " ?" * (i % 3)]
stream = [variants[i % len(variants)] for i in range(int(sys.argv[3]))]
timings = []
clock = time.perf_counter_ns
for text in stream:
    t0 = clock()
    parser.parse_sync(text)
    timings.append(clock() - t0)
timings.sort()
n = len(timings)
# The same stream timed in CPU time of this thread: what the parse costs when other processes share
# the core (wall-clock p99 then mostly measures the scheduler).
cpu = []
for text in stream:
    t0 = time.thread_time_ns()
    parser.parse_sync(text)
    cpu.append(time.thread_time_ns() - t0)
cpu.sort()
head.update({
    "parse_cpu_p50_ms": cpu[n // 2] / 1e6,
    "parse_cpu_p99_ms": cpu[int(n * 0.99) - 1] / 1e6,
    "cold_start_seconds": cold,
    "parse_p50_ms": timings[n // 2] / 1e6,
    "parse_p99_ms": timings[int(n * 0.99) - 1] / 1e6,
    "parse_mean_ms": sum(timings) / n / 1e6,
    "messages": n,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
})
print(json.dumps({"test": head, "sets": sets, "dialogues": dialogues}))
"""

CV_CHILD = """
import json, sys
from nlu.evaluate import cross_validate, entity_report, summary
from nlu.training_data import load
found = cross_validate(load(), int(sys.argv[1]), threshold=float(sys.argv[2]))
print(json.dumps({**summary(found), "entity_accuracy": entity_report(found)["accuracy"]}))
"""

SET_LABELS = {
    "test": "`nlu/data/test/` (old test set)",
    "blind_dev": "`blind/dev.yml` (tuning set)",
    "blind_dev_unseen": "`blind/dev.yml`, messages not in the training data",
    "blind_test": "`blind/test.yml` (never tuned on)",
    "blind_test_unseen": "`blind/test.yml`, messages not in the training data",
    "blind_personas": "`blind/personas.yml` (issue 18's fresh set, written blind, never tuned on)",
    "blind_personas_unseen": "`blind/personas.yml`, messages not in the training data",
    "cv": "5-fold cross-validation on the training data",
}


def _child(code: str, *args: str) -> dict[str, object]:
    cmd = [sys.executable, "-c", code, *args]
    if hasattr(os, "sched_setaffinity"):
        cpu = sorted(os.sched_getaffinity(0))[0]
        cmd = ["taskset", "-c", str(cpu), *cmd] if _has_taskset() else cmd
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _has_taskset() -> bool:
    from shutil import which

    return which("taskset") is not None


def _check(name: str, value: float) -> str:
    op, target = TARGETS[name]
    ok = value >= target if op == ">=" else value <= target
    return f"{op} {target:g} {'✅' if ok else '❌'}"


# Issue 18's targets for the fresh blind set and cross-validation (accuracy, rejection, macro-F1).
SET_TARGETS = {
    "blind_personas": (0.96, 0.95, 0.95),
    "cv": (0.90, None, None),
}


def _mark(value: float, target: float | None) -> str:
    return (
        f"{value:.4f}"
        if target is None
        else f"{value:.4f} {'✅' if value >= target else '❌'} (>= {target:g})"
    )


def render_sets(sets: dict[str, dict[str, float]]) -> list[str]:
    """The generalisation table: one row per data set (test, blind sets, cross-validation)."""
    lines = [
        "",
        "Generalisation (intent accuracy counts nlu_fallback on an out-of-scope message as correct):",
        "",
        "| data | messages | accuracy | in-scope accuracy | out-of-scope rejection | macro-F1 | entities |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, label in SET_LABELS.items():
        if key not in sets:
            continue
        row = sets[key]
        accuracy, rejection, macro = SET_TARGETS.get(key, (None, None, None))
        lines.append(
            f"| {label} | {int(row['examples'])} | {_mark(row['accuracy_fallback_as_oos'], accuracy)} | "
            f"{row['in_scope_accuracy']:.4f} | {_mark(row['out_of_scope_rejection'], rejection)} | "
            f"{_mark(row['macro_f1'], macro)} | {row['entity_accuracy']:.4f} |"
        )
    return lines


def render_dialogues(dialogues: dict[str, dict[str, float]], levels: dict[str, float]) -> list[str]:
    """What residents get from those parses: act, ask, not understood, or confidently wrong."""
    lines = [
        "",
        f"The dialogue on the blind sets (`FlowEngine.unsure_options` with config.yml's levels: confirm "
        f"{levels['confirm']}, record {levels['record']}, margin {levels['margin']}; share of messages):",
        "",
        "| data | acts, right | asks, right journey offered | asks, not offered | "
        "in-scope not understood | acts on a wrong intent |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in dialogues.items():
        lines.append(
            f"| {SET_LABELS[key]} | {row['acts_right']:.4f} | {row['asks_right']:.4f} | "
            f"{row['asks_wrong']:.4f} | {row['not_understood']:.4f} | {row['acts_wrong']:.4f} |"
        )
    return lines


def render(
    figures: dict[str, float],
    threshold: float,
    sets: dict[str, dict[str, float]],
    dialogues: dict[str, dict[str, float]],
    levels: dict[str, float],
) -> str:
    """The Markdown section for docs/BENCHMARKS.md."""
    rows = [
        (
            "test-set intent accuracy (fallback on out_of_scope counts as correct)",
            "accuracy_fallback_as_oos",
            "{:.4f}",
        ),
        ("test-set intent accuracy (strict: every fallback is an error)", "accuracy", "{:.4f}"),
        ("macro-F1", "macro_f1", "{:.4f}"),
        ("in-scope accuracy", "in_scope_accuracy", "{:.4f}"),
        ("out-of-scope rejection (out_of_scope or nlu_fallback)", "out_of_scope_rejection", "{:.4f}"),
        ("entity canonical-value accuracy", "entity_accuracy", "{:.4f}"),
        (f"parse p50 over {int(figures['messages'])} messages, one core", "parse_p50_ms", "{:.3f} ms"),
        ("parse p99", "parse_p99_ms", "{:.3f} ms"),
        ("parse mean", "parse_mean_ms", "{:.3f} ms"),
        (
            "parse p50 in CPU time of the parsing thread (unaffected by other processes)",
            "parse_cpu_p50_ms",
            "{:.3f} ms",
        ),
        ("parse p99 in CPU time of the parsing thread", "parse_cpu_p99_ms", "{:.3f} ms"),
        ("training (fresh process, one core)", "train_seconds", "{:.1f} s"),
        ("training, CPU time of that process", "train_cpu_seconds", "{:.1f} s"),
        ("cold start (import + load artifact + first parse)", "cold_start_seconds", "{:.2f} s"),
        ("peak RSS of the parsing process", "peak_rss_mb", "{:.0f} MB"),
    ]
    lines = [
        "## NLU (`bench/nlu_bench.py`)",
        "",
        f"Command: `.venv/bin/python bench/nlu_bench.py` — {time.strftime('%Y-%m-%d %H:%M')}, "
        f"Python {platform.python_version()}, {platform.machine()}, threshold {threshold}, "
        f"test set `nlu/data/test/` ({int(figures['examples'])} messages, never trained on); "
        f"load average {figures['load_average']:.1f} on {os.cpu_count()} cores at the start.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
    ]
    for label, key, fmt in rows:
        target = _check(key, figures[key]) if key in TARGETS else ""
        lines.append(f"| {label} | {fmt.format(figures[key])} | {target} |")
    lines += render_sets(sets)
    lines += render_dialogues(dialogues, levels)
    lines += ["", "Rasa DIET on the same data and sets: the Rasa section below (`make bench-rasa`)."]
    return "\n".join(lines)


def config_levels() -> dict[str, float]:
    """The confirm levels config.yml sets (``nlu.*``), as :class:`flows.engine.Confidence` fields."""
    import yaml

    nlu = (yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8")) or {}).get("nlu") or {}
    keys = {"threshold": "fallback", "confirm_threshold": "confirm", "record_threshold": "record",
            "ambiguity_margin": "margin"}  # fmt: skip
    return {field: float(nlu[key]) for key, field in keys.items() if key in nlu}


def main() -> None:
    """Train, load, evaluate and time the embedded NLU; record the figures."""
    from nlu.pipeline import DEFAULT_THRESHOLD

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--messages", type=int, default=MESSAGES)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--cv", type=int, default=5, help="cross-validation folds (0: skip)")
    args = ap.parse_args()
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nlu-bench-") as tmp:
        trained = _child(TRAIN_CHILD, tmp)
        levels = config_levels()
        ran = _child(RUN_CHILD, tmp, str(args.threshold), str(args.messages), json.dumps(levels))
    test: dict[str, float] = ran["test"]  # type: ignore[assignment]
    sets: dict[str, dict[str, float]] = {"test": test, **ran["sets"]}  # type: ignore[dict-item]
    if args.cv:
        sets["cv"] = _child(CV_CHILD, str(args.cv), str(args.threshold))  # type: ignore[assignment]
    figures = {
        **{k: float(v) for k, v in test.items()},
        "train_seconds": float(trained["train_seconds"]),  # type: ignore[arg-type]
        "train_cpu_seconds": float(trained["train_cpu_seconds"]),  # type: ignore[arg-type]
        "load_average": load_average,
    }
    section = render(figures, args.threshold, sets, ran["dialogues"], levels)  # type: ignore[arg-type]
    print(section)
    if not args.no_write:
        replace_section("nlu", section)
        print(f"\nwritten to {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
