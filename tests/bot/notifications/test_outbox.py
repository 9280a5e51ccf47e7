"""The outbox dispatcher on the fake Bot API: once, in order, quiet hours, opt-out, retries, dead letters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.notifications.dead_letters import dead_letters, requeue
from bot.privacy import mask_id
from storage import outbox as outbox_repo
from storage import repositories as repo
from storage.models import Message, OutboxMessage
from tests.bot.notifications.conftest import Bench


async def rows(bench: Bench) -> list[OutboxMessage]:
    async with bench.rt.db.session() as session:
        return list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars())


async def test_a_due_row_is_sent_once_and_its_message_id_recorded(bench: Bench) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "Izin Kakak disetujui.", key="k1")

    first = await bench.dispatcher.deliver_due()
    again = await bench.dispatcher.deliver_due()

    [sent] = bench.fake.sent("555000111")
    [row] = await rows(bench)
    assert (first, again) == (1, 0)
    assert sent.params["text"] == "Izin Kakak disetujui."
    assert (row.status, row.attempts, row.claimed_until) == ("sent", 1, None)
    assert row.provider_message_id is not None and int(row.provider_message_id) >= 1000
    assert row.sent_at == bench.clock()


async def test_one_chat_gets_its_messages_in_queue_order(bench: Bench) -> None:
    resident = await bench.resident()
    for i in range(5):
        await bench.queue(resident, f"pesan {i}", key=f"k{i}")

    await bench.dispatcher.deliver_due()

    assert [c.params["text"] for c in bench.fake.sent("555000111")] == [f"pesan {i}" for i in range(5)]


async def test_a_pushed_notification_also_lands_in_the_transcript(bench: Bench) -> None:
    telegram = await bench.resident()
    web = await bench.resident("web-session-1", channel="webchat")
    await bench.queue(telegram, "Kabar untuk Telegram", key="t")
    await bench.queue(web, "Kabar untuk web chat", key="w")

    await bench.dispatcher.deliver_due()

    async with bench.rt.db.session() as session:
        conversation = await repo.find_conversation(session, channel="webchat", external_id="web-session-1")
        assert conversation is not None
        events = await repo.events_after(session, conversation_id=conversation.id, after=0, kinds=("push",))
        pushed = list((await session.execute(select(Message.text).where(Message.kind == "push"))).scalars())
    web_row = next(r for r in await rows(bench) if r.channel == "webchat")
    assert [e.text for e in events] == ["Kabar untuk web chat"]
    assert sorted(pushed) == ["Kabar untuk Telegram", "Kabar untuk web chat"]
    assert (web_row.status, web_row.delivery_status, web_row.provider_message_id) == (
        "sent",
        "delivered",
        str(events[0].id),
    )
    assert [c.params["text"] for c in bench.fake.sent()] == ["Kabar untuk Telegram"]


@pytest.mark.parametrize("notifications_overrides", [{"quiet_hours": "21:00-06:00"}])
async def test_quiet_hours_hold_non_urgent_notifications_until_the_window_ends(bench: Bench) -> None:
    resident = await bench.resident()
    bench.clock.set_wib(22, 30)
    await bench.queue(resident, "Izin Kakak disetujui.", key="notice")
    await bench.queue(resident, "Ada kebakaran di dekat lokasi Kakak.", key="urgent", urgent=True)
    await bench.queue(resident, "Balasan petugas.", key="staff", kind="staff")

    at_night = await bench.dispatcher.deliver_due()
    bench.clock.advance(hours=7)  # 05:30 WIB: still quiet
    before_dawn = await bench.dispatcher.deliver_due()
    bench.clock.set_wib(6, 0)
    morning = await bench.dispatcher.deliver_due()

    texts = [c.params["text"] for c in bench.fake.sent()]
    assert (at_night, before_dawn, morning) == (2, 0, 1)
    assert texts == ["Ada kebakaran di dekat lokasi Kakak.", "Balasan petugas.", "Izin Kakak disetujui."]


async def test_opt_out_and_unsubscribe_are_checked_when_sending(bench: Bench) -> None:
    stays = await bench.resident("1001")
    leaves = await bench.resident("1002")
    stopped_all = await bench.resident("1003")
    async with bench.rt.db.session() as session:
        for resident in (stays, leaves, stopped_all):
            await repo.subscribe(session, resident_id=resident.id, topic="permit", ref="PBG-2026-00124")
    body = {"subscription": True, "topic": "permit", "ref": "PBG-2026-00124"}
    for resident in (stays, leaves, stopped_all):
        await bench.queue(resident, "PBG disetujui.", key=f"n{resident.id}", **body)
    await bench.queue(stopped_all, "Balasan petugas tetap sampai.", key="staff", kind="staff")
    # After queueing, before sending: one unsubscribes from this permit, one says BERHENTI (all).
    async with bench.rt.db.session() as session:
        await repo.unsubscribe(session, resident_id=leaves.id, topic="permit", ref="PBG-2026-00124")
        await repo.unsubscribe(session, resident_id=stopped_all.id)

    await bench.dispatcher.deliver_due()

    outcome = sorted((r.chat_id, r.kind, r.status, r.last_error) for r in await rows(bench))
    assert outcome == [
        ("1001", "notification", "sent", None),
        ("1002", "notification", "skipped", "unsubscribed"),
        ("1003", "notification", "skipped", "opted out"),
        ("1003", "staff", "sent", None),  # a staff reply is conversation, not a notification
    ]
    assert sorted(c.params["chat_id"] for c in bench.fake.sent()) == [1001, 1003]


async def test_a_row_that_keeps_failing_becomes_a_dead_letter_and_staff_can_requeue_it(bench: Bench) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "Izin Kakak disetujui.", key="k")
    bench.fake.fail_next("sendMessage", status=500, times=3)

    attempts: list[tuple[str, int]] = []
    for _ in range(3):  # max_attempts is 3 in these tests
        await bench.dispatcher.deliver_due()
        [row] = await rows(bench)
        attempts.append((row.status, row.attempts))
        bench.clock.at = max(bench.clock.at, row.not_before) + timedelta(seconds=1)

    [letter] = await dead_letters(bench.rt.db)
    assert attempts == [("pending", 1), ("pending", 2), ("dead", 3)]
    assert (letter.id, letter.text, letter.attempts, letter.chat) == (
        row.id,
        "Izin Kakak disetujui.",
        3,
        mask_id("555000111"),
    )
    assert letter.last_error is not None and "failed" in letter.last_error

    assert await requeue(bench.rt.db, letter.id, "admin", now=bench.clock()) is True
    assert await requeue(bench.rt.db, letter.id, "admin", now=bench.clock()) is False  # not dead any more
    await bench.dispatcher.deliver_due()

    [row] = await rows(bench)
    assert (row.status, row.attempts) == ("sent", 1)
    assert await dead_letters(bench.rt.db) == []
    assert len(bench.fake.sent()) == 1


async def test_backoff_grows_with_jitter(bench: Bench) -> None:
    from random import Random

    from bot.notifications.outbox import backoff_seconds

    delays = [backoff_seconds(n, base=5, cap=3600, rng=Random(7)) for n in range(1, 12)]

    assert all(
        5 * 2 ** (n - 1) / 2 <= d <= 5 * 2 ** (n - 1) for n, d in zip(range(1, 10), delays, strict=False)
    )
    assert delays[-1] <= 3600 and delays[-1] >= 1800


async def test_a_429_retry_after_is_waited_out_and_the_message_goes_once(bench: Bench) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "Izin Kakak disetujui.", key="k")
    bench.fake.fail_next("sendMessage", status=429, retry_after=1)

    await bench.dispatcher.deliver_due()

    refused, accepted = bench.fake.calls("sendMessage")
    [row] = await rows(bench)
    assert (refused.status, accepted.status) == (429, 200)
    assert accepted.at - refused.at >= 0.95
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_long_429_puts_the_row_back_until_retry_after_without_spending_an_attempt(
    bench: Bench,
) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "Izin Kakak disetujui.", key="k")
    bench.fake.fail_next("sendMessage", status=429, retry_after=120)

    await bench.dispatcher.deliver_due()

    [row] = await rows(bench)
    limiter = bench.rt.channels[next(iter(bench.rt.channels))].limiter  # type: ignore[attr-defined]
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.not_before == bench.clock() + timedelta(seconds=120)
    assert limiter.ready_in("555000111") > 100  # every send of this bot waits, not only this row
    assert bench.fake.sent() == []


async def test_a_blocked_bot_skips_the_row_and_marks_the_resident(bench: Bench) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "Izin Kakak disetujui.", key="k1")
    await bench.queue(resident, "Izin Kakak selesai.", key="k2")
    bench.fake.block_chat("555000111")

    await bench.dispatcher.deliver_due()

    assert [(r.status, (r.last_error or "")[:11]) for r in await rows(bench)] == [
        ("skipped", "unreachable"),
        ("skipped", "unreachable"),
    ]
    assert len(bench.fake.calls("sendMessage")) == 1  # the second is not even tried


async def test_a_held_lease_is_not_claimed_twice_and_a_lapsed_one_is(bench: Bench) -> None:
    resident = await bench.resident()
    await bench.queue(resident, "satu", key="k1")
    await bench.queue(resident, "dua", key="k2")
    now = bench.clock()
    lease = now + timedelta(seconds=30)

    async with bench.rt.db.session() as session:
        first = await outbox_repo.claim_due(session, now=now, lease_until=lease, limit=1)
    async with bench.rt.db.session() as session:
        second = await outbox_repo.claim_due(session, now=now, lease_until=lease, limit=5)
    async with bench.rt.db.session() as session:
        later = now + timedelta(seconds=31)
        third = await outbox_repo.claim_due(
            session, now=later, lease_until=later + timedelta(seconds=30), limit=1
        )
    async with bench.rt.db.session() as session:
        stale = await outbox_repo.mark_sent(
            session, claim_id=first[0].id, attempts=first[0].attempts, provider_message_id="x", at=later
        )
        fresh = await outbox_repo.mark_sent(
            session, claim_id=third[0].id, attempts=third[0].attempts, provider_message_id="y", at=later
        )

    assert [c.body["text"] for c in first] == ["satu"]
    assert [c.body["text"] for c in second] == ["dua"]
    assert [(c.body["text"], c.reclaimed, c.attempts) for c in third] == [("satu", True, 2)]
    assert (stale, fresh) == (False, True)  # the first claimer's late result cannot overwrite


async def test_concurrent_claimers_take_disjoint_rows(bench: Bench) -> None:
    """SKIP LOCKED on PostgreSQL (both claim at once); SQLite serialises claimers (one after the other)."""
    resident = await bench.resident()
    for i in range(6):
        await bench.queue(resident, f"pesan {i}", key=f"k{i}")
    db = bench.rt.db
    now = bench.clock()
    lease = now + timedelta(seconds=30)

    if db.is_postgres:
        async with db.session() as one:
            mine = await outbox_repo.claim_due(one, now=now, lease_until=lease, limit=3)
            async with db.session() as two:  # runs while the first still holds its rows locked
                theirs = await asyncio.wait_for(
                    outbox_repo.claim_due(two, now=now, lease_until=lease, limit=6), timeout=5
                )
    else:
        async with db.session() as one:
            mine = await outbox_repo.claim_due(one, now=now, lease_until=lease, limit=3)
        async with db.session() as two:
            theirs = await outbox_repo.claim_due(two, now=now, lease_until=lease, limit=6)

    assert len(mine) == 3 and len(theirs) == 3
    assert {c.id for c in mine}.isdisjoint({c.id for c in theirs})


async def test_stopping_hands_unstarted_claims_back_at_once(bench: Bench) -> None:
    resident = await bench.resident()
    for i in range(3):
        await bench.queue(resident, f"pesan {i}", key=f"k{i}")
    bench.rt.channels[next(iter(bench.rt.channels))].limiter.pause(60)  # type: ignore[attr-defined]

    await bench.dispatcher.claim_once()
    await asyncio.sleep(0.05)
    await bench.dispatcher.stop(grace=0.1)

    assert [(r.status, r.attempts, r.claimed_until) for r in await rows(bench)] == [("pending", 0, None)] * 3
    assert bench.fake.sent() == []
