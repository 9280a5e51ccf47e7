"""Command fixtures: the NLU suite's session parser (``pontibot nlu parse`` reads the same model)."""

from tests.nlu.conftest import parser  # noqa: F401  (fixture)
