"""Issue 18, points 2, 3, 5 and 6, turn by turn over the web chat: the bot asks when it is unsure,
every flow has a way out (a draft to resume), follow-ups use the conversation, frustration and
city questions outside the knowledge base get an apology and a person at once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from flows.engine import Confidence
from flows.knowledge import load_documents, load_offices
from storage.models import Message
from tests.conftest import LiveServer
from tests.flows.conftest import WIB, one_of, payloads, say, text_of

KTP = load_documents().documents["ktp_el"]
DISDUKCAPIL = load_offices().offices["disdukcapil"]
COMPLAINT = say("flow_title.complaint")[0]


def unsure_of(server: LiveServer, **levels: float) -> None:
    """Raise the confirm thresholds for this server, so the model's real confidence falls below them."""
    server.runtime.dispatcher.flow_settings["confidence"] = Confidence(**levels)


async def feedback_lines(server: LiveServer) -> list[dict[str, object]]:
    async with server.runtime.db.session() as session:
        rows = (await session.execute(select(Message.data).where(Message.direction == "out"))).scalars()
        return [dict(data["nlu_feedback"]) for data in rows if data and "nlu_feedback" in data]


# -- 2. uncertainty is a dialogue, not a guess ---------------------------------------------------


async def test_a_farewell_never_opens_a_complaint(chat) -> None:
    resident = chat("repair-1")

    replies = await resident.say("selamat jalan ya")

    assert not one_of("complaints.ask_category")(text_of(replies))
    follow = await resident.say("syarat ktp")
    assert text_of(follow).startswith(say("documents.requirements_title", name=KTP.name.id)[0])
    assert not one_of("engine.resume")(text_of(follow))


async def test_an_unsure_journey_is_asked_with_buttons_and_the_choice_replays_the_message(
    chat, live_server
) -> None:
    unsure_of(live_server, confirm=1.01, record=1.01)
    resident = chat("repair-2")

    asked = await resident.say("jalan berlubang besar di jl. tanjungpura")

    assert text_of(asked) == say("clarify.ask")[0]
    assert payloads(asked)[0] == "/file_complaint" and payloads(asked)[-1] == "/deny"
    assert [b["title"] for b in asked[0]["buttons"]][-1] == say("clarify.other")[0]
    chosen = await resident.press("/file_complaint")
    # The kept message is replayed into the chosen journey: its category and description are known.
    assert not one_of("complaints.ask_category")(text_of(chosen))
    assert one_of("complaints.ask_location")(text_of(chosen))
    [feedback] = await feedback_lines(live_server)
    assert feedback["clarified"]["chosen"] == "file_complaint"  # type: ignore[index]
    assert feedback["clarified"]["text"] == "jalan berlubang besar di jl. tanjungpura"  # type: ignore[index]


async def test_lainnya_apologises_and_offers_a_person_and_is_kept_for_staff(chat, live_server) -> None:
    unsure_of(live_server, confirm=1.01, record=1.01)
    resident = chat("repair-3")
    await resident.say("lampu mati")

    other = await resident.press("/deny")

    assert text_of(other) == say("clarify.none")[0]
    assert payloads(other) == ["/talk_to_staff", "/help"]
    [feedback] = await feedback_lines(live_server)
    assert feedback["clarified"]["chosen"] is None  # type: ignore[index]


async def test_a_record_journey_needs_more_confidence_than_an_answer(chat, live_server) -> None:
    unsure_of(live_server, confirm=0.0, record=1.01, margin=0.0)
    resident = chat("repair-4")

    answered = await resident.say("syarat bikin ktp apa aja")
    assert text_of(answered).startswith(say("documents.requirements_title", name=KTP.name.id)[0])
    asked = await resident.say("jalan berlubang di jl. tanjungpura")
    assert text_of(asked) == say("clarify.ask")[0]
    # Writing something else instead of choosing: that message is answered on its own.
    moved_on = await resident.say("disdukcapil buka jam berapa")
    assert not one_of("clarify.ask")(text_of(moved_on))
    assert DISDUKCAPIL.short.id in text_of(moved_on)


# -- 3. a way out of every flow ------------------------------------------------------------------


async def test_two_messages_that_answer_nothing_park_the_complaint_and_lanjut_resumes_it(chat) -> None:
    resident = chat("repair-5")
    await resident.say("mau lapor")
    assert text_of(await resident.say("hmm")) == say("complaints.ask_category_again")[0]

    parked = await resident.say("asdfgh qwerty")

    assert parked[0]["text"] == say("engine.parked_draft")[0]
    assert not one_of("complaints.ask_category")(text_of(parked[1:]))
    resumed = await resident.say("lanjut")
    assert text_of(resumed).startswith(say("engine.draft_resumed", flow=COMPLAINT)[0])
    assert one_of("complaints.ask_category")(text_of(resumed))
    assert '/file_complaint{"complaint_category": "street_light"}' in payloads(resumed) or payloads(resumed)


