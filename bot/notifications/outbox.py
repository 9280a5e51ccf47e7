"""The outbox dispatcher: claims due rows, sends each through its resident's channel, records the result.

Claiming (``storage.outbox.claim_due``) marks rows ``sending`` with a lease, in a transaction of its
own, BEFORE anything is sent; the result (``sent`` + provider message id, a retry time, a dead letter)
is written in another transaction right AFTER the platform answers. While a row is being sent its lease
is renewed (heartbeat), so no other claimer takes it in the normal path. A graceful stop lets sends in
flight finish and hands never-started claims back at once.

Residual window: when the process dies (SIGKILL, power) after the platform accepted a message and
before the ``sent`` commit — a millisecond or two per message — the row is sent again once its lease
lapses: at-least-once, the only choice without an idempotency key at Telegram or Twilio. A web chat
row has no such window: its transcript line and its ``sent`` mark are one transaction.

Rate limits: Telegram and WhatsApp sends go through the channel objects, whose own token buckets
(``channel.limiter``: 30/s per bot and 1/s per chat on Telegram, ``twilio.messages_per_second``) are
shared with direct replies. A 429 that outlasts the channel's own bounded retries pauses that limiter
for ``retry_after`` and puts the row back until then. Messages to one chat go out in queue order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import ChannelSender, ChatUnreachable, RateLimited, SendFailed
from bot.metrics import Metrics
from bot.notifications.changes import ANNOUNCEMENTS_TOPIC, HELD_KINDS
from bot.notifications.pacing import Pacer, backoff_seconds, quiet_hours_of
from bot.privacy import mask_id
from bot.settings import NotificationsSettings
from flows.messages import Channel, Reply
from storage import outbox as outbox_repo
from storage import repositories as repo
from storage.db import Database
from storage.models import Resident, Subscription
from storage.outbox import Claim, OutboxStatus

logger = logging.getLogger(__name__)

RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
RECHECK_SECONDS = 5.0  # opt-out and subscription are checked at claim time, again if sending waited longer
DEFAULT_TEMPLATES = {"staff": "staff_reply", "system": "conversation_update"}


class OutcomeKind(StrEnum):
    """What happened to one send."""

    SENT = "sent"
    RETRY = "retry"  # failed; try again after a backoff (dead letter after max_attempts)
    RATE_LIMITED = "rate_limited"  # the platform asked to wait; not the row's fault
    DEAD = "dead"  # cannot succeed without someone changing something (template missing, refused)
    SKIPPED = "skipped"  # not to be sent any more (opted out, unsubscribed, blocked the bot)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt."""

    kind: OutcomeKind
    ids: tuple[str, ...] = ()
    error: str | None = None
    retry_after: float | None = None
    delivery_status: str | None = None


class _ClaimLost(Exception):
    """This process no longer holds the row (its lease was taken over); the transaction is undone."""


