"""``pontibot nlu``: train the embedded model, batch-parse stdin, evaluate like ``rasa test nlu``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nlu.pipeline import DEFAULT_THRESHOLD, EmbeddedParser, build_parser, train_model
from nlu.training_data import TEST_DIR, TRAIN_DIR, load

app = typer.Typer(
    name="nlu",
    help="Train, run and evaluate the language understanding (Rasa-compatible data and JSON).",
    no_args_is_help=True,
    add_completion=False,
)

ModelDir = Annotated[Path, typer.Option("--model-dir", help="Where the trained model artifact lives.")]
Threshold = Annotated[
    float,
    typer.Option("--threshold", min=0.0, max=1.0, help="Below this confidence: nlu_fallback."),
]
DEFAULT_MODEL_DIR = Path("var/nlu")
_err = Console(stderr=True)

# Characters that JSON leaves unescaped but that some readers treat as line breaks.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=_err,
    )


def _embedded(threshold: float, model_dir: Path) -> EmbeddedParser:
    parser = build_parser("embedded", threshold=threshold, model_dir=model_dir)
    assert isinstance(parser, EmbeddedParser)
    return parser


@app.command()
def train(
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
    data: Annotated[Path, typer.Option("--data", help="Rasa NLU training data.")] = TRAIN_DIR,
) -> None:
    """Train the intent model on the Rasa YAML data and write the artifact into --model-dir."""
    with _progress_bar() as bar:
        task = bar.add_task("training", total=1.0)

        def report(step: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=step)

        model = train_model(model_dir, data_dir=data, progress=report)
    _err.print(
        f"[green]trained[/] {len(model.labels)} intents, {len(model.vocab)} features, "
        f"temperature {model.temperature:.3f} → {model_dir}"
    )


def to_json_line(payload: dict[str, object]) -> str:
    """One JSON object on exactly one line (no raw characters a reader could split on)."""
    line = json.dumps(payload, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        if raw in line:
            line = line.replace(raw, escaped)
    return line


@app.command()
def parse(
    threshold: Threshold = DEFAULT_THRESHOLD,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
) -> None:
    """Read one message per line on stdin; write one parse JSON object per line (DESIGN 3.3)."""
    parser = _embedded(threshold, model_dir)
    out = sys.stdout
    # Split on "\n" only: "\r", form feeds or U+2028 inside a message must not make extra lines.
    for raw in sys.stdin.buffer:
        text = raw.decode("utf-8", errors="replace")
        if text.endswith("\n"):
            text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
        out.write(to_json_line(parser.parse_sync(text).to_dict()) + "\n")
        out.flush()


@app.command()
def evaluate(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Rasa NLU data to test (default: the test set; with --cv the training data)."
        ),
    ] = None,
    cv: Annotated[int | None, typer.Option("--cv", min=2, help="K-fold cross-validation on --data.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the reports.")] = Path("var/nlu/results"),
    threshold: Threshold = DEFAULT_THRESHOLD,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
) -> None:
    """Intent report (precision/recall/F1), errors, confusion-matrix PNG and entity accuracy."""
    from nlu.evaluate import cross_validate, predict, write_reports

    if cv:
        dataset = load(data or TRAIN_DIR)
        with _progress_bar() as bar:
            task = bar.add_task(f"{cv}-fold cross-validation", total=cv)
            predictions = cross_validate(
                dataset,
                cv,
                threshold=threshold,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
    else:
        dataset = load(data or TEST_DIR, synonyms_from=[TRAIN_DIR])
        parser = _embedded(threshold, model_dir)
        predictions = predict(parser.parse_sync, dataset.examples)
    head = write_reports(predictions, out)
    table = Table(title=f"NLU evaluation ({head['examples']} examples, threshold {threshold})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "accuracy",
        "accuracy_fallback_as_oos",
        "macro_f1",
        "in_scope_accuracy",
        "out_of_scope_rejection",
        "entity_accuracy",
    ):
        table.add_row(key, f"{head[key]:.4f}")
    Console().print(table)
    Console().print(f"reports written to {out}")
