"""Document requirements, fee and processing time: a resident's conversations over the web chat API."""

from __future__ import annotations

from flows.knowledge import load_documents
from tests.flows.conftest import one_of, payloads, say, text_of

DOCS = load_documents().documents
KTP, KK, PBG = DOCS["ktp_el"], DOCS["kk"], DOCS["pbg"]


async def test_requirements_then_follow_ups_keep_the_document_and_the_question(chat) -> None:
    resident = chat("doc-1")

    ktp = await resident.say("syarat bikin ktp apa aja")
    assert text_of(ktp).startswith(say("documents.requirements_title", name=KTP.name.id)[0])
    assert KTP.requirements["id"][0] in text_of(ktp)
    assert KTP.online.id in text_of(ktp)
    assert '/service_fee{"document_type": "ktp_el"}' in payloads(ktp)

    how_long = await resident.say("berapa lama?")
    assert text_of(how_long).startswith(say("documents.time_title", name=KTP.name.id)[0])
    assert KTP.processing_time.id in text_of(how_long)

    kk = await resident.say("kalau KK?")
    assert text_of(kk).startswith(say("documents.time_title", name=KK.name.id)[0])
    assert KK.processing_time.id in text_of(kk)

    fee = await resident.say("biayanya?")
    assert KK.fee.id in text_of(fee)
    assert "Pasal 79A" in text_of(fee)


async def test_a_missing_document_is_asked_with_buttons_and_a_wrong_answer_is_asked_again(chat) -> None:
    resident = chat("doc-2")

    asked = await resident.say("berapa biayanya?")
    assert text_of(asked) == say("documents.ask")[0]
    assert len(payloads(asked)) == len(DOCS)

    wrong = await resident.say("ijazah")
    assert text_of(wrong) == say("documents.ask_again")[0]

    picked = await resident.press('/service_fee{"document_type": "pbg", "aspect": "fee"}')
    assert text_of(picked).startswith(say("documents.fee_title", name=PBG.name.id)[0])
    assert "luas total lantai" in text_of(picked)
    assert "Rp" not in text_of(picked)


async def test_two_messages_that_answer_nothing_close_the_question(chat) -> None:
    resident = chat("doc-3")
    await resident.say("syarat dokumen")

    again = await resident.say("hmm")
    assert text_of(again) == say("documents.ask_again")[0]
    closed = await resident.say("entahlah")

    assert closed[0]["text"] in say("engine.closed", flow=say("flow_title.documents")[0])
    assert not one_of("documents.ask")(text_of(closed))


async def test_a_bare_document_name_and_buttons_after_an_answer(chat) -> None:
    resident = chat("doc-4")

    kia = await resident.say("KIA")
    assert text_of(kia).startswith(say("documents.requirements_title", name=DOCS["kia"].name.id)[0])

    time = await resident.press('/processing_time{"document_type": "kia"}')
    assert DOCS["kia"].processing_time.id in text_of(time)

    other = await resident.press('/processing_time{"aspect": "time", "choose": "document"}')
    assert text_of(other) == say("documents.ask")[0]


async def test_in_english_after_changing_language(chat) -> None:
    resident = chat("doc-5")
    await resident.say("english please")

    answer = await resident.say("what are the requirements for ID card")

    assert text_of(answer).startswith(say("documents.requirements_title", "en", name=KTP.name.en)[0])
    assert KTP.requirements["en"][0] in text_of(answer)


async def test_office_hours_asked_while_choosing_a_document_resumes_the_question(chat) -> None:
    resident = chat("doc-6")
    await resident.say("syarat dokumen")

    side = await resident.say("disdukcapil buka jam berapa")
    assert one_of("offices.hours_title", name="Disdukcapil")(text_of(side))
    assert any(text_of(side).endswith(say("documents.ask")[0]) for _ in [0])
    assert len(payloads(side)) >= len(DOCS)

    picked = await resident.say("akta kematian")
    assert DOCS["akta_kematian"].requirements["id"][0] in text_of(picked)


async def test_cancel_while_choosing_a_document(chat) -> None:
    resident = chat("doc-7")
    await resident.say("syarat dokumen")

    cancelled = await resident.say("batal")

    assert text_of(cancelled).startswith(say("cancel.done")[0])
    assert "/document_requirements" in payloads(cancelled)
