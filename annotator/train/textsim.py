"""Phrase similarity as the published GCG recall measures it: the cosine of two texts' mean last hidden state.

The references embed a text with `bert-base-uncased` (at most 512 tokens), average the last hidden state over
every token, special tokens included, and compare two embeddings by cosine. Any checkpoint that loads with
`AutoModel.from_pretrained` works here (`--text-model`), so tests use a tiny random BERT saved to a folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TextModelError(ValueError):
    """The text model named by `--text-model` cannot be loaded."""


class TextSimilarity:
    def __init__(self, name_or_path: str = "bert-base-uncased") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            self.model = AutoModel.from_pretrained(name_or_path).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TextModelError(f"--text-model {name_or_path}: cannot load it ({first})") from None
        self._torch = torch
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, text: str) -> np.ndarray:
        """Mean of the last hidden state over all tokens (cached: a phrase recurs across pairs)."""
        if text not in self._cache:
            inputs = self.tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
            with self._torch.inference_mode():
                hidden = self.model(**inputs).last_hidden_state[0]
            self._cache[text] = hidden.float().mean(dim=0).numpy().astype(np.float64)
        return self._cache[text]

    def matrix(self, rows: Sequence[str], cols: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every (row, col) pair of texts."""
        out = np.zeros((len(rows), len(cols)))
        for i, a in enumerate(rows):
            x = self.embed(a)
            for j, b in enumerate(cols):
                y = self.embed(b)
                norm = np.linalg.norm(x) * np.linalg.norm(y)
                out[i, j] = float(x @ y / norm) if norm else 0.0
        return out
