"""Word and character n-gram features of normalised tokens, as plain strings (fast, no sklearn per call).

The same function builds features at training and at parse time, so both always agree.
Word features start with ``w:`` (unigrams) or ``b:`` (bigrams); character n-grams (3–5 characters
of each word padded with spaces, like sklearn's ``char_wb``) start with ``c:``. Tag tokens such as
``<document_type>`` or ``<only:document_type>`` (an entity found in the message, see
``nlu.pipeline.classifier_tokens``) are unigram features only: no bigrams, no character n-grams.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

FEATURE_VERSION = "features-v3"
CHAR_NGRAMS = (3, 4, 5)
MAX_TOKENS = 200


@lru_cache(maxsize=65536)
def char_ngrams(token: str) -> tuple[str, ...]:
    """Character n-grams of one token padded with spaces (cached: residents reuse words)."""
    padded = f" {token} "
    grams: list[str] = []
    size = len(padded)
    for n in CHAR_NGRAMS:
        if size < n:
            break
        grams.extend("c:" + padded[i : i + n] for i in range(size - n + 1))
    return tuple(grams)


def is_tag(token: str) -> bool:
    """True for tag tokens (``<entity_type>``), which the tokeniser can never produce from text."""
    return token.startswith("<")


def word_features(toks: list[str]) -> list[str]:
    """Unigram and bigram features of the tokens (tags: unigrams only)."""
    words = [tok for tok in toks if not is_tag(tok)][:MAX_TOKENS]
    feats = ["w:" + tok for tok in words]
    feats.extend(f"b:{a} {b}" for a, b in itertools.pairwise(words))
    feats.extend("w:" + tok for tok in toks if is_tag(tok))
    return feats


def char_features(toks: list[str]) -> list[str]:
    """Character n-gram features of the tokens."""
    feats: list[str] = []
    for tok in toks[:MAX_TOKENS]:
        if not is_tag(tok):
            feats.extend(char_ngrams(tok))
    return feats
