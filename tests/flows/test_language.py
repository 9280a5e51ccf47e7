"""The reply language follows each message unless the resident chose one (issue 18, point 4)."""

from __future__ import annotations

from typing import Any

from flows.knowledge import load_documents, load_offices
from tests.flows.conftest import Chat, one_of, say, text_of

DOCS = load_documents().documents
KTP, KK = DOCS["ktp_el"], DOCS["kk"]


async def turn(resident: Chat, text: str, **body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """One message: the replies and the conversation's language the answer reports."""
    response = await resident.server.client.post(
        "/api/chat", json={"session_id": resident.session_id, "text": text, **body}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    return data["replies"], data["language"]


async def test_an_english_question_is_answered_in_english_and_indonesian_switches_back(chat) -> None:
    resident = chat("lang-1")

    english, language = await turn(resident, "what documents do i need for a family card?")
    assert text_of(english).startswith(say("documents.requirements_title", "en", name=KK.name.en)[0])
    assert KK.requirements["en"][0] in text_of(english)
    assert language == "en"

    _, language = await turn(resident, "ok")  # too short to tell: the conversation stays in English
    assert language == "en"

    indonesian, language = await turn(resident, "kalau syarat bikin ktp apa aja?")
    assert text_of(indonesian).startswith(say("documents.requirements_title", name=KTP.name.id)[0])
    assert language == "id"


async def test_a_chosen_language_wins_over_the_language_of_the_messages(chat) -> None:
    resident = chat("lang-2")

    chosen, language = await turn(resident, "english please")
    assert text_of(chosen) == say("language.changed", "en")[0]
    assert language == "en"

    answer, language = await turn(resident, "syarat bikin ktp apa aja")
    assert text_of(answer).startswith(say("documents.requirements_title", "en", name=KTP.name.en)[0])
    assert language == "en"

    back, language = await turn(resident, "pakai bahasa indonesia")
    assert text_of(back) == say("language.changed")[0]
    answer, language = await turn(resident, "what are the requirements for a family card")
    assert text_of(answer).startswith(say("documents.requirements_title", name=KK.name.id)[0])
    assert language == "id"


async def test_pleasantries_and_mixed_messages(chat) -> None:
    resident = chat("lang-3")

    _, language = await turn(resident, "thank you")  # Indonesian residents say it too: no switch
    assert language == "id"
    mixed, language = await turn(resident, "min, what are the requirements for KK?")  # mostly English
    assert text_of(mixed).startswith(say("documents.requirements_title", "en", name=KK.name.en)[0])
    assert language == "en"
    _, language = await turn(resident, "kamek nak tanye, kantornye dimane")  # Pontianak Malay
    assert language == "id"


async def test_the_web_page_language_starts_a_new_conversation(chat) -> None:
    resident = chat("lang-4")

    hello, language = await turn(resident, "hello", language="en")

    assert one_of("greet", "en")(text_of(hello))
    assert language == "en"


async def test_an_english_office_question_is_answered_in_english(chat) -> None:
    disdukcapil = load_offices().offices["disdukcapil"]
    replies, language = await turn(chat("lang-office"), "where is the disdukcapil office located?")

    assert language == "en"
    assert text_of(replies).startswith(say("offices.location_title", "en", name=disdukcapil.name.en)[0])
    assert replies[0]["venue"] is not None
