"""Text → ParseResult (Rasa's parse JSON): normalisation, classifier, entities; imports nothing of ours."""

from nlu.result import Entity, IntentScore, ParseResult

__all__ = ["Entity", "IntentScore", "ParseResult"]
