"""Production-size architectures: the configs we write count what the published checkpoints count."""

from __future__ import annotations

import pytest

from annotator import paths
from annotator.models import rehearsal


@pytest.mark.parametrize("folder", ["grounding-dino-base", "sam2.1-hiera-large", "grounding-dino-tiny",
                                    "sam2.1-hiera-tiny", "sam3"])
def test_parameter_count_matches_the_published_one_within_one_percent(folder: str) -> None:
    spec = rehearsal.CHECKPOINTS[folder]
    total, counted = rehearsal.count_parameters(spec)  # on the meta device: nothing allocated
    assert abs(counted - spec.published) / spec.published < 0.01, (spec.name, counted, spec.published)
    assert counted == total or folder == "sam3", "only SAM 3's published figure leaves a part out"


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


def test_a_window_that_cannot_fit_its_gpu_share_is_refused_at_config_time() -> None:
    from annotator.config import ConfigError, load_config
    from annotator.models import memory

    pipeline = paths.PIPELINES_DIR / "raw_videos.yaml"
    cost = memory.COSTS["sam2.1-hiera-large"]
    share = 0.5  # raw_videos.yaml gives track half a GPU
    fits = cost.largest_window(16 * memory.GIB * share, objects=1)
    assert fits > 0
    load_config(pipeline, ["stages.track.params.gpu_memory_gb=16", f"stages.track.params.window={fits}"])
    with pytest.raises(ConfigError) as refused:
        load_config(pipeline, ["stages.track.params.gpu_memory_gb=16", f"stages.track.params.window={fits + 1}"])
    message = str(refused.value)
    assert "\n" not in message and "stages.track" in message and f"use window <= {fits}" in message
    assert "0.5 of a 16 GB GPU" in message
    bf16 = cost.largest_window(16 * memory.GIB * share, objects=1, dtype_bytes=2)
    assert bf16 > 2 * fits  # half the bytes per frame, and half the weights
    load_config(pipeline, ["stages.track.params.gpu_memory_gb=16", f"stages.track.params.window={fits + 1}",
                           "stages.track.params.dtype=bfloat16"])
    load_config(pipeline, [f"stages.track.params.window={fits + 1}"])  # GPU memory unknown: not checked
