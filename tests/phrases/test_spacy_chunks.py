"""spaCy noun chunks as the phrase source, or as a check on another backend.

spaCy's own parser cannot be trained here (its update fails with E1031 even on spaCy's documented parser
example), and no pretrained pipeline can be downloaded, so the saved pipeline under test parses with a small
rule grammar component: `spacy.load(path)` and `noun_chunks` run exactly as they would with `en_core_web_sm`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc

from annotator.records import VideoItem
from annotator.stages.phrases import PhrasesStage

LEXICON = {"a": "DET", "an": "DET", "the": "DET", "red": "ADJ", "white": "ADJ", "big": "ADJ", "holds": "VERB",
           "sits": "VERB", "smiles": "VERB", "near": "ADP", "on": "ADP", "it": "PRON", "and": "CCONJ",
           ",": "PUNCT", ".": "PUNCT"}


@Language.component("rule_grammar")
def rule_grammar(doc: Doc) -> Doc:
    """POS from a lexicon (else NOUN); determiners and adjectives head to the next noun, nouns to the verb."""
    pos = [LEXICON.get(t.lower_, "NOUN") for t in doc]
    root = next((i for i, p in enumerate(pos) if p == "VERB"), 0)
    heads, deps = [], []
    for i, p in enumerate(pos):
        if i == root:
            heads.append(i)
            deps.append("ROOT")
        elif p in ("DET", "ADJ"):
            noun = next((j for j in range(i + 1, len(pos)) if pos[j] == "NOUN"), root)
            heads.append(noun)
            deps.append("det" if p == "DET" else "amod")
        elif p in ("NOUN", "PRON"):
            before = [j for j in range(i) if pos[j] not in ("DET", "ADJ")]
            if i < root:
                heads.append(root)
                deps.append("nsubj")
            elif before and pos[before[-1]] == "ADP":
                heads.append(before[-1])
                deps.append("pobj")
            else:
                heads.append(root)
                deps.append("dobj")
        else:
            heads.append(root)
            deps.append({"ADP": "prep", "PUNCT": "punct", "CCONJ": "cc"}.get(p, "dep"))
    return Doc(doc.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc], pos=pos,
               heads=heads, deps=deps)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("rule_grammar")
    nlp.meta["version"] = "0.0.7"
    out = tmp_path_factory.mktemp("spacy") / "en_rules"
    nlp.to_disk(out)
    return out


def run(stage: PhrasesStage, caption: str) -> VideoItem:
    stage.setup()
    (item,) = stage.process([VideoItem("v", "/v.mp4", caption=caption)])
    assert item.error is None
    return item


def test_noun_chunks_replace_the_backend(pipeline_dir: Path) -> None:
    caption = "A man holds a red cup near the big tree, and it smiles."
    item = run(PhrasesStage(spacy_model=str(pipeline_dir)), caption)
    assert [(p.text, p.start, p.end, p.norm) for p in item.phrases] == [
        ("A man", 0, 5, "man"), ("a red cup", 12, 21, "red cup"), ("the big tree", 27, 39, "big tree")]
    assert all(caption[p.start : p.end] == p.text for p in item.phrases)
    assert [(d.text, d.reason) for d in item.dropped_phrases] == [("it", "a pronoun")]
    assert PhrasesStage(spacy_model=str(pipeline_dir)).cache_inputs() == {"spacy_model_version": "0.0.7"}


def test_cross_check_drops_phrases_that_are_not_noun_chunks(pipeline_dir: Path) -> None:
    caption = "A man holds a red cup near the big tree."
    stage = PhrasesStage(categories=["man", "cup", "holds", "tree"], spacy_model=str(pipeline_dir),
                         spacy_use="cross-check", max_phrases=2)
    item = run(stage, caption)
    assert [p.text for p in item.phrases] == ["A man", "cup"]  # the vocabulary's spans, vetted by spaCy
    assert [(d.text, d.reason) for d in item.dropped_phrases] == [
        ("holds", "not a noun phrase (spaCy cross-check)"), ("tree", "beyond max_phrases=2")]


def test_a_missing_spacy_model_is_a_config_error_with_the_fix() -> None:
    with pytest.raises(ValueError, match="python -m spacy download en_core_web_zz"):
        PhrasesStage(spacy_model="en_core_web_zz")
