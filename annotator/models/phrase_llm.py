"""Phrase extraction by an LLM that answers JSON `{"phrases": [{"text", "start", "end"}]}`.

Offsets are checked against the caption (and repaired by search when the text is there); a reply that
is not valid JSON gets one repair request, then becomes the item's error.
"""

from __future__ import annotations

from annotator.models.json_reply import MalformedReply, parse_json
from annotator.models.spans import keep_non_overlapping
from annotator.models.vlm_openai import OpenAIChatClient
from annotator.records import DroppedPhrase, Phrase

SCHEMA = {
    "type": "object",
    "properties": {
        "phrases": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "start": {"type": "integer"}, "end": {"type": "integer"}},
                "required": ["text"],
            },
        }
    },
    "required": ["phrases"],
}


def _offset(value: object) -> int | None:
    """Offsets the model got the type of wrong are treated as missing (the span is then found by search)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_reply(reply: str) -> list[tuple[str, int | None, int | None]]:
    data = parse_json(reply)
    try:
        return [(str(p["text"]), _offset(p.get("start")), _offset(p.get("end"))) for p in data["phrases"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedReply(f"phrase reply is not the expected JSON ({exc!r}): {reply[:120]!r}") from None


class LLMPhraser:
    def __init__(self, client: OpenAIChatClient, template: str, max_phrases: int | None = None) -> None:
        if "{caption}" not in template:
            raise ValueError("the phrase prompt template must contain {caption}")
        self.client = client
        self.template = template
        self.max_phrases = max_phrases

    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        messages = [{"role": "user", "content": self.template.replace("{caption}", caption)}]
        extra = {"response_format": {"type": "json_schema", "json_schema": {"name": "phrases", "schema": SCHEMA}}}
        reply = self.client.complete(messages, extra)
        try:
            candidates = parse_reply(reply)
        except MalformedReply as exc:
            messages += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": f"That was not valid JSON ({exc}). Answer with the JSON object only."},
            ]
            candidates = parse_reply(self.client.complete(messages, extra))
        return keep_non_overlapping(caption, candidates, self.max_phrases)
