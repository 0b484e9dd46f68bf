"""The metric pieces on hand-made numbers: greedy matching, phrase match, AP50 with a false positive."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.train.protocols import ap50, greedy, phrase_match


def test_greedy_takes_the_best_pairs_first() -> None:
    assert greedy(np.array([[0.9, 0.8], [0.85, 0.1]])) == [(0, 0), (1, 1)]
    assert greedy(np.array([[0.0, 0.0]])) == []


def test_phrase_match_ignores_articles_and_needs_half_the_words() -> None:
    assert phrase_match("a man in red", "the man in red")
    assert phrase_match("a red cup", "cup")
    assert not phrase_match("a dog", "a cat")


def test_ap50_ranks_by_score() -> None:
    assert ap50([(0.9, True), (0.8, True)], 2) == 1.0
    assert ap50([(0.9, False), (0.8, True)], 1) == pytest.approx(0.5)
    assert ap50([(0.9, True), (0.8, False)], 2) == pytest.approx(51 / 101)  # half the recall range at precision 1
