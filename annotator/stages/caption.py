"""Caption: a VLM describes the sampled frames; served (OpenAI-compatible) or in-process.

`reply: caption` takes the model's text as the caption (a dense-caption template). `reply: qa` asks a
free-form QA template for `{"question", "answer"}` JSON: the answer becomes the text that is grounded and
the model's question replaces the GCG question at assembly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from annotator import frames, prompts
from annotator.models.json_reply import MalformedReply, parse_json
from annotator.models.protocols import Captioner, CaptionRequest
from annotator.models.vlm_openai import OpenAIChatClient, chat_messages, jpeg_messages
from annotator.records import VideoItem
from annotator.stage import Count, EngineSpec, NonNegative, Resources, Seconds, Served, Stage, error_from, register


def even_positions(count: int, wanted: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(wanted, count)).round().astype(int).tolist()))


QA_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}


def parse_qa(reply: str) -> tuple[str, str]:
    """(question, answer) from a free-form QA reply; both must be non-empty strings."""
    data = parse_json(reply)
    question, answer = (data.get(k) if isinstance(data, dict) else None for k in ("question", "answer"))
    if not (isinstance(question, str) and question.strip() and isinstance(answer, str) and answer.strip()):
        raise MalformedReply(f'expected {{"question": "...", "answer": "..."}}, got {reply[:120]!r}')
    return question.strip(), answer.strip()


@register
@dataclass
class CaptionStage(prompts.PromptedStage, Stage):
    name = "caption"
    resources = Resources(cpus=1.0)
    batch_size = 32  # served backend: a worker keeps max_concurrency requests in flight within one batch
    outputs = ("caption", "caption_model", "question")
    runtime_params = ("endpoint", "api_key_env", "timeout_s", "max_retries", "backoff_s", "max_retry_after_s",
                      "max_concurrency", "max_requests")

    backend: Literal["local", "openai", "vllm-engine"] = "local"
    model: str = "tiny:qwen2_vl"
    endpoint: str | list[str] | None = None  # `vllm serve` URL(s), e.g. http://127.0.0.1:8000/v1; a list: replicas
    api_key_env: str = "OPENAI_API_KEY"
    prompt: str = "prompts/caption.v1.md"  # a versioned template (prompts/qa.v1.md for free-form QA)
    reply: Literal["caption", "qa"] = "caption"
    num_frames: Count = 8  # evenly chosen among the sampled frames
    max_new_tokens: Count = 256
    generate_kwargs: dict[str, Any] = field(default_factory=dict)  # local backend only
    max_concurrency: Count = 8
    timeout_s: Seconds = 60.0
    max_retries: NonNegative = 4
    backoff_s: Annotated[float, Field(ge=0.0)] = 1.0  # first retry delay; doubles each retry
    max_retry_after_s: Seconds = 300.0  # a 429/503 asking to wait longer ends the request as an error
    max_requests: Count | None = None  # request budget per worker (retries included); None: unlimited
    image_max_side: Annotated[int, Field(ge=16)] | None = 448  # larger frames are resized; null: sent as stored
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # vllm-engine: vLLM engine args (max_model_len...)

    def __post_init__(self) -> None:
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("backend 'openai' needs an endpoint, e.g. http://127.0.0.1:8000/v1")
        prompts.check(self.prompt)

    def _response_format(self) -> dict[str, Any] | None:
        if self.reply != "qa":
            return None
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "qa", "schema": QA_SCHEMA}}}

    def served(self) -> Served | None:
        return Served.at(self.endpoint, self.model, self.api_key_env) if self.backend == "openai" else None

    def engine_spec(self) -> EngineSpec | None:
        if self.backend != "vllm-engine":
            return None
        sampling: dict[str, Any] = {"max_tokens": self.max_new_tokens, "temperature": 0.0}
        if self.reply == "qa":
            sampling["structured_outputs"] = {"json": QA_SCHEMA}
        return EngineSpec(engine="vllm", model=self.model, engine_kwargs=dict(self.engine_kwargs),
                          sampling_params=sampling)

    def engine_messages(self, item: VideoItem) -> list[dict[str, Any]]:
        return self._messages(item)

    def _messages(self, item: VideoItem) -> list[dict[str, Any]]:
        """The chat request: the frame store's JPEG bytes as they are when they fit `image_max_side`, else the
        frames decoded, resized and encoded."""
        info = item.info
        assert info is not None, "ingest has not run"
        picks = even_positions(len(info.frame_indices), self.num_frames)
        fits = self.image_max_side is None or max(info.width, info.height) <= self.image_max_side
        if fits and frames.stored(item, self.run_root):
            assert self.run_root is not None
            try:
                return jpeg_messages(frames.read_jpegs(self.run_root, item.video_id,
                                                       [info.frame_indices[p] for p in picks]), self.prompt_text)
            except FileNotFoundError:
                pass  # frame store dropped: decode the source
        return chat_messages(CaptionRequest(self.frames(item, picks), self.prompt_text), self.image_max_side)

    def engine_finish(self, item: VideoItem, reply: str | Exception) -> None:
        self._finish(item, reply)

    def setup(self) -> None:
        if self.backend == "vllm-engine":
            raise ValueError("caption backend 'vllm-engine' runs in the Ray executor's vLLM engine: use --executor ray")
        self._captioner: Captioner
        if self.backend == "openai":
            self._captioner = OpenAIChatClient(
                endpoint=Served.at(self.endpoint, self.model).endpoints, model=self.model, api_key_env=self.api_key_env,
                max_tokens=self.max_new_tokens, timeout_s=self.timeout_s, max_retries=self.max_retries,
                backoff_s=self.backoff_s, max_concurrency=self.max_concurrency, image_max_side=self.image_max_side,
                max_requests=self.max_requests, max_retry_after_s=self.max_retry_after_s,
            )
        else:
            from annotator.models.vlm_local import LocalVLM

            self._captioner = LocalVLM(self.model, self.max_new_tokens, self.generate_kwargs)

    def teardown(self) -> None:
        self._captioner = None  # type: ignore[assignment]

    def _frames(self, item: VideoItem) -> np.ndarray:
        assert item.info is not None, "ingest has not run"
        return self.frames(item, even_positions(len(item.info.frame_indices), self.num_frames))

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        if isinstance(self._captioner, OpenAIChatClient):
            # decoding and JPEG encoding run in the client's threads while earlier requests are in flight
            jobs = [lambda it=it: self._messages(it) for it in batch]
            replies = self._captioner.run(jobs, self._response_format())
            for item, reply in zip(batch, replies, strict=True):
                item.count(self.name, reply.counters)
                self._finish(item, reply.error if reply.error is not None else reply.text or "")
            return batch
        for item in batch:
            try:
                request = CaptionRequest(self._frames(item), self.prompt_text)
            except Exception as exc:  # noqa: BLE001
                item.error = error_from(self.name, exc)
                continue
            (result,) = self._captioner.caption([request])
            self._finish(item, result)
        return batch

    def _finish(self, item: VideoItem, result: str | Exception) -> None:
        if isinstance(result, Exception):
            item.error = error_from(self.name, result)
        elif not result.strip():
            item.error = error_from(self.name, ValueError("the model returned an empty caption"))
        elif self.reply == "caption":
            item.caption = result.strip()
            item.caption_model = self.model
        else:
            try:
                item.question, item.caption = parse_qa(result)
                item.caption_model = self.model
            except MalformedReply as exc:
                item.error = error_from(self.name, exc)
