"""NLU benchmark: accuracy, macro-F1, out-of-scope rejection, entity accuracy, latency, training, RSS.

Run: ``.venv/bin/python bench/nlu_bench.py`` (part of ``make bench``). Writes its figures into
docs/BENCHMARKS.md between ``<!-- nlu:start -->`` and ``<!-- nlu:end -->`` and prints them.
Each phase runs in a fresh subprocess pinned to one CPU core, so load time and RSS are honest.

Besides the test set it reports generalisation: the blind resident sets ``nlu/data/blind/dev.yml`` (used
for tuning) and ``test.yml`` (never used for tuning), each in full and without the messages that the
training data happens to contain, and 5-fold cross-validation on the training data.
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
    "train_seconds": ("<=", 15.0),
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

from nlu.training_data import BLIND_DEV, BLIND_TEST
seen = {ex.text.casefold() for ex in load(TRAIN_DIR).examples}
sets = {}
for name, path in (("blind_dev", BLIND_DEV), ("blind_test", BLIND_TEST)):
    examples = load(path, synonyms_from=[TRAIN_DIR]).examples
    unseen = [ex for ex in examples if ex.text.casefold() not in seen]
    for key, subset in ((name, examples), (name + "_unseen", unseen)):
        found = predict(parser.parse_sync, subset)
        sets[key] = {**summary(found), "entity_accuracy": entity_report(found)["accuracy"]}

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
print(json.dumps({"test": head, "sets": sets}))
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
        lines.append(
            f"| {label} | {int(row['examples'])} | {row['accuracy_fallback_as_oos']:.4f} | "
            f"{row['in_scope_accuracy']:.4f} | {row['out_of_scope_rejection']:.4f} | "
            f"{row['macro_f1']:.4f} | {row['entity_accuracy']:.4f} |"
        )
    return lines


def render(figures: dict[str, float], threshold: float, sets: dict[str, dict[str, float]]) -> str:
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
    lines += [
        "",
        "Rasa itself cannot be installed here (Rasa 3.6 needs Python < 3.11), so Rasa DIET was not "
        "re-run; the issue's reference figures for DIET on this machine are parse p50 ≈ 20 ms, "
        "≈ 1.1 GB RSS, 64 s to load, 3 of 16 out-of-scope messages rejected. The data in `nlu/data/` "
        "is Rasa 3.1 YAML and loads in Rasa unchanged for a side-by-side run.",
    ]
    return "\n".join(lines)


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
        ran = _child(RUN_CHILD, tmp, str(args.threshold), str(args.messages))
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
    section = render(figures, args.threshold, sets)
    print(section)
    print("\nRasa is not installed in this environment (needs Python < 3.11); not compared live.")
    if not args.no_write:
        replace_section("nlu", section)
        print(f"\nwritten to {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
