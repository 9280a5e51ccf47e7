"""NLU fixtures: one trained model per session (the root conftest's ``nlu_model_dir``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.pipeline import DEFAULT_THRESHOLD, EmbeddedParser, build_parser


@pytest.fixture(scope="session")
def parser(nlu_model_dir: Path) -> EmbeddedParser:
    """The embedded parser at the default threshold (trains into the session's model dir once)."""
    built = build_parser("embedded", threshold=DEFAULT_THRESHOLD, model_dir=nlu_model_dir)
    assert isinstance(built, EmbeddedParser)
    return built
