"""Production-size architectures: the configs we write count what the published checkpoints count."""

from __future__ import annotations

import pytest

from annotator.models import rehearsal


@pytest.mark.parametrize("folder", ["grounding-dino-base", "sam2.1-hiera-large", "grounding-dino-tiny",
                                    "sam2.1-hiera-tiny"])
def test_parameter_count_matches_the_published_one_within_one_percent(folder: str) -> None:
    spec = rehearsal.CHECKPOINTS[folder]
    count = rehearsal.count_parameters(spec)  # on the meta device: nothing allocated
    assert abs(count - spec.published) / spec.published < 0.01, (spec.name, count, spec.published)


def test_production_architectures_are_the_published_shapes() -> None:
    dino = rehearsal.CHECKPOINTS["grounding-dino-base"].config()
    assert (dino.backbone_config.embed_dim, list(dino.backbone_config.depths), dino.backbone_config.window_size) \
        == (128, [2, 2, 18, 2], 12)
    assert dino.text_config.vocab_size == 30522 and dino.text_config.hidden_size == 768  # BERT-base
    sam2 = rehearsal.CHECKPOINTS["sam2.1-hiera-large"].config()
    assert sam2.vision_config.backbone_config.blocks_per_stage == [2, 6, 36, 4] and sam2.image_size == 1024
    sam3 = rehearsal.CHECKPOINTS["sam3"].config()
    assert sam3.detector_config.vision_config.backbone_config.image_size == 1008
    assert sam3.detector_config.text_config.vocab_size == 49408


def test_local_tokenizers_keep_the_ids_the_models_rely_on() -> None:
    bert = rehearsal._bert_tokenizer()
    ids = bert("a man . a cup ?")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and 1012 in ids and 1029 in ids  # Grounding DINO's special ids
    assert len(bert) == 30522
    clip = rehearsal._clip_tokenizer()
    assert len(clip) == 49408 and clip("a red cup")["input_ids"][-1] == 49407
    assert clip.convert_ids_to_tokens(clip("a red cup")["input_ids"][1:-1]) == ["a</w>", "red</w>", "cup</w>"]
