"""Whatever a resident sends, in whatever state: the bot answers at least once and never fails a turn.

Drives the real Dispatcher (real NLU parser, real flows, a migrated database) directly, for speed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.runtime import Runtime
from bot.wiring import build_runtime, close_runtime
from flows.messages import Channel, ContentKind, IncomingMessage, Location
from nlu.entities import DOCUMENT_TYPES, OFFICES
from storage import repositories as repo

ENTITY_VALUES: dict[str, list[str]] = {
    "document_type": [*DOCUMENT_TYPES, "paspor"],
    "office": [*OFFICES, "kantor_camat", "nowhere"],
    "permit_number": ["PBG-2026-00123", "PBG-2026-99999", "x"],
    "ticket_number": ["ADU-2026-000001", "ADU-2026-999999"],
    "location": ["61.71.01.1004", "61.71.02", "99.99"],
    "aspect": ["requirements", "fee", "time", "nope"],
    "topic": ["announcements", "permit", "zzz"],
    "language": ["id", "en", "fr"],
    "choose": ["document"],
    "score": ["1", "5", "9"],
}
MEMORY_SLOTS = {
    "last_document": st.sampled_from([*DOCUMENT_TYPES, "bogus"]),
    "last_document_aspect": st.sampled_from(["requirements", "fee", "time", "bogus"]),
    "last_office": st.sampled_from([*OFFICES, "bogus"]),
    "last_kelurahan": st.sampled_from(["61.71.01.1004", "bogus"]),
    "last_permit": st.sampled_from(["PBG-2026-00123", "PBG-2026-99999"]),
    "last_ticket": st.sampled_from(["ADU-2026-000001"]),
    "offices.date": st.sampled_from(["2026-12-25", "not-a-date"]),
    "documents.aspect": st.sampled_from(["fee", "bogus"]),
    "_resume": st.just([{"state": "offices.ask_office", "prompt": None}, {"state": "gone"}]),
    "_switch": st.just({"from_state": "documents.ask_type", "to_flow": "offices", "text": "jam buka mpp"}),
}
_ids = itertools.count()


def _payloads(intents: list[str]) -> st.SearchStrategy[str]:
    entities = st.dictionaries(
        st.sampled_from(sorted(ENTITY_VALUES)),
        st.sampled_from(sorted({v for values in ENTITY_VALUES.values() for v in values})),
        max_size=2,
    )
    return st.builds(
        lambda intent, ents: f"/{intent}{json.dumps(ents)}" if ents else f"/{intent}",
        st.sampled_from(intents),
        entities,
    )


def _messages(intents: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    texts = st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            ["halo", "syarat ktp", "kalau KK?", "berapa lama?", "sabtu buka?", "besok tanggal merah buka?",
             "kabari saya", "BERHENTI", "batal", "ya", "tidak", "menu", "ada kebakaran", "english please",
             "PBG-2026-00123", "ADU-2026-000001", "kantor lurah parit tokaya", "tanggal 31 februari buka?"]
        ),
    )  # fmt: skip
    locations = st.builds(
        Location, st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)
    )
    return st.one_of(
        st.fixed_dictionaries({"text": texts}),
        st.fixed_dictionaries({"payload": _payloads(intents)}),
        st.fixed_dictionaries({"location": locations}),
        st.fixed_dictionaries({"kind": st.sampled_from([ContentKind.STICKER, ContentKind.VOICE])}),
    )


async def _turn(rt: Runtime, state: str | None, slots: dict[str, Any], message: dict[str, Any]) -> None:
    chat_id = f"prop-{next(_ids)}"
    async with rt.db.session() as session:
        resident = await repo.get_or_create_resident(
            session, channel="webchat", external_id=chat_id, language="id"
        )
        conversation = await repo.get_or_create_conversation(session, resident=resident)
        conversation.state = state
        conversation.slots = slots
    kind = message.get("kind") or (ContentKind.LOCATION if "location" in message else ContentKind.TEXT)
    msg = IncomingMessage(
        channel=Channel.WEBCHAT,
        chat_id=chat_id,
        user_id=chat_id,
        message_id=f"{chat_id}-m",
        text=message.get("text"),
        payload=message.get("payload"),
        location=message.get("location"),
        kind=kind,
    )
    result = await rt.dispatcher.handle(msg)
    assert result.replies, (state, slots, message)
    assert not result.failed, (state, slots, message)
    assert all(reply.text.strip() for reply in result.replies), (state, message)


def test_every_state_answers_any_message(settings, nlu_parser) -> None:  # type: ignore[no-untyped-def]
    with asyncio.Runner() as runner:
        rt = runner.run(build_runtime(settings, parser=nlu_parser))
        try:
            states: list[str | None] = [None, *sorted(rt.engine.states)]
            intents = sorted(rt.engine.intents | {"affirm", "deny", "rate", "nlu_fallback"})
            for state in states:
                _check_state(runner, rt, state, intents)
        finally:
            runner.run(close_runtime(rt))


def _check_state(runner: asyncio.Runner, rt: Runtime, state: str | None, intents: list[str]) -> None:
    @EXAMPLES_PER_STATE
    @given(slots=st.fixed_dictionaries({}, optional=MEMORY_SLOTS), message=_messages(intents))
    def check(slots: dict[str, Any], message: dict[str, Any]) -> None:
        runner.run(_turn(rt, state, slots, message))

    check()


EXAMPLES_PER_STATE = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
