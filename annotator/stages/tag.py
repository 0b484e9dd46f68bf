"""Tag: an LLM writes the dense caption of a source video whose objects are known, tagging each mention with the
object's id (`[a brown rabbit](3)`); the tags become the item's grounded phrases.

The objects (id and category or expression) go into a versioned prompt (`prompts/tag_ids.v1.md`, `{objects}`
slot). The reply is checked (`sources.tagging`): an unknown id, an empty tag or nested brackets gets one repair
request naming the problem, then becomes the item's error. An object the caption never tags is dropped with that
reason (its masks stay out of the QA, nothing is invented); a second tag of the same object stays plain words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from annotator import prompts
from annotator.models.vlm_openai import Reply
from annotator.records import DroppedObject, VideoItem
from annotator.sources.tagging import Tagged, TaggingError, parse_tagged
from annotator.stage import Count, NonNegative, Resources, Seconds, Served, Stage, error_from, register


@register
@dataclass
class TagStage(prompts.PromptedStage, Stage):
    name = "tag"
    resources = Resources(cpus=0.25)
    batch_size = 16
    outputs = ("caption", "caption_model", "phrases", "objects", "dropped_objects")
    runtime_params = ("endpoint", "api_key_env", "timeout_s", "max_retries", "backoff_s", "max_concurrency")

    backend: Literal["openai", "local"] = "openai"  # a served endpoint, or an in-process VLM shown the frames
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    endpoint: str | list[str] = "http://127.0.0.1:8000/v1"  # a list: replicas of the model
    num_frames: Count = 4  # local backend: frames shown with the request
    api_key_env: str = "OPENAI_API_KEY"
    prompt: str = "prompts/tag_ids.v1.md"
    max_new_tokens: Count = 512
    timeout_s: Seconds = 60.0
    max_retries: NonNegative = 4
    backoff_s: Annotated[float, Field(ge=0.0)] = 1.0
    max_concurrency: Count = 8

    def __post_init__(self) -> None:
        prompts.check(self.prompt, slot="{objects}")

    def served(self) -> Served | None:
        return Served.at(self.endpoint, self.model, self.api_key_env) if self.backend == "openai" else None

    def setup(self) -> None:
        if self.backend == "local":
            from annotator.models.vlm_local import LocalVLM

            self._local = LocalVLM(self.model, self.max_new_tokens)
            return
        from annotator.models.vlm_openai import OpenAIChatClient

        self._client = OpenAIChatClient(self.endpoint, self.model, api_key_env=self.api_key_env,
                                        max_tokens=self.max_new_tokens, timeout_s=self.timeout_s,
                                        max_retries=self.max_retries, backoff_s=self.backoff_s,
                                        max_concurrency=self.max_concurrency)

    def ask(self, item: VideoItem) -> list[dict[str, Any]]:
        listing = "\n".join(f"{o.object_id}: {item.phrases[o.phrase].text}" for o in item.objects)
        if item.caption:  # a source's own description (HC-STVG, VidSTG): context for the new caption
            listing += f"\n\nThe dataset describes the video as: {item.caption}"
        return [{"role": "user", "content": self.prompt_text.replace("{objects}", listing)}]

    def _send(self, items: list[VideoItem], conversations: list[list[dict[str, Any]]]) -> list[Reply]:
        """Replies from the served endpoint (all in flight together), or from the in-process VLM, which sees
        `num_frames` of each video and the conversation's text."""
        if self.backend != "local":
            return self._client.run([lambda m=m: m for m in conversations])
        from annotator.models.protocols import CaptionRequest
        from annotator.stages.caption import even_positions

        replies = []
        for item, conversation in zip(items, conversations, strict=True):
            assert item.info is not None
            picks = even_positions(len(item.info.frame_indices), self.num_frames)
            text = "\n\n".join(str(m["content"]) for m in conversation)
            (answer,) = self._local.caption([CaptionRequest(self.frames(item, picks), text)])
            replies.append(Reply(error=answer) if isinstance(answer, Exception) else Reply(text=answer))
        return replies

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        todo = [it for it in batch if it.objects]
        asked = [self.ask(it) for it in todo]
        replies = self._send(todo, asked)
        repairs: dict[int, list[dict[str, Any]]] = {}
        for i, (item, reply) in enumerate(zip(todo, replies, strict=True)):
            item.count(self.name, reply.counters)
            if reply.error is not None:
                item.error = error_from(self.name, reply.error)
                continue
            try:
                self._apply(item, parse_tagged(reply.text or "", {o.object_id for o in item.objects}))
            except TaggingError as exc:
                repairs[i] = [*asked[i], {"role": "assistant", "content": reply.text or ""},
                              {"role": "user", "content": f"That does not work: {exc}. Write the paragraph again."}]
        again = self._send([todo[i] for i in repairs], list(repairs.values())) if repairs else []
        for i, reply in zip(repairs, again, strict=True):
            item = todo[i]
            item.count(self.name, reply.counters)
            try:
                if reply.error is not None:
                    raise reply.error
                self._apply(item, parse_tagged(reply.text or "", {o.object_id for o in item.objects}))
            except Exception as exc:  # noqa: BLE001 - after one repair, the item's error
                item.error = error_from(self.name, exc)
        return batch

    def _apply(self, item: VideoItem, tagged: Tagged) -> None:
        first: dict[int, int] = {}
        phrases = []
        for phrase, object_id in zip(tagged.phrases, tagged.ids, strict=True):
            if object_id not in first:
                first[object_id] = len(phrases)
                phrases.append(phrase)
        kept = []
        for obj in item.objects:
            if obj.object_id in first:
                obj.phrase = first[obj.object_id]
                kept.append(obj)
            else:
                item.dropped_objects.append(DroppedObject(obj.object_id, item.phrases[obj.phrase].text,
                                                          "the caption does not mention it"))
        item.caption, item.caption_model, item.phrases, item.objects = tagged.caption, self.model, phrases, kept