async def test_a_draft_keeps_what_was_said_for_a_day_only(chat) -> None:
    resident = chat("repair-6")
    morning = datetime(2026, 12, 7, 9, 0, tzinfo=WIB)
    resident.at(morning)
    await resident.say("lampu jalan mati sudah seminggu di gang melati")
    parked = await resident.say("dadah dulu ya")  # a farewell mid-form: answered, the form parked
    assert parked[-1]["text"] == say("engine.parked_draft")[0]

    resident.at(morning + timedelta(hours=3))
    resumed = await resident.say("lanjut")
    assert one_of("complaints.ask_location")(text_of(resumed))  # category and description kept
    await resident.say("dadah")

    resident.at(morning + timedelta(hours=28))
    expired = await resident.say("lanjut")
    assert text_of(expired) == say("engine.draft_expired")[0]


async def test_a_second_side_question_is_answered_without_the_stale_question(chat) -> None:
    resident = chat("repair-7")
    await resident.say("mau lapor")

    first = await resident.say("syarat ktp")
    assert one_of("engine.resume")(first[-1]["text"])
    second = await resident.say("disdukcapil buka jam berapa")

    assert DISDUKCAPIL.short.id in text_of(second)
    assert second[-1]["text"] == say("engine.parked_draft")[0]
    assert not one_of("complaints.ask_category")(text_of(second))


async def test_bukan_leaves_a_wrongly_started_flow_at_once(chat) -> None:
    resident = chat("repair-8")
    await resident.say("mau lapor")

    left = await resident.say("bukan")

    assert text_of(left) == say("engine.left", flow=COMPLAINT)[0]
    assert "/talk_to_staff" in payloads(left)
    after = await resident.say("halo")
    assert not one_of("engine.resume")(text_of(after))


# -- 5. context -----------------------------------------------------------------------------------


async def test_follow_ups_use_the_document_last_discussed(chat) -> None:
    resident = chat("repair-9")
    await resident.say("syarat ktp")

    where = await resident.say("kantornye dimane")
    assert text_of(where).startswith(say("offices.location_title", name=DISDUKCAPIL.name.id)[0])
    assert where[0]["venue"] is not None

    fee = await resident.say("biayanya?")
    assert text_of(fee).startswith(say("documents.fee_title", name=KTP.name.id)[0])

    online = await resident.say("kalau yang online?")
    assert text_of(online).startswith(say("documents.online_title", name=KTP.name.id)[0])
    assert KTP.online.id in text_of(online)


# -- 6. frustration and dead ends --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["bot bodoh", "dari tadi ga ngerti", "kamu ndak nyambung lah", "useless bot"]
)
async def test_frustration_gets_an_apology_and_a_person_at_once(chat, text) -> None:
    replies = await chat("repair-10").say(text)

    assert text_of(replies) == say("repair.frustrated")[0]
    assert payloads(replies)[0] == "/talk_to_staff"


async def test_frustration_in_the_middle_of_a_form_parks_it(chat) -> None:
    resident = chat("repair-11")
    await resident.say("mau lapor")

    replies = await resident.say("dari tadi ga ngerti")

    assert replies[0]["text"] == say("repair.frustrated")[0]
    assert replies[-1]["text"] == say("engine.parked_draft")[0]


async def test_repeated_misunderstanding_offers_a_person(chat) -> None:
    resident = chat("repair-12")
    await resident.say("qwrtpsdf")

    second = await resident.say("zxcvbnm lkjh")

    assert "/talk_to_staff" in payloads(second)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("bayar PBB dimana ya", "Badan Keuangan Daerah"),
        ("jadwal posyandu bulan ini", "Dinas Kesehatan"),
        ("kapan ppdb smp dibuka", "Dinas Pendidikan"),
    ],
)
async def test_a_city_question_outside_the_knowledge_base_is_referred_with_a_person(chat, text, unit) -> None:
    replies = await chat("repair-13").say(text)

    assert one_of("repair.referral", unit=unit)(text_of(replies)) or unit in text_of(replies)
    assert text_of(replies).startswith(say("repair.referral", unit="")[0].split("{")[0][:20])
    assert payloads(replies)[0] == "/talk_to_staff"


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["😀😀😀", "x" * 10_000, "КТП syarat 身份证 ktp", "12345", "https://example.com/abc", "🙏"],
)
async def test_odd_messages_get_a_valid_parse_and_a_helpful_reply(chat, text) -> None:
    replies = await chat("repair-14").say(text)

    assert all(reply["text"].strip() for reply in replies)
