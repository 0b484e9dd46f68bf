"""Phrase extraction by an LLM that answers JSON `{"phrases": [{"text", "start", "end"}]}`.

Offsets are checked against the caption (and repaired by search when the text is there); a reply that
is not valid JSON gets one repair request, then becomes the item's error.
"""

from __future__ import annotations

from annotator.models.json_reply import MalformedReply, parse_json
from annotator.models.protocols import Extraction
from annotator.models.vlm_openai import Messages, OpenAIChatClient
from annotator.phrases.spans import keep_non_overlapping
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


REPAIR = "Answer with the JSON object only."
EXTRA = {"response_format": {"type": "json_schema", "json_schema": {"name": "phrases", "schema": SCHEMA}}}


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
    """Phrases for a batch of captions at once: all first requests in flight together, then all repairs."""

    def __init__(self, client: OpenAIChatClient, template: str, max_phrases: int | None = None) -> None:
        if "{caption}" not in template:
            raise ValueError("the phrase prompt template must contain {caption}")
        self.client = client
        self.template = template
        self.max_phrases = max_phrases

    def extract_many(self, captions: list[str]) -> list[Extraction]:
        out = [Extraction() for _ in captions]
        asked = [[{"role": "user", "content": self.template.replace("{caption}", c)}] for c in captions]
        repairs: dict[int, Messages] = {}
        for i, reply in enumerate(self._send(asked, out)):
            if reply is not None:
                try:
                    self._keep(out[i], captions[i], reply)
                except MalformedReply as exc:
                    repairs[i] = [*asked[i], {"role": "assistant", "content": reply},
                                  {"role": "user", "content": f"That was not valid JSON ({exc}). {REPAIR}"}]
        retried = self._send(list(repairs.values()), [out[i] for i in repairs])
        for i, reply in zip(repairs, retried, strict=True):
            if reply is not None:
                try:
                    self._keep(out[i], captions[i], reply)
                except MalformedReply as exc:
                    out[i].error = exc
        return out

    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        (result,) = self.extract_many([caption])
        if result.error is not None:
            raise result.error
        return result.phrases, result.dropped

    def _send(self, conversations: list[Messages], into: list[Extraction]) -> list[str | None]:
        """Reply texts; a request that failed (endpoint down, budget) sets that extraction's error instead."""
        replies = self.client.run([lambda m=m: m for m in conversations], EXTRA) if conversations else []
        texts: list[str | None] = []
        for extraction, reply in zip(into, replies, strict=True):
            extraction.counters.update(reply.counters)
            if reply.error is not None:
                extraction.error = reply.error
            texts.append(None if reply.error is not None else reply.text or "")
        return texts

    def _keep(self, extraction: Extraction, caption: str, reply: str) -> None:
        extraction.phrases, extraction.dropped = keep_non_overlapping(caption, parse_reply(reply), self.max_phrases)
