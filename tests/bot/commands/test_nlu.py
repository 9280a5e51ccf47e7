"""``pontibot nlu parse`` and ``evaluate`` as a resident's batch job would run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from bot.commands.nlu import app
from nlu.pipeline import EmbeddedParser
from tests.conftest import REPO

RUN = "from bot.commands.nlu import app; app()"


def test_parse_writes_one_json_line_per_input_line(parser: EmbeddedParser, nlu_model_dir: Path) -> None:
    # ``parser`` has trained the session's model, so the subprocess only loads it.
    lines = [
        "syarat bikin ktp",
        "",
        "😀🙏",
        "x" * 10_000,
        "halo\rmin\x0bapa\x0ckabar\x1c\x1d\x1e\u2028\u2029\x85",
        "سلام 你好",
        '/office_hours{"office": "mpp"}',
        "skor bola semalam",
    ]
    stdin = ("\n".join(lines) + "\n").encode()
    proc = subprocess.run(
        [sys.executable, "-c", RUN, "parse", "--model-dir", str(nlu_model_dir)],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    out = proc.stdout.decode()
    assert out.endswith("\n")
    rows = [json.loads(line) for line in out.split("\n")[:-1]]
    assert [row["text"] for row in rows] == lines
    for row in rows:
        assert set(row) == {"text", "intent", "entities", "intent_ranking", "language"}
        assert set(row["intent"]) == {"name", "confidence"}
    assert rows[0]["intent"]["name"] == "document_requirements"
    assert rows[0]["entities"][0]["value"] == "ktp_el"
    assert rows[1]["intent"]["name"] == "nlu_fallback"
    assert rows[6]["intent"] == {"name": "office_hours", "confidence": 1.0}


def test_parse_without_final_newline(nlu_model_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RUN, "parse", "--model-dir", str(nlu_model_dir)],
        input=b"halo\nmakasih",
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["intent"]["name"] for r in rows] == ["greet", "thank_you"]


def test_evaluate_writes_report_and_png(nlu_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "test.yml"
    data.write_text(
        'version: "3.1"\nnlu:\n'
        "- intent: document_requirements\n  examples: |\n"
        "    - syarat bikin [ktp](document_type) apa aja\n"
        "    - berkas untuk [kartu keluarga](document_type)\n"
        "- intent: greet\n  examples: |\n    - halo min\n    - selamat pagi kak\n"
        "- intent: out_of_scope\n  examples: |\n    - resep kue bolu\n",
        encoding="utf-8",
    )
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["evaluate", "--data", str(data), "--out", str(out), "--model-dir", str(nlu_model_dir)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "intent_report.json").read_text())
    assert report["greet"]["support"] == 2
    assert {"precision", "recall", "f1-score", "support", "confused_with"} <= set(report["greet"])
    assert "macro avg" in report
    assert json.loads((out / "intent_errors.json").read_text()) == []
    entities = json.loads((out / "entity_report.json").read_text())
    assert entities["per_entity"]["document_type"]["accuracy"] == 1.0
    png = (out / "intent_confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 5
    assert summary["out_of_scope_rejection"] == 1.0
