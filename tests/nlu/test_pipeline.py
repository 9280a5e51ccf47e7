"""The embedded parser: intents, fallback, out-of-scope, odd input, payloads, artifact freshness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlu.classifier import IntentModel, stored_hash
from nlu.errors import ModelError
from nlu.pipeline import EmbeddedParser, build_parser, training_hash
from nlu.result import FALLBACK_INTENT, ParseResult
from nlu.training_data import TRAIN_DIR


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("halo min", "greet"),
        ("syarat bikin ktp apa aja", "document_requirements"),
        ("bikin akta bayar gak", "service_fee"),
        ("berapa lama KK jadi", "processing_time"),
        ("disdukcapil buka jam berapa, sabtu buka?", "office_hours"),
        ("alamat mal pelayanan publik dimana", "office_location"),
        ("jalan berlubang di jl. tanjungpura", "file_complaint"),
        ("laporan saya ADU-2026-000123 gimana", "complaint_status"),
        ("status izin PBG saya sudah sampai mana", "permit_status"),
        ("mau bicara dengan petugas", "talk_to_staff"),
        ("BERHENTI", "unsubscribe"),
        ("ada kebakaran", "emergency"),
        ("kamu bot ya?", "bot_challenge"),
        ("english please", "change_language"),
        ("skor bola semalam", "out_of_scope"),
    ],
)
def test_design_examples(parser: EmbeddedParser, text: str, intent: str) -> None:
    assert parser.parse_sync(text).intent_name == intent


def test_result_is_rasa_json(parser: EmbeddedParser) -> None:
    data = parser.parse_sync("syarat bikin ktp").to_dict()
    # Rasa's four keys, and "language" (ours; Rasa clients ignore an unknown top-level key).
    assert set(data) == {"text", "intent", "entities", "intent_ranking", "language"}
    assert data["language"] is None  # "syarat bikin": too few words to tell (KTP names a document)
    assert parser.parse_sync("syarat bikin ktp apa aja").to_dict()["language"] == "id"
    assert data["intent"]["name"] == "document_requirements"
    assert data["intent_ranking"][0] == data["intent"]
    assert len(data["intent_ranking"]) <= 10
    assert data["entities"] == [
        {
            "entity": "document_type",
            "value": "ktp_el",
            "start": 13,
            "end": 16,
            "confidence": 1.0,
            "confidence_entity": 1.0,
            "extractor": "lookup",
        }
    ]


def test_below_threshold_is_nlu_fallback(nlu_model_dir: Path) -> None:
    strict = build_parser("embedded", threshold=0.999999, model_dir=nlu_model_dir)
    assert isinstance(strict, EmbeddedParser)
    result = strict.parse_sync("mau nanya soal jalan")
    assert result.intent.name == FALLBACK_INTENT
    assert result.intent.confidence == 0.999999
    assert result.intent_ranking[0].name == FALLBACK_INTENT
    assert result.intent_ranking[1].name != FALLBACK_INTENT


@pytest.mark.parametrize(
    "text",
    ["asdfghjkl", "resep kue bolu", "cuaca besok hujan gak", "kamu bodoh", "jadwal kapal ke jakarta"],
)
def test_out_of_scope_is_rejected(parser: EmbeddedParser, text: str) -> None:
    assert parser.parse_sync(text).intent_name in {"out_of_scope", FALLBACK_INTENT}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😀😀",
        "x" * 10_000,
        "syarat ktp " * 1_000,
        "\x00\x01\x02\x1b[2J\x7f",
        "\ud800 lone surrogate",
        "سلام 你好 привет ktp",
        "\u202e\u200b\ufeff",
        "ADU-" + "9" * 500,
        "/",
        "/{}",
        '/greet{"broken": ',
    ],
)
def test_odd_input_gives_a_valid_result(parser: EmbeddedParser, text: str) -> None:
    result = parser.parse_sync(text)
    assert isinstance(result, ParseResult)
    assert result.text == text
    assert 0.0 <= result.confidence <= 1.0
    assert result.intent_name in {*parser.model.labels, FALLBACK_INTENT}


def test_empty_text_falls_back(parser: EmbeddedParser) -> None:
    assert parser.parse_sync("").intent_name == FALLBACK_INTENT


@pytest.mark.parametrize(
    ("payload", "intent", "entities"),
    [
        ("/affirm", "affirm", []),
        ('/office_hours{"office": "mpp"}', "office_hours", [("office", "mpp")]),
        (
            '/document_requirements{"document_type": "kk", "location": "61.71.01.1004"}',
            "document_requirements",
            [("document_type", "kk"), ("location", "61.71.01.1004")],
        ),
    ],
)
async def test_payloads(
    parser: EmbeddedParser, payload: str, intent: str, entities: list[tuple[str, str]]
) -> None:
    result = await parser.parse(payload)
    assert (result.intent.name, result.intent.confidence) == (intent, 1.0)
    assert [(e.entity, e.value) for e in result.entities] == entities
    assert {e.extractor for e in result.entities} <= {"payload"}


def test_unknown_payload_intent_is_read_as_text(parser: EmbeddedParser) -> None:
    assert parser.parse_sync("/start").intent_name != "start"


def test_model_is_keyed_by_the_data_hash(nlu_model_dir: Path, tmp_path: Path) -> None:
    assert stored_hash(nlu_model_dir) == training_hash()
    data = tmp_path / "data"
    shutil.copytree(TRAIN_DIR, data)
    model_dir = tmp_path / "model"
    shutil.copytree(nlu_model_dir, model_dir)
    assert training_hash(data) == training_hash()  # same content, same key: no retraining
    with (data / "chitchat.yml").open("a", encoding="utf-8") as fh:
        fh.write("- intent: greet\n  examples: |\n    - halo halo pontibot apa kabar\n")
    assert training_hash(data) != stored_hash(model_dir)
    parser = build_parser("embedded", threshold=0.4, model_dir=model_dir, data_dir=data)
    assert isinstance(parser, EmbeddedParser)
    assert stored_hash(model_dir) == training_hash(data)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backend"):
        build_parser("spacy", threshold=0.4, model_dir=Path("x"))
    with pytest.raises(ValueError, match="rasa_url"):
        build_parser("rasa", threshold=0.4, model_dir=Path("x"))
    with pytest.raises(ValueError, match="threshold"):
        build_parser("embedded", threshold=1.5, model_dir=Path("x"))


def test_an_artifact_of_another_model_version_is_retrained_not_crashed_on(
    nlu_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(nlu_model_dir, model_dir)
    meta_path = model_dir / "intent_model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["model_version"] = "features-v3+logreg-svm-v2"  # an artifact written before issue 18
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    assert stored_hash(model_dir) is None
    with pytest.raises(ModelError, match="retrain"):
        IntentModel.load(model_dir)
    parser = build_parser("embedded", threshold=0.4, model_dir=model_dir)
    assert isinstance(parser, EmbeddedParser)
    assert stored_hash(model_dir) == training_hash()
    assert parser.parse_sync("syarat bikin ktp").intent_name == "document_requirements"
