"""Errors of the nlu package.

Hierarchy::

    NluError                 anything the nlu package raises on purpose
    ├── NluUnavailable       the parser cannot answer now (Rasa server down, timeout, 5xx, bad JSON);
    │                        the dispatcher should tell the resident to try again, or use a fallback
    ├── TrainingDataError    the Rasa YAML training data is malformed or names unknown values;
    │                        fix the file named in the message
    └── ModelError           the trained artifact is missing, unreadable or does not match the code;
                             run ``pontibot nlu train`` (the embedded parser retrains by itself)

Parsing never raises on odd text: empty, emoji-only or very long messages give a valid ParseResult.
"""

from __future__ import annotations


class NluError(Exception):
    """Base class of every error the nlu package raises on purpose."""


class NluUnavailable(NluError):
    """The NLU backend (e.g. a Rasa server) could not answer: connection, timeout, HTTP or JSON error."""


class TrainingDataError(NluError):
    """The training data is malformed; the message names the file and what to fix."""


class ModelError(NluError):
    """The trained model artifact is missing, unreadable or incompatible; retrain it."""
