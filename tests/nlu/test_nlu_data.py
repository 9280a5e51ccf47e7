"""The training and test data: Rasa 3 format, volume per intent, canonical annotations."""

from __future__ import annotations

from collections import Counter

import yaml

from nlu.entities import CANONICAL_VALUES, load_locations, locations_rasa_yaml
from nlu.training_data import TEST_DIR, TRAIN_DIR, load, yaml_files

DESIGN_INTENTS = {
    "greet", "goodbye", "thank_you", "affirm", "deny", "help", "cancel", "permit_status",
    "document_requirements", "service_fee", "processing_time", "office_hours", "office_location",
    "file_complaint", "complaint_status", "talk_to_staff", "subscribe_updates", "unsubscribe",
    "emergency", "bot_challenge", "change_language", "out_of_scope",
}  # fmt: skip


def test_every_file_is_rasa_3_1() -> None:
    for path in [*yaml_files(TRAIN_DIR), *yaml_files(TEST_DIR)]:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["version"] == "3.1", path
        assert isinstance(doc["nlu"], list), path


def test_training_volume() -> None:
    counts = Counter(ex.intent for ex in load(TRAIN_DIR).examples)
    assert set(counts) == DESIGN_INTENTS
    assert min(n for intent, n in counts.items() if intent != "out_of_scope") >= 60
    assert counts["out_of_scope"] >= 400


def test_test_set_is_separate() -> None:
    test = load(TEST_DIR, synonyms_from=[TRAIN_DIR]).examples
    assert set(Counter(ex.intent for ex in test)) == DESIGN_INTENTS
    assert min(Counter(ex.intent for ex in test).values()) >= 15
    train = {ex.text.casefold() for ex in load(TRAIN_DIR).examples}
    # Only the contract keyword of DESIGN 5 may appear in both.
    assert {ex.text for ex in test if ex.text.casefold() in train} <= {"BERHENTI"}


def test_annotations_use_canonical_values() -> None:
    codes = {loc.code for loc in load_locations()}
    data = [*load(TRAIN_DIR).examples, *load(TEST_DIR, synonyms_from=[TRAIN_DIR]).examples]
    for ex in data:
        for ann in ex.entities:
            if ann.entity in CANONICAL_VALUES:
                assert ann.value in CANONICAL_VALUES[ann.entity], (ex.text, ann)
            elif ann.entity == "location":
                assert ann.value in codes, (ex.text, ann)


def test_location_lookup_is_generated_from_the_csv() -> None:
    assert (TRAIN_DIR / "locations.yml").read_text(encoding="utf-8") == locations_rasa_yaml()
