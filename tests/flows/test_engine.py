"""The engine's interruptions with two stand-in journeys: side questions resume, other journeys ask first."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.core import core_globals, smalltalk_flows
from flows.documents import documents_flow
from flows.engine import (
    Confidence,
    EngineState,
    Flow,
    FlowContext,
    FlowEngine,
    ResidentInfo,
    Step,
    apply_slots,
)
from flows.messages import Channel, IncomingMessage, Reply
from flows.offices import offices_flow
from flows.registry import build_engine
from flows.texts import Texts
from nlu.payload import parse_payload
from nlu.result import FALLBACK_INTENT, Entity, IntentScore, ParseResult

TEXTS = Texts.load()
ASK_NUMBER = "permit.ask_number"
ASK_DESCRIPTION = "complaint.ask_description"


async def _permit_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    return Step([Reply("Nomor izinnya berapa, Kak?")], ASK_NUMBER)


async def _permit_number(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    if nlu.entity("permit_number"):
        return Step(
            [Reply(f"Izin {nlu.entity('permit_number')}: survei lapangan.")], None, {"last_permit": "x"}
        )
    return Step([Reply("Format nomor salah, contoh PBG-2026-00123.")], ASK_NUMBER)


async def _complaint_start(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    return Step([Reply("Ceritakan masalahnya, Kak.")], ASK_DESCRIPTION, {"complaint.category": "garbage"})


async def _complaint_description(ctx: FlowContext, msg: IncomingMessage, nlu: ParseResult) -> Step:
    return Step([Reply(f"Dicatat: {msg.text}")], None, {"complaint.category": None})


PERMIT = Flow("permit", frozenset({"permit_status"}), _permit_start, {ASK_NUMBER: _permit_number})
COMPLAINT = Flow(
    "complaint",
    frozenset({"file_complaint"}),
    _complaint_start,
    {ASK_DESCRIPTION: _complaint_description},
    accepts={ASK_DESCRIPTION: frozenset({"*"})},
)


class _Services:
    session: Any = None
    permits: Any = None
    complaints: Any = None

    def now(self) -> datetime:
        return datetime(2026, 11, 27, 10, 0, tzinfo=ZoneInfo("Asia/Pontianak"))


@dataclass
class Conversation:
    """Applies each step like the dispatcher does, so a test reads turn by turn."""

    engine: FlowEngine
    state: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    language: str = "id"
    turn: int = 0

    async def send(
        self, text: str | None = None, *, payload: str | None = None, intent: str = "", **entities: str
    ) -> list[str]:
        if payload is not None:
            nlu = parse_payload(payload)
            assert nlu is not None
        else:
            ents = tuple(Entity(k, v, 0, len(text or "")) for k, v in entities.items())
            nlu = ParseResult(
                text or "", IntentScore(intent or "nlu_fallback", 0.95 if intent else 0.3), ents
            )
        ctx = FlowContext(
            ResidentInfo(1, Channel.WEBCHAT, self.language),
            self.state,
            dict(self.slots),
            TEXTS,
            _Services(),
            self.turn,
            {"emergency_numbers": {"Ambulans": "118"}},
        )
        msg = IncomingMessage(Channel.WEBCHAT, "c", "c", text=text, payload=payload)
        step = await self.engine.handle(ctx, msg, nlu)
        self.state = step.next_state
        self.slots = apply_slots(self.slots, step)
        self.language = step.language or self.language
        self.turn += 1
        assert step.replies
        return [reply.text for reply in step.replies]


def conversation() -> Conversation:
    flows = [*smalltalk_flows(), documents_flow(), offices_flow(), PERMIT, COMPLAINT]
    return Conversation(FlowEngine(flows, core_globals()))


def t(key: str, lang: str = "id", **params: Any) -> list[str]:
    return TEXTS.variants(lang, key, **params)


async def test_a_side_question_is_answered_and_the_pending_question_repeated() -> None:
    chat = conversation()
    await chat.send("cek izin saya", intent="permit_status")

    answer = await chat.send("syarat kk apa", intent="document_requirements", document_type="kk")

    assert answer[0].startswith(t("documents.requirements_title", name="Kartu Keluarga (KK)")[0])
    assert any(answer[-1] == f"{lead}\n\nNomor izinnya berapa, Kak?" for lead in t("engine.resume"))
    assert chat.state == ASK_NUMBER
    assert chat.slots["last_document"] == "kk"

    done = await chat.send("PBG-2026-00123", intent="permit_status", permit_number="PBG-2026-00123")
    assert done == ["Izin PBG-2026-00123: survei lapangan."]
    assert chat.state is None


async def test_a_side_flow_that_asks_resumes_the_journey_when_it_ends() -> None:
    chat = conversation()
    await chat.send("cek izin", intent="permit_status")

    which = await chat.send("berapa lama jadinya", intent="processing_time")
    assert which == t("documents.ask")
    assert chat.state == "documents.ask_type"

    answer = await chat.send(payload='/processing_time{"document_type": "nib", "aspect": "time"}')
    assert answer[0].startswith(t("documents.time_title", name="Nomor Induk Berusaha (NIB)")[0])
    assert answer[-1].endswith("Nomor izinnya berapa, Kak?")
    assert chat.state == ASK_NUMBER


async def test_another_journey_asks_before_leaving_no_resumes_yes_switches() -> None:
    chat = conversation()
    await chat.send("cek izin", intent="permit_status")

    asked = await chat.send("sampah numpuk", intent="file_complaint")
    assert asked == t(
        "engine.switch_ask", current=t("engine.this_request")[0], wanted=t("engine.this_request")[0]
    )
    assert chat.state == EngineState.CONFIRM_SWITCH

    wrong = await chat.send("hmm entahlah")
    assert wrong == asked

    resumed = await chat.send(payload="/deny")
    assert resumed[-1].endswith("Nomor izinnya berapa, Kak?")
    assert chat.state == ASK_NUMBER

    await chat.send("sampah numpuk", intent="file_complaint")
    switched = await chat.send("iya", intent="affirm")
    assert switched == ["Ceritakan masalahnya, Kak."]
    assert chat.state == ASK_DESCRIPTION


async def test_a_free_text_step_takes_every_intent_but_globals_still_work() -> None:
    chat = conversation()
    await chat.send("lapor", intent="file_complaint")

    helped = await chat.send("menu", intent="help")
    assert helped[-1].endswith("Ceritakan masalahnya, Kak.")
    assert chat.state == ASK_DESCRIPTION

    english = await chat.send("english please", intent="change_language")
    assert english[0] == t("language.changed", "en")[0]
    assert chat.language == "en"
    assert chat.state == ASK_DESCRIPTION

    recorded = await chat.send("jam buka kantor camat", intent="office_hours")
    assert recorded == ["Dicatat: jam buka kantor camat"]


async def test_cancel_and_emergency_end_the_journey_from_any_step() -> None:
    chat = conversation()
    await chat.send("cek izin", intent="permit_status")
    await chat.send("lapor sampah", intent="file_complaint")

    cancelled = await chat.send("batal", intent="cancel")
    assert cancelled[0].startswith(t("cancel.done")[0])
    assert chat.state is None
    assert not [key for key in chat.slots if key.startswith("_")]

    await chat.send("lapor", intent="file_complaint")
    emergency = await chat.send("ada kebakaran", intent="emergency")
    assert "112" in emergency[0] and "118" in emergency[0]
    assert chat.state is None
    assert "complaint.category" not in chat.slots


async def test_small_talk_in_the_middle_is_answered_and_the_question_repeated() -> None:
    chat = conversation()
    await chat.send("cek izin", intent="permit_status")

    thanks = await chat.send("makasih", intent="thank_you")

    assert thanks[0] in t("thank_you")
    assert thanks[-1].endswith("Nomor izinnya berapa, Kak?")


async def test_memory_survives_leaving_a_flow() -> None:
    chat = conversation()
    await chat.send("syarat ktp", intent="document_requirements", document_type="ktp_el")
    await chat.send("cek izin", intent="permit_status")
    await chat.send("batal", intent="cancel")

    follow_up = await chat.send("berapa lama", intent="processing_time")

    assert follow_up[0].startswith(t("documents.time_title", name="KTP elektronik (KTP-el)")[0])
    assert json.dumps(chat.slots)


async def test_the_second_misunderstanding_in_a_row_offers_the_menu_and_a_person() -> None:
    chat = conversation()

    first = await chat.send("sabtu")
    second = await chat.send("sabtu")

    assert first[0] in t("fallback.first")
    assert second == t("fallback.repeated")


# -- when the bot asks instead of acting (pure: FlowEngine.unsure_options) ----------------------


def _parsed(*ranking: tuple[str, float], fallback: float | None = None) -> ParseResult:
    scores = tuple(IntentScore(name, confidence) for name, confidence in ranking)
    if fallback is not None:
        top = IntentScore(FALLBACK_INTENT, fallback)
        return ParseResult("…", top, (), (top, *scores))
    return ParseResult("…", scores[0], (), scores)


@pytest.mark.parametrize(
    ("ranking", "fallback", "offered"),
    [
        ((("document_requirements", 0.9), ("office_location", 0.05)), None, []),
        ((("document_requirements", 0.45), ("out_of_scope", 0.3)), None, ["document_requirements"]),
        ((("file_complaint", 0.6), ("goodbye", 0.3)), None, ["file_complaint"]),  # records need 0.7
        ((("document_requirements", 0.55), ("office_location", 0.42)), None,
         ["document_requirements", "office_location"]),  # a close journey of another flow
        ((("document_requirements", 0.55), ("service_fee", 0.42)), None, []),  # same flow: its buttons
        ((("greet", 0.35), ("file_complaint", 0.3)), None, []),  # small talk is never asked about
        ((("out_of_scope", 0.6), ("document_requirements", 0.35)), None, []),
        ((("out_of_scope", 0.4), ("document_requirements", 0.35)), None, ["document_requirements"]),
        ((("file_complaint", 0.25), ("permit_status", 0.22), ("greet", 0.2)), 0.3,
         ["file_complaint", "permit_status"]),  # Rasa's two-stage fallback
        ((("file_complaint", 0.15),), 0.3, []),  # nothing likely enough: "belum paham"
    ],
)  # fmt: skip
def test_unsure_options(ranking, fallback, offered) -> None:
    engine = build_engine()

    assert engine.unsure_options(_parsed(*ranking, fallback=fallback), Confidence()) == offered
