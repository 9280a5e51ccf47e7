"""How sure must the NLU be before the bot acts? A sweep of the confirm levels on tuning data only.

Run: ``.venv/bin/python bench/confirm_levels.py`` (part of ``make bench``). For each candidate
``nlu.confirm_threshold`` / ``nlu.record_threshold`` / ``nlu.ambiguity_margin`` it replays the parses of
the tuning set (``blind/dev.yml``) and of 5-fold cross-validation on the training data through
``FlowEngine.unsure_options`` and counts what residents would get: the bot acts on the right intent,
asks with the right journey among its buttons, asks without it, or acts on a wrong intent. The blind
sets are never used here: config.yml's levels are chosen from this table, then reported on the blind
sets by ``bench/nlu_bench.py``.

Writes the table into docs/BENCHMARKS.md between ``<!-- confirm:start -->`` and ``<!-- confirm:end -->``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchdoc import replace_section  # noqa: E402 - bench/ is the script's directory

GRID = [
    (0.3, 0.3, 0.0),  # no confirm band: act on everything above the fallback threshold
    (0.4, 0.6, 0.1),
    (0.5, 0.6, 0.1),
    (0.5, 0.7, 0.1),
    (0.5, 0.7, 0.15),
    (0.6, 0.7, 0.15),
    (0.6, 0.8, 0.2),
    (0.7, 0.8, 0.2),
]
OUTCOMES = ("acts_right", "asks_right", "asks_wrong", "not_understood", "acts_wrong")


def outcomes(predictions: Sequence[object], engine: object, levels: object) -> dict[str, float]:
    """Shares of the five outcomes for ``predictions`` at ``levels``."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for p in predictions:
        expected = p.example.intent  # type: ignore[attr-defined]
        top = p.top_intent  # type: ignore[attr-defined]
        options = engine.unsure_options(p.result, levels)  # type: ignore[attr-defined]
        if options:
            counts["asks_right" if expected in options else "asks_wrong"] += 1
        elif top == expected or (expected == "out_of_scope" and top in ("nlu_fallback", "out_of_scope")):
            counts["acts_right"] += 1
        elif top == "nlu_fallback":
            counts["not_understood"] += 1
        else:
            counts["acts_wrong"] += 1
    total = max(len(predictions), 1)
    return {key: value / total for key, value in counts.items()}


def main() -> None:
    """Parse the tuning data once, replay it through the engine's decision at each level."""
    from flows.engine import Confidence
    from flows.registry import build_engine
    from nlu.evaluate import cross_validate, predict
    from nlu.pipeline import DEFAULT_THRESHOLD, EmbeddedParser, build_parser
    from nlu.training_data import BLIND_DEV, TRAIN_DIR, load

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="confirm-") as tmp:
        parser = build_parser("embedded", threshold=DEFAULT_THRESHOLD, model_dir=Path(tmp))
        assert isinstance(parser, EmbeddedParser)
        dev = predict(parser.parse_sync, load(BLIND_DEV, synonyms_from=[TRAIN_DIR]).examples)
    cv = cross_validate(load(), 5, threshold=DEFAULT_THRESHOLD)
    engine = build_engine()
    lines = [
        "## Confirm levels (`bench/confirm_levels.py`)",
        "",
        f"Command: `.venv/bin/python bench/confirm_levels.py` — {started}. Parses of the tuning set "
        f"`blind/dev.yml` ({len(dev)} messages) and of 5-fold cross-validation on the training data "
        f"({len(cv)}), replayed through `FlowEngine.unsure_options` at each level (confirm / record / "
        "margin); shares of messages. The blind sets are not used to choose.",
        "",
        "| levels | data | acts, right | asks, right offered | asks, not offered | not understood | "
        "acts on a wrong intent |",
        "|---|---|---|---|---|---|---|",
    ]
    for confirm, record, margin in GRID:
        levels = Confidence(fallback=DEFAULT_THRESHOLD, confirm=confirm, record=record, margin=margin)
        for name, found in (("dev", dev), ("cv", cv)):
            row = outcomes(found, engine, levels)
            lines.append(
                f"| {confirm} / {record} / {margin} | {name} | "
                + " | ".join(f"{row[key]:.4f}" for key in OUTCOMES)
                + " |"
            )
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        replace_section("confirm", section)


if __name__ == "__main__":
    main()
