"""Rasa side by side: Rasa 3.6 DIET and the embedded NLU, trained on the same data, scored on the same sets.

Run: ``make bench-rasa`` (builds the Rasa venv with ``scripts/rasa_venv.sh`` first), or
``.venv/bin/python bench/rasa_bench.py`` once that venv exists (``RASA_VENV`` moves it). Not part of
``make bench``: Rasa needs Python 3.10 and TensorFlow, and DIET trains for minutes.

Both systems train on ``nlu/data/nlu/`` unchanged (Rasa with ``bench/rasa/config.yml``), each in a fresh
process, and are then served over HTTP (``rasa run --enable-api`` and ``pontibot run``). Every message of
the test split ``nlu/data/test/`` and of each ``nlu/data/blind/*.yml`` goes to both ``POST /model/parse``
endpoints; the answers are scored by ``nlu.evaluate``, the code behind ``pontibot nlu evaluate``. The
figures go to docs/BENCHMARKS.md between ``<!-- rasa:start -->`` and ``<!-- rasa:end -->``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent

from benchdoc import replace_section  # noqa: E402 - bench/ is the script's directory

from nlu.evaluate import OUT_OF_SCOPE, Parse, entity_report, predict, summary  # noqa: E402
from nlu.pipeline import DEFAULT_THRESHOLD, EmbeddedParser, build_parser  # noqa: E402
from nlu.result import ParseResult  # noqa: E402
from nlu.training_data import BLIND_DIR, TEST_DIR, TRAIN_DIR, Example, load, yaml_files  # noqa: E402

RASA_VERSION = "3.6.21"
RASA_VENV = Path(os.environ.get("RASA_VENV") or Path.home() / ".cache" / "pontibot" / f"rasa-{RASA_VERSION}")
RASA_CONFIG = REPO / "bench" / "rasa" / "config.yml"
PONTIBOT = [sys.executable, "-m", "bot"]
READY_TIMEOUT_S = 600.0

# Run by the Rasa venv's Python: how Rasa's own loader reads each path (examples, or the error it raises).
RASA_LOAD_CHILD = """
import json, sys, warnings
from importlib.metadata import version
warnings.simplefilter("ignore")
from rasa.shared.nlu.training_data.loading import load_data
out = {"versions": {name: version(name) for name in ("rasa", "tensorflow")},
       "python": sys.version.split()[0], "paths": {}}
for path in sys.argv[1:]:
    try:
        data = load_data(path)
    except Exception as exc:
        out["paths"][path] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    out["paths"][path] = {"examples": [[m.get("text"), m.get("intent")] for m in data.intent_examples]}
