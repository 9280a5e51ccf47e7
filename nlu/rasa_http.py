"""A Rasa server as the NLU backend: ``POST {rasa_url}/model/parse`` over httpx."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from nlu.errors import NluUnavailable
from nlu.language import LanguageDetector, neutral_spans
from nlu.payload import parse_payload
from nlu.result import FALLBACK_INTENT, ParseResult, apply_threshold

logger = logging.getLogger(__name__)


class RasaHttpParser:
    """Sends each message to a Rasa server and reads its parse JSON (incl. ``confidence_entity``).

    Rasa reports no language: with a ``language`` detector the message's language is found here.
    """

    def __init__(
        self,
        rasa_url: str,
        *,
        threshold: float,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
        language: LanguageDetector | None = None,
    ) -> None:
        self.url = rasa_url.rstrip("/") + "/model/parse"
        self.threshold = threshold
        self.language = language
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def parse(self, text: str) -> ParseResult:
        """Parse ``text`` on the Rasa server; raises NluUnavailable when it cannot answer."""
        payload = parse_payload(text)
        if payload is not None:
            return payload
        try:
            response = await self._client.post(self.url, json={"text": text})
            response.raise_for_status()
            data: Any = response.json()
        except httpx.HTTPStatusError as exc:
            raise NluUnavailable(
                f"Rasa server at {self.url} answered HTTP {exc.response.status_code}"
            ) from exc
        except httpx.HTTPError as exc:
            raise NluUnavailable(f"Rasa server at {self.url} unreachable: {exc!r}") from exc
        except ValueError as exc:
            raise NluUnavailable(f"Rasa server at {self.url} answered invalid JSON") from exc
        if not isinstance(data, dict):
            raise NluUnavailable(f"Rasa server at {self.url} answered {type(data).__name__}")
        try:
            result = ParseResult.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise NluUnavailable(f"Rasa server at {self.url} answered an unexpected shape") from exc
        language = result.language
        if self.language is not None:
            language = self.language.language(text, neutral_spans(result.entities))
        result = ParseResult(text, result.intent, result.entities, result.intent_ranking, language)
        if result.intent.name == FALLBACK_INTENT:
            return result
        ranking = result.intent_ranking or (result.intent,)
        return apply_threshold(text, ranking, result.entities, self.threshold, language)

    async def aclose(self) -> None:
        """Close the HTTP client if we created it."""
        if self._own_client:
            await self._client.aclose()
