"""JSON answers from chat models, which often wrap them in markdown code fences."""

from __future__ import annotations

import json
from typing import Any


class MalformedReply(ValueError):
    """The model's answer is not the JSON the prompt asked for."""


def parse_json(reply: str) -> Any:
    if not reply.strip():
        raise MalformedReply("the reply is empty")
    text = reply.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MalformedReply(f"reply is not valid JSON ({exc}): {reply[:120]!r}") from None
