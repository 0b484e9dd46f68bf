"""In-process transformers VLM (Qwen2-VL family and other image-text-to-text models) for laptops and tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from annotator.models import refs
from annotator.models.protocols import CaptionRequest


class LocalVLM:
    def __init__(self, model: str, max_new_tokens: int = 128, generate_kwargs: dict[str, Any] | None = None,
                 device: str = "auto") -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = refs.resolve(model)
        self.device = refs.device(device)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path).to(self.device).eval()
        self.max_new_tokens = max_new_tokens
        self.generate_kwargs = dict(generate_kwargs or {})

    def _one(self, request: CaptionRequest) -> str:
        frames = request.frames
        if len(frames) % 2:  # Qwen-style video patching groups frames in pairs
            frames = np.concatenate([frames, frames[-1:]])
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": request.prompt}]}]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=[prompt], videos=[list(frames)], return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      **self.generate_kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()

    def caption(self, requests: list[CaptionRequest]) -> list[str | Exception]:
        results: list[str | Exception] = []
        for request in requests:
            try:
                results.append(self._one(request))
            except Exception as exc:  # noqa: BLE001 - one bad video must not fail the batch
                results.append(exc)
        return results