@dataclass
class DispatcherStats:
    """Counters of what the dispatcher did since it started (logs, tests, benchmark)."""

    claimed: int = 0
    reclaimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class OutboxDispatcher:
    """Sends due outbox rows through the channels, within their rate limits; one per process at most."""

    def __init__(
        self,
        *,
        db: Database,
        channels: Mapping[Channel, ChannelSender],
        settings: NotificationsSettings,
        timezone: str = "Asia/Pontianak",
        clock: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.channels = channels
        self.settings = settings
        self.quiet = quiet_hours_of(settings, timezone)
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = DispatcherStats()
        self._claimed: dict[int, Claim] = {}
        self._on_wire: set[int] = set()
        self._uncertain = 0
        self._queues: dict[tuple[str, str], deque[Claim]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._sending = asyncio.Semaphore(settings.concurrency)
        self._pacers: dict[str, Pacer] = {}
        self._checked: dict[int, tuple[float, datetime | None]] = {}  # claim id -> (checked at, last inbound)

    def now(self) -> datetime:
        """The current time (aware UTC; the injected clock's in tests)."""
        if self._clock is not None:
            return self._clock().astimezone(UTC)
        return datetime.now(UTC)

    def wake(self) -> None:
        """Look for due rows now (something was queued in this process)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Rows claimed by this process and not finished yet."""
        return len(self._claimed)

    # ---- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and send until :meth:`stop`; an error of one round is logged and the loop goes on."""
        heartbeat = asyncio.create_task(self._heartbeat(), name="outbox-heartbeat")
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    free = self.settings.batch_size - len(self._claimed)
                    # Claim in chunks (a quarter batch), not one row per finished send.
                    worth_it = free >= max(1, self.settings.batch_size // 4) or not self._claimed
                    claimed = await self.claim_once() if free > 0 and worth_it else 0
                    if claimed and claimed >= free:
                        await asyncio.sleep(0)
                        continue
                    timeout = await self._idle_timeout()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("outbox: claiming failed; trying again shortly")
                    timeout = self.settings.dispatch_interval_seconds
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _idle_timeout(self) -> float:
        interval = self.settings.dispatch_interval_seconds
        if self.settings.batch_size - len(self._claimed) < max(1, self.settings.batch_size // 4):
            return interval  # not worth a claim yet: a finished send wakes the loop
        async with self.db.session() as session:
            due = await outbox_repo.next_due_at(
                session, hold_kinds=self._held_kinds(self.now()), exclude_ids=list(self._claimed)
            )
        if due is None:
            return interval
        return max(0.0, min(interval, (due - self.now()).total_seconds()))

    def _held_kinds(self, now: datetime) -> frozenset[str]:
        return HELD_KINDS if self.quiet is not None and self.quiet.active(now) else frozenset()

    async def claim_once(self) -> int:
        """Claim what is due (up to the free batch room) and start sending it; returns how many."""
        free = self.settings.batch_size - len(self._claimed)
        if free <= 0 or self._stopping:
            return 0
        now = self.now()
        accepted: list[Claim] = []
        async with self.db.session() as session:
            claims = await outbox_repo.claim_due(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self.settings.claim_lease_seconds),
                limit=free,
                hold_kinds=self._held_kinds(now),
                exclude_ids=list(self._claimed),
            )
            checked_at = asyncio.get_running_loop().time()
            for claim in claims:
                if claim.channel == Channel.WEBCHAT.value:
                    accepted.append(claim)  # checked in the transaction that delivers it
                    continue
                resident, reason = await self._skip_reason(session, claim)
                if reason is not None:
                    logger.info("outbox %d skipped: %s", claim.id, reason)
                    await outbox_repo.finish(
                        session,
                        claim_id=claim.id,
                        attempts=claim.attempts,
                        status=OutboxStatus.SKIPPED,
                        error=reason,
                    )
                    self._count(OutcomeKind.SKIPPED, claim)
                    continue
                self._checked[claim.id] = (checked_at, resident.last_inbound_at if resident else None)
                accepted.append(claim)
        for claim in accepted:
            self._accept(claim)
        return len(claims)

    async def deliver_due(self) -> int:
        """Claim and send everything due now, and wait until those sends are recorded (tests, CLI)."""
        total = 0
        while claimed := await self.claim_once():
            total += claimed
            await self.wait_idle()
        return total

    async def wait_idle(self) -> None:
        """Wait until every claimed row has been recorded."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    def _accept(self, claim: Claim) -> None:
        self.stats.claimed += 1
        if claim.reclaimed:
            self.stats.reclaimed += 1
            logger.warning(
                "outbox %d: its previous claim lapsed mid-send (a crash?); sending again (attempt %d)",
                claim.id,
                claim.attempts,
            )
        self._claimed[claim.id] = claim
        key = (claim.channel, claim.chat_id)
        self._queues.setdefault(key, deque()).append(claim)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._chat_worker(key), name=f"outbox-{claim.channel}")

    async def _chat_worker(self, key: tuple[str, str]) -> None:
        """Send one chat's claimed rows in order (one at a time: its per-chat limit and order hold)."""
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                claim = queue[0]
                async with self._sending:
                    await self._deliver(claim)
                queue.popleft()
        finally:
            self._workers.pop(key, None)
            if not queue:
                self._queues.pop(key, None)

    async def _heartbeat(self) -> None:
        period = self.settings.claim_lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            held = [(c.id, c.attempts) for c in self._claimed.values()]
            if not held:
                continue
            try:
                async with self.db.session() as session:
                    lease = self.now() + timedelta(seconds=self.settings.claim_lease_seconds)
                    await outbox_repo.extend_leases(session, claims=held, lease_until=lease)
            except (OperationalError, InterfaceError, OSError):
                logger.warning("outbox: could not renew %d leases", len(held), exc_info=True)

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let sends in flight finish (up to ``grace`` s), hand back unstarted claims."""
        self._stopping = True
        self._wake.set()
        workers = list(self._workers.values())
        if workers:
            grace = self.settings.stop_grace_seconds if grace is None else grace
            _, pending = await asyncio.wait(workers, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._uncertain:
            logger.warning(
                "outbox: %d sends did not finish before shutdown; retried after their lease",
                self._uncertain,
            )
        unstarted = list(self._claimed.values())
        if unstarted:
            try:
                async with self.db.session() as session:
                    for claim in unstarted:
                        await outbox_repo.reschedule(
                            session,
                            claim_id=claim.id,
                            attempts=claim.attempts,
                            not_before=self.now(),
                            error=None,
                            count_attempt=False,
                        )
            except (OperationalError, InterfaceError, OSError):
                logger.warning("outbox: could not hand back %d claims", len(unstarted), exc_info=True)
        self._claimed.clear()
        self._queues.clear()
        self._checked.clear()

    # ---- one row -------------------------------------------------------------------------------

    async def _deliver(self, claim: Claim) -> None:
        finished = True
        try:
            if claim.channel == Channel.WEBCHAT.value:
                outcome = await self._deliver_to_transcript(claim)
            else:
                outcome = await self._send(claim)
            if outcome is not None:
                await self._record(claim, outcome)
        except asyncio.CancelledError:
            if claim.id in self._on_wire:
                self._uncertain += 1  # left "sending": retried after its lease (it may arrive twice)
            else:
                finished = False  # never sent: stop() hands it back at once
            raise
        except _ClaimLost:
            logger.warning("outbox %d: claim lost to another claimer; left to it", claim.id)
        except Exception:
            logger.exception("outbox %d: delivery failed unexpectedly", claim.id)
            await self._record(claim, Outcome(OutcomeKind.RETRY, error="internal error (see the log)"))
        finally:
            self._on_wire.discard(claim.id)
            if finished:
                self._claimed.pop(claim.id, None)
            self._wake.set()

    async def _skip_reason(self, session: AsyncSession, claim: Claim) -> tuple[Resident | None, str | None]:
        """Checked at send time: the resident may have opted out or unsubscribed since it was queued."""
        resident = await session.get(Resident, claim.resident_id)
        if resident is None or resident.erased_at is not None:
            return resident, "resident erased"
        if claim.kind in HELD_KINDS and resident.opted_out:
            return resident, "opted out"
        if resident.unreachable and claim.channel == Channel.TELEGRAM.value:
            return resident, "unreachable (blocked the bot)"
        body = claim.body
        if body.get("subscription"):
            topic, ref = str(body.get("topic", "")), str(body.get("ref", ""))
            if not await _subscribed(session, resident.id, topic, ref):
                return resident, "unsubscribed"
        announcement = claim.kind in HELD_KINDS and body.get("segment") == "subscribers"
        if announcement and not await _subscribed(session, resident.id, ANNOUNCEMENTS_TOPIC, None):
            return resident, "unsubscribed"
        return resident, None

    async def _deliver_to_transcript(self, claim: Claim) -> Outcome | None:
        """A web chat row: its transcript line (the events feed) and its ``sent`` mark in one transaction."""
        async with self.db.session() as session:
            resident, reason = await self._skip_reason(session, claim)
            if reason is not None:
                return Outcome(OutcomeKind.SKIPPED, error=reason)
            assert resident is not None
            line_id: int | None = None
            if claim.kind in HELD_KINDS:
                line_id = await _write_transcript(session, resident, claim, self.now())
            if not await outbox_repo.mark_sent(
                session,
                claim_id=claim.id,
                attempts=claim.attempts,
                provider_message_id=str(line_id) if line_id is not None else None,
                at=self.now(),
                delivery_status="delivered",
            ):
                raise _ClaimLost(claim.id)
        self._count(OutcomeKind.SENT, claim)
        return None

    async def _send(self, claim: Claim) -> Outcome:
        checked_at, last_inbound_at = self._checked.pop(claim.id, (None, None))
        if checked_at is None or asyncio.get_running_loop().time() - checked_at > RECHECK_SECONDS:
            # Checked when claimed, normally a moment ago; after a wait (a 429, a busy chat) check again.
            async with self.db.session() as session:
                resident, reason = await self._skip_reason(session, claim)
                last_inbound_at = resident.last_inbound_at if resident is not None else None
            if reason is not None:
                return Outcome(OutcomeKind.SKIPPED, error=reason)
        try:
            sender = self.channels[Channel(claim.channel)]
        except (KeyError, ValueError):
            return Outcome(OutcomeKind.RETRY, error=f"channel {claim.channel} is not configured here")
        reply = Reply.from_dict(claim.body)
        pacer = self._pacer(claim.channel, sender)
        await pacer.wait_chat(claim.chat_id)
        async with pacer.turn:
            await pacer.wait_global(claim.chat_id)
            pacer.begin(claim.chat_id)
        self._on_wire.add(claim.id)  # from here a crash or a cancel leaves the delivery uncertain
        try:
            return await _send_through(sender, claim, reply, last_inbound_at)
        finally:
            pacer.end(claim.chat_id)

    def _pacer(self, channel: str, sender: ChannelSender) -> Pacer:
        pacer = self._pacers.get(channel)
        if pacer is None:
            pacer = self._pacers[channel] = Pacer(sender.limiter)
        return pacer

    async def _record(self, claim: Claim, outcome: Outcome) -> None:
        """Write the result; retried through short database outages (a lost ``sent`` means a resend)."""
        for delay in (*RECORD_RETRY_DELAYS, None):
            try:
                async with self.db.session() as session:
                    await self._apply(session, claim, outcome)
                break
            except _ClaimLost:
                logger.warning("outbox %d: claim lost before its result was stored", claim.id)
                return
            except (OperationalError, InterfaceError, OSError):
                if delay is None:
                    logger.exception("outbox %d: result %s could not be stored", claim.id, outcome.kind)
                    return
                await asyncio.sleep(delay)
        self._count(outcome.kind, claim)

    async def _apply(self, session: AsyncSession, claim: Claim, outcome: Outcome) -> None:
        now = self.now()
        key: dict[str, Any] = {"claim_id": claim.id, "attempts": claim.attempts}
        if outcome.kind is OutcomeKind.SENT:
            if not await outbox_repo.mark_sent(
                session,
                **key,
                provider_message_id=outcome.ids[0] if outcome.ids else None,
                at=now,
                delivery_status=outcome.delivery_status,
            ):
                raise _ClaimLost(claim.id)
            if claim.kind in HELD_KINDS:
                resident = await session.get(Resident, claim.resident_id)
                if resident is not None:
                    await _write_transcript(session, resident, claim, now)
            return
        if outcome.kind is OutcomeKind.SKIPPED:
            logger.info("outbox %d skipped: %s", claim.id, outcome.error)
            await outbox_repo.finish(session, **key, status=OutboxStatus.SKIPPED, error=outcome.error or "")
            return
        if outcome.kind is OutcomeKind.RATE_LIMITED:
            wait = outcome.retry_after or self.settings.backoff_base_seconds
            await outbox_repo.reschedule(
                session,
                **key,
                not_before=now + timedelta(seconds=wait),
                error=outcome.error,
                count_attempt=False,
            )
            return
        if outcome.kind is OutcomeKind.DEAD or claim.attempts >= self.settings.max_attempts:
            logger.warning(
                "outbox %d to chat=%s is a dead letter after %d attempts: %s",
                claim.id,
                mask_id(claim.chat_id),
                claim.attempts,
                outcome.error,
            )
            await outbox_repo.finish(session, **key, status=OutboxStatus.DEAD, error=outcome.error or "")
            return
        delay = backoff_seconds(
            claim.attempts,
            base=self.settings.backoff_base_seconds,
            cap=self.settings.backoff_max_seconds,
            rng=self._rng,
        )
        logger.info(
            "outbox %d: attempt %d failed (%s); retry in %.0fs",
            claim.id,
            claim.attempts,
            outcome.error,
            delay,
        )
        await outbox_repo.reschedule(
            session, **key, not_before=now + timedelta(seconds=delay), error=outcome.error
        )

    def _count(self, kind: OutcomeKind, claim: Claim) -> None:
        self.stats.outcomes[kind.value] = self.stats.outcomes.get(kind.value, 0) + 1
        if self.metrics is not None:
            gave_up = kind is OutcomeKind.RETRY and claim.attempts >= self.settings.max_attempts
            self.metrics.delivered(claim.channel, OutcomeKind.DEAD.value if gave_up else kind.value)


async def _subscribed(session: AsyncSession, resident_id: int, topic: str, ref: str | None) -> bool:
    stmt = select(Subscription.id).where(
        Subscription.resident_id == resident_id,
        Subscription.topic == topic,
        Subscription.active.is_(True),
    )
    if ref is not None:
        stmt = stmt.where(Subscription.ref == ref)
    return (await session.execute(stmt.limit(1))).first() is not None


async def _write_transcript(session: AsyncSession, resident: Resident, claim: Claim, at: datetime) -> int:
    """The pushed message as a transcript line of kind ``push`` (the web chat's events feed)."""
    conversation = await repo.get_or_create_conversation(session, resident=resident)
    message = await repo.add_message(
        session,
        conversation_id=conversation.id,
        direction="out",
        kind="push",
        text=str(claim.body.get("text", "")),
        data={"buttons": claim.body.get("buttons", []), "outbox_key": claim.idempotency_key},
        created_at=at,
    )
    return message.id


async def _send_through(
    sender: ChannelSender, claim: Claim, reply: Reply, last_inbound_at: datetime | None
) -> Outcome:
    """One platform send, the channel port's errors (``bot.channels.base``) mapped to outcomes."""
    body = claim.body
    variables = body.get("variables")
    try:
        ids = await sender.send_notification(
            claim.chat_id,
            reply,
            template_key=str(body.get("template") or DEFAULT_TEMPLATES.get(claim.kind, claim.kind)),
            variables=(
                {str(k): str(v) for k, v in variables.items()}
                if isinstance(variables, dict)
                else {"1": reply.text[:900]}
            ),
            last_inbound_at=last_inbound_at,
        )
    except ChatUnreachable as exc:
        return Outcome(OutcomeKind.SKIPPED, error=f"unreachable: {exc}")
    except RateLimited as exc:
        if exc.retry_after is not None:
            sender.pause(exc.retry_after)
        return Outcome(OutcomeKind.RATE_LIMITED, error=str(exc), retry_after=exc.retry_after)
    except SendFailed as exc:
        return Outcome(OutcomeKind.DEAD if exc.permanent else OutcomeKind.RETRY, error=str(exc))
    return Outcome(OutcomeKind.SENT, tuple(ids), delivery_status=sender.sent_status)
