"""Noun phrases of a caption, each an exact span of it: vocabulary matching, an LLM, spaCy noun chunks."""
