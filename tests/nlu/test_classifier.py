"""Classifier inputs: entity tags, tag-aware features, class weights."""

from __future__ import annotations

import numpy as np

from nlu.classifier import class_weights
from nlu.entities import default_extractor
from nlu.features import char_features, word_features
from nlu.normalize import default_lexicon
from nlu.pipeline import classifier_tokens


def test_entities_become_tags_after_the_words() -> None:
    text = "syarat ktp di kantor camat pontianak barat"
    toks = classifier_tokens(text, default_extractor().extract(text), default_lexicon())
    assert toks == [
        "syarat",
        "ktp",
        "di",
        "kantor",
        "camat",
        "pontianak",
        "barat",
        "<document_type>",
        "<office>",
    ]


def test_numbers_are_placeholders_not_tags() -> None:
    text = "laporan ADU-2026-000123"
    assert classifier_tokens(text, default_extractor().extract(text), default_lexicon()) == [
        "laporan",
        "nomortiket",
    ]


def test_tags_are_unigrams_without_char_ngrams() -> None:
    toks = ["jalan", "rusak", "<complaint_category>"]
    assert word_features(toks) == ["w:jalan", "w:rusak", "b:jalan rusak", "w:<complaint_category>"]
    assert all("<" not in feat for feat in char_features(toks))


def test_class_weights_soften_the_big_class() -> None:
    y = np.array([0] * 400 + [1] * 100)
    weights = class_weights(y, 2, power=0.5)
    assert weights[0] < 1.0 < weights[1]
    assert round(weights[1] / weights[0], 6) == 2.0
    assert class_weights(y, 2, power=0.0) == {0: 1.0, 1: 1.0}


def test_a_message_made_only_of_entities_gets_an_only_tag() -> None:
    def toks(text: str) -> list[str]:
        return classifier_tokens(text, default_extractor().extract(text), default_lexicon())

    assert toks("Akta nikah?") == ["akta", "nikah", "<document_type>", "<only:document_type>"]
    assert toks("kalau akta nikah") == ["kalau", "akta", "nikah", "<document_type>"]
    assert toks("PBG-2026-00123") == ["nomorizin"]
