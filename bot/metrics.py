"""Every Prometheus metric pontibot exposes (the one list of ``pontibot_*`` names) and GET /metrics' text.

One process (tests, ``pontibot run``): the runtime's :class:`Metrics` has a registry of its own. Several
workers (``pontibot run --workers N``): prometheus-client's multiprocess mode. The supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` (:func:`shared_across_workers`) before any worker starts, so each worker
imports prometheus-client already in that mode and writes its values to files there; whichever worker
answers /metrics merges every worker's files into one exposition. A gauge says how workers combine
(``multiprocess_mode``): leadership is summed over live workers, a circuit's state is the worst one.

Figures that live in the database (handoffs, complaints, outbox, active conversations) are not kept in
any process: :class:`DatabaseGauges` reads them when scraped (cached a few seconds), in the answering
worker only, so they are never counted twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from flows.messages import Channel
from integrations.resilience import CallOutcome, CircuitState
from storage.db import Database
from storage.ops_repository import OpsFigures, ops_figures

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CHANNELS = tuple(c.value for c in Channel if c is not Channel.CONSOLE)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DB_CACHE_SECONDS = 5.0


# ``pontibot_backend_circuit_state``: ordered so that the worst state wins across workers (livemax).
CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


# The names of the figures read from the database (their help text is in DatabaseGauges.collect).
HANDOFFS_OPEN = "pontibot_handoffs_open"
HANDOFF_OLDEST_WAIT = "pontibot_handoff_oldest_wait_seconds"
COMPLAINTS = "pontibot_complaints"
COMPLAINTS_OVERDUE = "pontibot_complaints_overdue"
OUTBOX_DEPTH = "pontibot_outbox_depth"
OUTBOX_OLDEST_DUE_AGE = "pontibot_outbox_oldest_due_age_seconds"
OUTBOX_DEAD_LETTERS = "pontibot_outbox_dead_letters"
CONVERSATIONS_ACTIVE = "pontibot_conversations_active"
DATABASE_UP = "pontibot_database_up"


def multiprocess_dir() -> Path | None:
    """The directory of multiprocess mode, or None in a single process."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def _empty(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextmanager
def shared_across_workers(workers: int) -> Iterator[Path | None]:
    """Multiprocess mode for the worker processes about to start, while the ``with`` block runs.

    The supervisor (``pontibot run``) enters this before it starts workers, so they inherit
    ``PROMETHEUS_MULTIPROC_DIR`` and import prometheus-client already in that mode. An operator's own
    ``PROMETHEUS_MULTIPROC_DIR`` is used (emptied: files of an earlier run would add its counts);
    otherwise several workers get a temporary directory, removed at the end. One process without
    the variable needs none (yields None).
    """
    chosen = multiprocess_dir()
    if chosen is not None:
        chosen.mkdir(parents=True, exist_ok=True)
        _empty(chosen)
        yield chosen
        return
    if workers <= 1:
        yield None
        return
    temporary = Path(tempfile.mkdtemp(prefix="pontibot-metrics-"))
    os.environ[MULTIPROC_ENV] = str(temporary)
    try:
        yield temporary
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(temporary, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: Path) -> None:
    """Drop the live gauges of workers that died without closing (killed, crashed): a dead leader
    must not count as one. Their counters stay: what they counted happened."""
    pids = {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("gauge_live*_*.db") if f.stem[-1].isdigit()}
    for pid in pids:
        if not _alive(pid):
            with suppress(OSError):
                mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


