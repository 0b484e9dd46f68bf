"""Phrases: the noun phrases of the caption, each an exact span of it, normalised for the detector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from annotator import prompts
from annotator.models.protocols import PhraseExtractor, extract_all
from annotator.records import VideoItem
from annotator.stage import Count, NonNegative, Resources, Seconds, Served, Stage, error_from, register


@register
@dataclass
class PhrasesStage(prompts.PromptedStage, Stage):
    name = "phrases"
    resources = Resources(cpus=0.25)
    batch_size = 32  # llm backend: the batch's requests are in flight together (up to max_concurrency)
    outputs = ("phrases", "dropped_phrases")
    runtime_params = ("endpoint", "api_key_env", "timeout_s", "max_retries", "backoff_s", "max_retry_after_s",
                      "max_concurrency", "max_requests")

    backend: Literal["vocabulary", "llm"] = "vocabulary"
    categories: list[str] | None = None  # vocabulary backend; None: the COCO category names
    max_phrases: Count | None = 8
    model: str | None = None  # llm backend: model name served at `endpoint`
    endpoint: str | list[str] | None = None  # `vllm serve` URL(s), e.g. http://127.0.0.1:8000/v1; a list: replicas
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: Seconds = 60.0
    max_retries: NonNegative = 4
    backoff_s: Annotated[float, Field(ge=0.0)] = 1.0  # first retry delay; doubles each retry
    max_retry_after_s: Seconds = 300.0  # a 429/503 asking to wait longer ends the request as an error
    max_concurrency: Count = 8
    max_requests: Count | None = None  # request budget per worker (retries and repairs included); None: unlimited
    prompt: str = "prompts/phrases.v1.md"  # llm backend: a versioned template with a {caption} slot
    spacy_model: str | None = None  # an installed spaCy pipeline (name or path) whose noun_chunks are used...
    spacy_use: Literal["extract", "cross-check"] = "extract"  # ...instead of the backend, or to vet its phrases

    def __post_init__(self) -> None:
        if self.backend == "llm" and not (self.endpoint and self.model):
            raise ValueError("backend 'llm' needs endpoint and model")
        if self.backend == "llm":
            prompts.check(self.prompt, slot="{caption}")
        if self.spacy_model:
            from annotator.phrases.spacy_chunks import check_installed

            check_installed(self.spacy_model)

    def served(self) -> Served | None:
        return Served.at(self.endpoint, self.model, self.api_key_env) if self.backend == "llm" else None

    def uses_prompt(self) -> bool:
        return self.backend == "llm"

    def cache_inputs(self) -> dict[str, Any]:
        inputs = super().cache_inputs()
        if self.spacy_model and self.spacy_use == "extract":
            inputs.pop("prompt", None)  # spaCy alone picks the phrases: the template shapes nothing kept
        if self.spacy_model:
            from annotator.phrases.spacy_chunks import pipeline_version

            inputs["spacy_model_version"] = pipeline_version(self.spacy_model)
        return inputs

    def setup(self) -> None:
        self._extractor: PhraseExtractor
        if not self.spacy_model:
            self._extractor = self._backend(self.max_phrases)
            return
        from annotator.phrases.spacy_chunks import CrossChecked, SpacyPhraser

        spacy_phraser = SpacyPhraser(self.spacy_model, self.max_phrases)
        if self.spacy_use == "extract":
            self._extractor = spacy_phraser
        else:  # the cap applies to the phrases that survive the check
            self._extractor = CrossChecked(self._backend(None), spacy_phraser, self.max_phrases)

    def _backend(self, max_phrases: int | None) -> PhraseExtractor:
        if self.backend == "llm":
            from annotator.models.vlm_openai import OpenAIChatClient
            from annotator.phrases.llm import LLMPhraser

            served = Served.at(self.endpoint, self.model)
            client = OpenAIChatClient(served.endpoints, served.model, api_key_env=self.api_key_env,
                                      max_tokens=1024, timeout_s=self.timeout_s, max_retries=self.max_retries,
                                      backoff_s=self.backoff_s, max_retry_after_s=self.max_retry_after_s,
                                      max_concurrency=self.max_concurrency, max_requests=self.max_requests)
            return LLMPhraser(client, self.prompt_text, max_phrases)
        from annotator.phrases.vocabulary import VocabularyPhraser

        return VocabularyPhraser(self.categories, max_phrases)

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        for item in batch:
            if item.caption is None:
                item.error = error_from(self.name, ValueError("caption has not run"))
        todo = [it for it in batch if it.error is None]
        for item, result in zip(todo, extract_all(self._extractor, [it.caption or "" for it in todo]), strict=True):
            item.count(self.name, result.counters)
            if result.error is not None:
                item.error = error_from(self.name, result.error)
            else:
                item.phrases, item.dropped_phrases = result.phrases, result.dropped
        return batch
