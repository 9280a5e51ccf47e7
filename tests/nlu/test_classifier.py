"""Classifier inputs: entity tags, tag-aware features, class weights."""

from __future__ import annotations

import numpy as np

from nlu.classifier import UNK_FEATURE, Spelling, class_weights, train
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


def test_spelling_reads_an_unknown_word_as_the_known_word_one_typo_away() -> None:
    spelling = Spelling(["kantor", "syarat", "persyaratan", "jalan", "lampu"])
    typed = ["kantro", "persyaratn", "sayrat", "lampuu", "jalann", "netflix", "ktp"]
    assert spelling.correct(typed) == ["kantor", "persyaratan", "syarat", "lampu", "jalan", "netflix", "ktp"]


def test_spelling_leaves_a_word_with_two_near_neighbours_alone() -> None:
    assert Spelling(["lapor", "lampor"]).correct(["lapr", "lamor"]) == ["lapr", "lamor"]


def test_unknown_words_count_as_one_unk_feature() -> None:
    docs = [["syarat", "ktp"], ["syarat", "kk"], ["jam", "buka"], ["jam", "tutup"], ["halo"], ["hai"]]
    labels = ["doc", "doc", "hours", "hours", "greet", "greet"]
    model = train(docs, labels, data_hash="t", folds=2)
    unk = model.vocab[UNK_FEATURE]
    known = model.vectorise(["syarat", "ktp"])
    unknown = model.vectorise(["syarat", "netflix"])
    assert known is not None and unknown is not None
    assert unk not in known[0].tolist()
    assert unk in unknown[0].tolist()


def test_a_danger_word_adds_a_cue_tag_once() -> None:
    text = "gudang terbakar, ada korban"
    toks = classifier_tokens(text, default_extractor().extract(text), default_lexicon())
    assert toks == ["gudang", "terbakar", "ada", "korban", "<cue:danger>"]
