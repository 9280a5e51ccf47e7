"""Button payloads in Rasa style: ``/intent_name`` or ``/intent_name{"entity": "value"}``."""

from __future__ import annotations

import json
import re

from nlu.result import Entity, IntentScore, ParseResult

_PAYLOAD = re.compile(r"^\s*/(?P<intent>[A-Za-z_][\w-]*)(?P<entities>\{.*\})?\s*$", re.DOTALL)


def parse_payload(text: str) -> ParseResult | None:
    """The ParseResult a button payload stands for (confidence 1.0), or None if ``text`` is not one."""
    if not text or "/" not in text[:8]:
        return None
    match = _PAYLOAD.match(text)
    if match is None:
        return None
    entities: list[Entity] = []
    raw = match.group("entities")
    if raw:
        try:
            spec = json.loads(raw)
        except json.JSONDecodeError:
            return None
        if not isinstance(spec, dict):
            return None
        for name, value in spec.items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                if item is None:
                    continue
                text_value = item if isinstance(item, str) else json.dumps(item)
                entities.append(Entity(str(name), text_value, 0, len(text), 1.0, "payload"))
    intent = IntentScore(match.group("intent"), 1.0)
    return ParseResult(text=text, intent=intent, entities=tuple(entities), intent_ranking=(intent,))
