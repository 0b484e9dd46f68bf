"""Noun phrases from spaCy's `noun_chunks`, with any installed pipeline that parses (e.g. `en_core_web_sm`).

Used instead of the configured backend, or to cross-check it: an LLM's phrase that covers no noun chunk is
usually a verb or an adjective it mislabelled. Chunks headed by a pronoun ("it", "they") are dropped: there
is nothing to detect in them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

from annotator import paths
from annotator.models.protocols import Extraction, PhraseExtractor, extract_all
from annotator.phrases.spans import cap, keep_non_overlapping
from annotator.records import DroppedPhrase, Phrase


def check_installed(model: str) -> None:
    """Refuse at config time, with the fix, when spaCy or the named pipeline is missing."""
    if importlib.util.find_spec("spacy") is None:
        raise ValueError("spacy_model needs spaCy: pip install spacy (the annotator[spacy] extra)")
    if not (paths.looks_local(model) or importlib.util.find_spec(model.replace("-", "_"))):
        raise ValueError(f"spaCy model {model!r} is not installed: python -m spacy download {model}, "
                         "or give the path of a saved pipeline")


def pipeline_version(model: str) -> str:
    """The pipeline's own version (package metadata, or `meta.json` of a saved one), for the cache key."""
    if paths.looks_local(model):
        meta = Path(paths.resolve(model)) / "meta.json"
        return str(json.loads(meta.read_text()).get("version", "unknown")) if meta.exists() else "unknown"
    try:
        return importlib.metadata.version(model)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class SpacyPhraser:
    def __init__(self, model: str, max_phrases: int | None = None) -> None:
        import spacy

        check_installed(model)
        self.nlp = spacy.load(Path(paths.resolve(model)) if paths.looks_local(model) else model)
        if not self.nlp("a probe").has_annotation("DEP"):
            raise ValueError(f"spaCy model {model!r} has no dependency parser: noun_chunks needs one")
        self.max_phrases = max_phrases

    def chunks(self, caption: str) -> tuple[list[tuple[str, int, int]], list[DroppedPhrase]]:
        """Noun chunks as (text, start, end) character spans, and the pronoun chunks left out."""
        spans, pronouns = [], []
        for chunk in self.nlp(caption).noun_chunks:
            if chunk.root.pos_ == "PRON":
                pronouns.append(DroppedPhrase(chunk.text, "a pronoun"))
            else:
                spans.append((chunk.text, chunk.start_char, chunk.end_char))
        return spans, pronouns

    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        spans, pronouns = self.chunks(caption)
        kept, dropped = keep_non_overlapping(caption, list(spans), self.max_phrases)
        return kept, pronouns + dropped


class CrossChecked:
    """The primary extractor's phrases, less those that overlap no spaCy noun chunk (dropped with the reason)."""

    def __init__(self, primary: PhraseExtractor, checker: SpacyPhraser, max_phrases: int | None = None) -> None:
        self.primary = primary
        self.checker = checker
        self.max_phrases = max_phrases

    def extract_many(self, captions: list[str]) -> list[Extraction]:
        results = extract_all(self.primary, captions)
        for caption, result in zip(captions, results, strict=True):
            if result.error is None:
                result.phrases, result.dropped = self._vet(caption, result.phrases, result.dropped)
        return results

    def extract(self, caption: str) -> tuple[list[Phrase], list[DroppedPhrase]]:
        return self._vet(caption, *self.primary.extract(caption))

    def _vet(self, caption: str, kept: list[Phrase],
             dropped: list[DroppedPhrase]) -> tuple[list[Phrase], list[DroppedPhrase]]:
        chunks, _ = self.checker.chunks(caption)
        confirmed = []
        for phrase in kept:
            if any(phrase.start < end and start < phrase.end for _, start, end in chunks):
                confirmed.append(phrase)
            else:
                dropped.append(DroppedPhrase(phrase.text, "not a noun phrase (spaCy cross-check)"))
        return cap(confirmed, dropped, self.max_phrases)