class Metrics:
    """This process's instruments; the parts that count receive it (``None`` where nothing counts).

    In multiprocess mode build one per process (two would overwrite each other's values in the files).
    """

    def __init__(self) -> None:
        # No *_created series: they double the output and nobody graphs them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        reg = self.registry
        self.messages = Counter(
            "pontibot_messages",
            "Messages to and from residents (in: accepted, not platform retries; out: replies and "
            "delivered notifications)",
            ["channel", "direction"],
            registry=reg,
        )
        self.turns = Counter(
            "pontibot_turns", "Messages handled (not platform retries)", ["channel"], registry=reg
        )
        self.turn_errors = Counter(
            "pontibot_turn_errors",
            "Turns that failed in the flows (the resident got the generic apology)",
            ["channel"],
            registry=reg,
        )
        self.turn_seconds = Histogram(
            "pontibot_turn_duration_seconds",
            "Time to handle one message (lock, NLU, flows, commit)",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.intents = Counter(
            "pontibot_intents", "Understood messages by the intent the NLU chose", ["intent"], registry=reg
        )
        self.fallbacks = Counter(
            "pontibot_fallbacks",
            "Turns the bot did not understand (the flow engine counted a misunderstanding)",
            ["channel"],
            registry=reg,
        )
        self.sends = Counter(
            "pontibot_sends",
            "Messages sent to a platform by outcome (ok, rate_limited, blocked, failed)",
            ["channel", "outcome"],
            registry=reg,
        )
        self.platform_errors = Counter(
            "pontibot_platform_errors",
            "Error answers of a platform's API by HTTP status (429, 403 ...; network: no answer), "
            "retried ones included",
            ["channel", "status"],
            registry=reg,
        )
        self.outbox_deliveries = Counter(
            "pontibot_outbox_deliveries",
            "Outbox rows handled by outcome (sent, retry, rate_limited, dead, skipped)",
            ["channel", "outcome"],
            registry=reg,
        )
        self.backend_calls = Counter(
            "pontibot_backend_calls",
            "Calls to a back end by outcome (ok, rejected: 4xx, error: unreachable or bad answer, "
            "circuit_open: not tried)",
            ["backend", "outcome"],
            registry=reg,
        )
        self.backend_seconds = Histogram(
            "pontibot_backend_call_duration_seconds",
            "Time of a back-end call, retries included",
            ["backend"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.circuit = Gauge(
            "pontibot_backend_circuit_state",
            "A back end's circuit breaker after its last call: 0 closed, 1 half-open, 2 open (worst worker)",
            ["backend"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.leader = Gauge(
            "pontibot_scheduler_leader",
            "1 in the process that leads the scheduler (summed: how many lead; 1 is right)",
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.nlu_model = Gauge(
            "pontibot_nlu_model_info",
            "The NLU model a worker serves (1 per backend and version)",
            ["backend", "version"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.webchat_sessions = Counter(
            "pontibot_webchat_sessions_started", "Web chat sessions started", registry=reg
        )
        self._model: tuple[str, str] | None = None
        for channel in CHANNELS:  # present from the start: rates and alerts need a series to look at
            self.turns.labels(channel)
            self.fallbacks.labels(channel)
            self.turn_errors.labels(channel)
            for direction in ("in", "out"):
                self.messages.labels(channel, direction)

    # ---- what the parts report --------------------------------------------------------------

    def turn(
        self, channel: str, *, seconds: float, replies: int, intent: str | None, fallback: bool, failed: bool
    ) -> None:
        """One message handled (not a platform retry)."""
        self.turns.labels(channel).inc()
        self.messages.labels(channel, "in").inc()
        if replies:
            self.messages.labels(channel, "out").inc(replies)
        self.turn_seconds.labels(channel).observe(seconds)
        if intent is not None:
            self.intents.labels(intent).inc()
        if fallback:
            self.fallbacks.labels(channel).inc()
        if failed:
            self.turn_errors.labels(channel).inc()

    def sent(self, channel: str, outcome: str) -> None:
        """One platform send finished: ok, rate_limited, blocked or failed."""
        self.sends.labels(channel, outcome).inc()

    def platform_error(self, channel: str, status: str) -> None:
        """A platform's API answered an error (``status``: its HTTP status, or "network")."""
        self.platform_errors.labels(channel, status).inc()

    def delivered(self, channel: str, outcome: str) -> None:
        """The outbox finished one row's attempt (``sent`` also counts a message out)."""
        self.outbox_deliveries.labels(channel, outcome).inc()
        if outcome == "sent":
            self.messages.labels(channel, "out").inc()

    def backend_call(self, backend: str, outcome: CallOutcome, seconds: float, circuit: CircuitState) -> None:
        """One call to a back end and its breaker's state afterwards (a ``CallObserver``)."""
        self.backend_calls.labels(backend, outcome.value).inc()
        self.backend_seconds.labels(backend).observe(seconds)
        self.circuit.labels(backend).set(CIRCUIT_VALUES[circuit])

    def leading(self, leads: bool) -> None:
        """This process became (or stopped being) the scheduler's leader."""
        self.leader.set(1 if leads else 0)

    def model(self, backend: str, version: str) -> None:
        """The NLU model this process serves."""
        if self._model is not None and self._model != (backend, version):
            # In multiprocess mode a child cannot be removed from the files: the old version shows 0.
            self.nlu_model.labels(*self._model).set(0)
        self._model = (backend, version)
        self.nlu_model.labels(backend, version).set(1)

    def session_started(self) -> None:
        """A new web chat session began."""
        self.webchat_sessions.inc()

    # ---- GET /metrics -----------------------------------------------------------------------

    def exposition(self, database: Collector) -> bytes:
        """The Prometheus text: every worker's values (multiprocess mode) or this process's, and the
        database's figures."""
        registry = CollectorRegistry()
        directory = multiprocess_dir()
        if directory is not None:
            forget_dead_workers(directory)
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Forward(self.registry))
        registry.register(database)
        return generate_latest(registry)

    def close(self) -> None:
        """This process ends: its live gauges (leadership, circuits, model) stop counting."""
        directory = multiprocess_dir()
        if directory is not None:
            with suppress(OSError):
                mark_process_dead(os.getpid(), str(directory))  # type: ignore[no-untyped-call]


class _Forward(Collector):
    """Another registry's metrics, collected into the exposition's registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


@dataclass(frozen=True, slots=True)
class _Reading:
    figures: OpsFigures | None
    at: float


class DatabaseGauges(Collector):
    """The figures of the database as gauges; :meth:`refresh` before collecting (at most every few s)."""

    def __init__(self, db: Database, *, cache_seconds: float = DB_CACHE_SECONDS) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._reading = _Reading(None, float("-inf"))
        self._up = False

    async def refresh(self) -> None:
        """Read the figures unless the last reading is recent; a failing database shows as down."""
        if time.monotonic() - self._reading.at < self.cache_seconds:
            return
        try:
            async with self.db.session() as session:
                figures = await ops_figures(session, now=datetime.now(UTC))
        except Exception:
            logger.warning("metrics: the database figures could not be read", exc_info=True)
            self._up = False
            self._reading = _Reading(None, time.monotonic())
            return
        self._up = True
        self._reading = _Reading(figures, time.monotonic())

    def collect(self) -> Iterator[Metric]:
        """The gauges of the last reading (only ``pontibot_database_up`` when it failed)."""
        yield GaugeMetricFamily(DATABASE_UP, "1 when /metrics could read the database", value=int(self._up))
        figures = self._reading.figures
        if figures is None:
            return
        handoffs = GaugeMetricFamily(
            HANDOFFS_OPEN, "Open handoffs: waiting (no staff reply yet) or answered", labels=["state"]
        )
        handoffs.add_metric(["waiting"], figures.handoffs_waiting)
        handoffs.add_metric(["answered"], figures.handoffs_answered)
        yield handoffs
        yield GaugeMetricFamily(
            HANDOFF_OLDEST_WAIT,
            "How long the oldest open handoff without a staff reply has waited",
            value=figures.oldest_waiting_handoff,
        )
        complaints = GaugeMetricFamily(COMPLAINTS, "Complaints by status", labels=["status"])
        for status, n in sorted(figures.complaints.items()):
            complaints.add_metric([status], n)
        yield complaints
        yield GaugeMetricFamily(
            COMPLAINTS_OVERDUE,
            "Open complaints past their service-level due date",
            value=figures.complaints_overdue,
        )
        depth = GaugeMetricFamily(OUTBOX_DEPTH, "Outbox rows pending or being sent", labels=["channel"])
        age = GaugeMetricFamily(
            OUTBOX_OLDEST_DUE_AGE,
            "How long the oldest due outbox row has waited to go out (0: none is due)",
            labels=["channel"],
        )
        dead = GaugeMetricFamily(OUTBOX_DEAD_LETTERS, "Outbox dead letters", labels=["channel"])
        active = GaugeMetricFamily(
            CONVERSATIONS_ACTIVE,
            "Conversations with a resident's message in the last 15 minutes (web chat: live sessions)",
            labels=["channel"],
        )
        for channel in sorted({*CHANNELS, *figures.outbox}):
            row = figures.outbox.get(channel)
            depth.add_metric([channel], row.depth if row else 0)
            age.add_metric([channel], row.oldest_due_age if row else 0.0)
            dead.add_metric([channel], row.dead if row else 0)
        for channel in sorted({*CHANNELS, *figures.active_conversations}):
            active.add_metric([channel], figures.active_conversations.get(channel, 0))
        yield from (depth, age, dead, active)