print(json.dumps(out))
"""

# Lines of a Rasa log that are about our data or config (Rasa's own and its libraries' deprecations are not).
NOISE = ("DeprecationWarning", "MovedIn20Warning", "declare_namespace", "PyparsingDeprecationWarning")


@dataclass(frozen=True, slots=True)
class ScoreSet:
    """One scored data set: a label, its path and its examples (gold labels from our loader)."""

    label: str
    path: Path
    examples: list[Example]
    blind: bool


@dataclass(slots=True)
class Backend:
    """One system's figures: per-set scores, parse timings, training and serving costs."""

    name: str
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    http_ms: list[float] = field(default_factory=list)
    in_process_ms: list[float] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def memory_mb(pid: int, name: str) -> float:
    """A ``/proc/<pid>/status`` field (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    return ordered[max(math.ceil(len(ordered) * pct / 100) - 1, 0)]


def children_cpu_seconds() -> float:
    """User + system CPU time of the waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rasa_env() -> dict[str, str]:
    """The environment of the Rasa processes (no telemetry prompt, no host's Rasa settings)."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}


def rasa_threshold() -> float:
    """The FallbackClassifier threshold of bench/rasa/config.yml."""
    config = yaml.safe_load(RASA_CONFIG.read_text(encoding="utf-8"))
    for component in config["pipeline"]:
        if component["name"] == "FallbackClassifier":
            return float(component["threshold"])
    raise SystemExit(f"{RASA_CONFIG} has no FallbackClassifier")


def score_sets() -> list[ScoreSet]:
    """The test split and every blind set (a new ``nlu/data/blind/*.yml`` is picked up by itself)."""
    sets = [ScoreSet("test", TEST_DIR, load(TEST_DIR, synonyms_from=[TRAIN_DIR]).examples, blind=False)]
    for path in sorted(BLIND_DIR.glob("*.yml")):
        examples = load(path, synonyms_from=[TRAIN_DIR]).examples
        sets.append(ScoreSet(f"blind/{path.name}", path, examples, blind=True))
    return sets


def rasa_reading(sets: Sequence[ScoreSet]) -> dict[str, Any]:
    """Rasa's own loader on the training data and every scored set, compared with ours."""
    paths = [TRAIN_DIR, *(s.path for s in sets)]
    done = subprocess.run(
        [str(RASA_VENV / "bin" / "python"), "-c", RASA_LOAD_CHILD, *map(str, paths)],
        env=rasa_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    labels = {str(TRAIN_DIR): "training data", **{str(s.path): s.label for s in sets}}
    blind = {str(s.path) for s in sets if s.blind}
    rows = []
    for path, read in answer["paths"].items():
        ours = Counter((ex.text, ex.intent) for ex in load(Path(path)).examples)
        row: dict[str, Any] = {"label": labels[path], "ours": sum(ours.values()), "blind": path in blind}
        if "error" in read:
            row["error"] = read["error"]
        else:
            theirs = Counter((str(text), str(intent)) for text, intent in read["examples"])
            row["rasa"] = sum(theirs.values())
            row["only_ours"] = sorted((ours - theirs).items())
            row["only_rasa"] = sorted((theirs - ours).items())
        rows.append(row)
    return {"versions": answer["versions"], "python": answer["python"], "rows": rows}


def train_rasa(work: Path) -> tuple[Path, float, float, list[str]]:
    """``rasa train nlu`` in a fresh process and a fresh cache: the model, wall and CPU seconds, and
    the warnings Rasa printed about the data or the config."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(RASA_VENV / "bin" / "rasa"),
            "train",
            "nlu",
            "--config",
            str(RASA_CONFIG),
            "--nlu",
            str(TRAIN_DIR),
            "--out",
            str(work / "models"),
            "--fixed-model-name",
            "diet",
        ],
        cwd=work,  # Rasa's training cache (.rasa/) goes here, so nothing is reused from an earlier run
        env=rasa_env(),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    (work / "rasa-train.log").write_text(log, encoding="utf-8")
    if done.returncode != 0:
        print(log[-4000:], file=sys.stderr)
        raise SystemExit(f"rasa train nlu failed (exit {done.returncode}); the log's end is above")
    warnings = sorted(
        {
            line.strip()
            for line in log.splitlines()
            if ("Warning" in line or " WARNING " in line) and not any(n in line for n in NOISE)
        }
    )
    return work / "models" / "diet.tar.gz", seconds, children_cpu_seconds() - cpu_before, warnings


def train_pontibot(work: Path, env: dict[str, str]) -> tuple[float, float]:
    """``pontibot nlu train`` in a fresh process: wall and CPU seconds."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    subprocess.run(
        [*PONTIBOT, "nlu", "train", "--model-dir", str(work / "nlu")],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started, children_cpu_seconds() - cpu_before


def pontibot_env(work: Path) -> dict[str, str]:
    """A migrated SQLite database in ``work`` and the environment that points ``pontibot run`` at it."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'pontibot.db'}",
        "PONTIBOT_NLU__BACKEND": "embedded",
        "PONTIBOT_NLU__MODEL_DIR": str(work / "nlu"),
        "PONTIBOT_NLU__THRESHOLD": str(DEFAULT_THRESHOLD),
        "PONTIBOT_SERVER__MEDIA_DIR": str(work / "media"),
        "PYTHONPATH": str(REPO),
    }
    for name in ("TELEGRAM_BOT_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        env.pop(name, None)
    subprocess.run([*PONTIBOT, "db", "upgrade"], env=env, cwd=REPO, check=True, capture_output=True)
    return env


def answers_parse(client: httpx.Client, url: str) -> bool:
    """Whether ``POST {url}/model/parse`` answers 200 now (False while the server starts)."""
    try:
        return client.post(f"{url}/model/parse", json={"text": "halo"}).status_code == 200
    except httpx.HTTPError:
        return False


def is_ready(client: httpx.Client, url: str) -> bool:
    """Whether pontibot's ``GET {url}/readyz`` answers 200 now (model loaded, database open)."""
    try:
        return client.get(f"{url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def server(
    command: list[str], *, cwd: Path, env: dict[str, str], log: Path, ready: Callable[[str], bool], port: int
) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    """Start a server process; yield it, its URL and the seconds from the spawn until ``ready(url)``."""
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        while not ready(url):
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}; see {log}")
            if time.perf_counter() - started > READY_TIMEOUT_S:
                raise SystemExit(f"{command[0]} not ready within {READY_TIMEOUT_S:g} s; see {log}")
            time.sleep(0.1)
        yield process, url, time.perf_counter() - started
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_parser(client: httpx.Client, url: str, timings: list[float]) -> Parse:
    """A parse function over ``POST {url}/model/parse`` that records each call's milliseconds."""

    def parse(text: str) -> ParseResult:
        started = time.perf_counter_ns()
        response = client.post(f"{url}/model/parse", json={"text": text})
        timings.append((time.perf_counter_ns() - started) / 1e6)
        response.raise_for_status()
        return ParseResult.from_dict(response.json())

    return parse


def score(backend: Backend, parse: Parse, sets: Sequence[ScoreSet]) -> None:
    """Score ``parse`` on every set with nlu.evaluate (the same code as ``pontibot nlu evaluate``)."""
    parse("halo")  # the first parse builds TensorFlow's graph: not a resident's latency
    backend.http_ms.clear()
    for item in sets:
        found = predict(parse, item.examples)
        backend.scores[item.label] = {**summary(found), "entity_accuracy": entity_report(found)["accuracy"]}


def time_in_process(backend: Backend, model_dir: Path, sets: Sequence[ScoreSet]) -> None:
    """Our parser in this process, on the same messages: the parse without HTTP."""
    parser = build_parser("embedded", threshold=DEFAULT_THRESHOLD, model_dir=model_dir)
    if not isinstance(parser, EmbeddedParser):
        raise SystemExit(f"expected the embedded parser, got {type(parser).__name__}")
    parser.parse_sync("halo")
    for item in sets:
        for ex in item.examples:
            started = time.perf_counter_ns()
            parser.parse_sync(ex.text)
            backend.in_process_ms.append((time.perf_counter_ns() - started) / 1e6)


def run(sets: Sequence[ScoreSet], work: Path) -> tuple[Backend, Backend, list[str]]:
    """Train, serve and score both systems."""
    rasa, ours = Backend("Rasa 3.6 DIET"), Backend("pontibot embedded")
    print(f"== training Rasa DIET on {TRAIN_DIR.relative_to(REPO)} (minutes)", flush=True)
    model, seconds, cpu, warnings = train_rasa(work)
    rasa.costs.update(train_s=seconds, train_cpu_s=cpu)
    print(f"   {seconds:.0f} s; serving it", flush=True)
    with (
        httpx.Client(timeout=30) as client,
        server(
            [
                str(RASA_VENV / "bin" / "rasa"),
                "run",
                "--enable-api",
                "--model",
                str(model),
                "--interface",
                "127.0.0.1",
                "--port",
                str(port := free_port()),
            ],
            cwd=work,
            env=rasa_env(),
            log=work / "rasa-run.log",
            ready=lambda url: answers_parse(client, url),
            port=port,
        ) as (process, url, ready_s),
    ):
        rasa.costs["ready_s"] = ready_s
        print(f"   ready after {ready_s:.0f} s; scoring", flush=True)
        score(rasa, http_parser(client, url, rasa.http_ms), sets)
        rasa.costs.update(rss_mb=memory_mb(process.pid, "VmRSS"), peak_mb=memory_mb(process.pid, "VmHWM"))

    print("== training pontibot's embedded model", flush=True)
    env = pontibot_env(work)
    seconds, cpu = train_pontibot(work, env)
    ours.costs.update(train_s=seconds, train_cpu_s=cpu)
    with (
        httpx.Client(timeout=30) as client,
        server(
            [*PONTIBOT, "run", "--port", str(port := free_port())],
            cwd=REPO,
            env=env,
            log=work / "pontibot-run.log",
            ready=lambda url: is_ready(client, url),
            port=port,
        ) as (process, url, ready_s),
    ):
        ours.costs["ready_s"] = ready_s
        score(ours, http_parser(client, url, ours.http_ms), sets)
        ours.costs.update(rss_mb=memory_mb(process.pid, "VmRSS"), peak_mb=memory_mb(process.pid, "VmHWM"))
    time_in_process(ours, work / "nlu", sets)
    return rasa, ours, warnings


def machine() -> str:
    """CPU model, cores and memory of this machine."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    memory = f"{memory_kb / 1024 / 1024:.0f} GB RAM"
    return f"{cpu}, {os.cpu_count()} cores, {memory}, {platform.system()} {platform.machine()}"


def render_reading(reading: dict[str, Any]) -> list[str]:
    """What Rasa's own loader made of our files, compared with ours (blind messages are never quoted)."""
    lines = ["", "How Rasa's loader (`rasa.shared.nlu.training_data.loading.load_data`) reads the files:", ""]
    for row in reading["rows"]:
        if "error" in row:
            lines.append(f"- {row['label']}: **Rasa rejects it**: `{row['error']}`")
            continue
        line = f"- {row['label']}: loads unchanged; {row['rasa']} examples (our loader: {row['ours']})"
        differences = [*row["only_ours"], *row["only_rasa"]]
        if not differences:
            lines.append(line + ".")
        elif row["blind"]:
            lines.append(line + f"; {len(differences)} messages read differently (not quoted: a blind set).")
        else:
            ours_only = ", ".join(f"“{text}” ({intent}) ×{n}" for (text, intent), n in row["only_ours"])
            rasa_only = ", ".join(f"“{text}” ({intent}) ×{n}" for (text, intent), n in row["only_rasa"])
            detail = "; ".join(
                part
                for part in (
                    f"Rasa drops repeated examples of the same intent: {ours_only}" if ours_only else "",
                    f"only Rasa reads: {rasa_only}" if rasa_only else "",
                )
                if part
            )
            lines.append(f"{line}. {detail}.")
    return lines


def render(
    sets: Sequence[ScoreSet],
    rasa: Backend,
    ours: Backend,
    reading: dict[str, Any],
    warnings: list[str],
    load_average: float,
) -> str:
    """The Markdown section for docs/BENCHMARKS.md."""
    versions = reading["versions"]
    n_http = len(ours.http_ms)
    lines = [
        "## Rasa side by side (`bench/rasa_bench.py`)",
        "",
        f"Command: `make bench-rasa` (`sh scripts/rasa_venv.sh && .venv/bin/python bench/rasa_bench.py`) — "
        f"{time.strftime('%Y-%m-%d %H:%M')}; {machine()}; load average {load_average:.1f} at the start. "
        f"pontibot on Python {platform.python_version()}; Rasa {versions['rasa']} with TensorFlow "
        f"{versions['tensorflow']} on Python {reading['python']} (its own venv, `{RASA_VENV}`).",
        "",
        f"Both trained on `nlu/data/nlu/` ({len(yaml_files(TRAIN_DIR))} files): Rasa with "
        f"`bench/rasa/config.yml` (the `rasa init` pipeline: WhitespaceTokenizer, RegexFeaturizer, "
        f"LexicalSyntacticFeaturizer, CountVectorsFeaturizer word + char_wb 1-4, DIETClassifier 100 epochs, "
        f"EntitySynonymMapper, FallbackClassifier {rasa_threshold():g}), pontibot with its own pipeline at "
        f"threshold {DEFAULT_THRESHOLD:g}. Nothing of `nlu/data/test/` or `nlu/data/blind/` is trained on.",
        *render_reading(reading),
        "",
        (
            f"Rasa printed {len(warnings)} warnings about the data or the config while training:"
            if warnings
            else "Rasa printed no warning about the data or the config while training."
        ),
        *[f"    {line[:200]}" for line in warnings[:10]],
        "",
        "DIET starts from random weights (the standard config sets no `random_seed`), so its scores "
        "move a little from one training to the next.",
        "",
        "Scores (intent accuracy counts nlu_fallback on an out_of_scope message as correct; out-of-scope "
        "rejection is the share of out_of_scope messages answered out_of_scope or nlu_fallback):",
        "",
        "| data | messages | system | intent accuracy | in-scope accuracy | out-of-scope rejection | "
        "macro-F1 | entity accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item in sets:
        oos = sum(ex.intent == OUT_OF_SCOPE for ex in item.examples)
        for backend in (rasa, ours):
            row = backend.scores[item.label]
            rejected = round(row["out_of_scope_rejection"] * oos)
            lines.append(
                f"| {item.label} | {len(item.examples)} | {backend.name} | "
                f"{row['accuracy_fallback_as_oos']:.4f} | {row['in_scope_accuracy']:.4f} | "
                f"{row['out_of_scope_rejection']:.4f} ({rejected}/{oos}) | {row['macro_f1']:.4f} | "
                f"{row['entity_accuracy']:.4f} |"
            )
    lines += [
        "",
        f"| cost | {rasa.name} | {ours.name} |",
        "|---|---|---|",
        f"| training, wall (fresh process) | {rasa.costs['train_s']:.1f} s | {ours.costs['train_s']:.1f} s |",
        f"| training, CPU time | {rasa.costs['train_cpu_s']:.1f} s | {ours.costs['train_cpu_s']:.1f} s |",
        f"| start-up: spawn until ready to parse | {rasa.costs['ready_s']:.1f} s | "
        f"{ours.costs['ready_s']:.1f} s |",
        f"| parse p50 over HTTP ({n_http} messages) | {percentile(rasa.http_ms, 50):.2f} ms | "
        f"{percentile(ours.http_ms, 50):.2f} ms |",
        f"| parse p99 over HTTP | {percentile(rasa.http_ms, 99):.2f} ms | "
        f"{percentile(ours.http_ms, 99):.2f} ms |",
        f"| parse p50 in process | not measured | {percentile(ours.in_process_ms, 50):.3f} ms |",
        f"| parse p99 in process | not measured | {percentile(ours.in_process_ms, 99):.3f} ms |",
        f"| server RSS after scoring | {rasa.costs['rss_mb']:.0f} MB | {ours.costs['rss_mb']:.0f} MB |",
        f"| server peak RSS | {rasa.costs['peak_mb']:.0f} MB | {ours.costs['peak_mb']:.0f} MB |",
        "",
        "How each figure was obtained:",
        "",
        "- Scores: each message of a set is sent to the system's `POST /model/parse` and the JSON answer "
        "read with `ParseResult.from_dict`; `nlu.evaluate.predict`, `summary` and `entity_report` score them "
        "(the code of `pontibot nlu evaluate`). Gold labels come from our loader, which Rasa's reads alike "
        "(above). Rasa's nlu_fallback comes from its FallbackClassifier, ours from `nlu.threshold`.",
        "- Macro-F1: over the true intents of the set (nlu_fallback, never a gold label, is left out).",
        "- Entity accuracy: the gold entity found with the same canonical value on an overlapping span "
        "(Rasa's values are DIET's spans mapped by EntitySynonymMapper).",
        "- Training: wall-clock seconds of `rasa train nlu` (fresh `.rasa/` cache) and of "
        "`pontibot nlu train`, each a new process, imports included; CPU time is user + system of that "
        "process and its threads (TensorFlow uses every core).",
        "- Start-up: from spawning `rasa run --enable-api` until `POST /model/parse` answers 200 (Rasa "
        "loads the model before it answers), and from spawning `pontibot run` until `GET /readyz` answers "
        "200.",
        f"- Parse latency: wall-clock time of each `POST /model/parse` of the scoring run ({n_http} "
        "messages, one at a time, one keep-alive httpx client on the same machine), after one warm-up "
        "parse; in process: `EmbeddedParser.parse_sync` on the same messages in the benchmark's process.",
        "- RSS: `VmRSS` of the server process in `/proc` once every set was scored, and its peak `VmHWM`.",
    ]
    return "\n".join(lines)


def main() -> None:
    """Train, serve and score Rasa DIET and the embedded NLU; record the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md")
    args = ap.parse_args()
    if not (RASA_VENV / "bin" / "rasa").exists():
        raise SystemExit(
            f"No Rasa venv at {RASA_VENV}: run `make rasa-venv` (or set RASA_VENV to where it was built)."
        )
    load_average = os.getloadavg()[0]
    sets = score_sets()
    reading = rasa_reading(sets)
    with tempfile.TemporaryDirectory(prefix="rasa-bench-") as tmp:
        rasa, ours, warnings = run(sets, Path(tmp))
    section = render(sets, rasa, ours, reading, warnings, load_average)
    print(section)
    if not args.no_write:
        replace_section("rasa", section)
        print(f"\nwritten to {(REPO / 'docs' / 'BENCHMARKS.md').relative_to(REPO)}")


if __name__ == "__main__":
    main()
