"""A real pipeline export to train on: the demo pipeline (tiny models) over four short clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from annotator.train.config import TrainConfig
from tests.helpers import demo_pipeline


@pytest.fixture(scope="session")
def dataset_run(clips: dict[str, Path], tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-data")
    (root / "in").mkdir()
    for name, source in (("v1", "a"), ("v2", "b"), ("v3", "a"), ("v4", "b")):
        shutil.copy(clips[source], root / "in" / f"{name}.mp4")
    summary = demo_pipeline().run([root / "in"], root / "run", executor="local", show_progress=False)
    assert summary.qa == 4 and summary.objects >= 8
    return root / "run"


def tiny_config(run_dir: Path, output: Path, **train: object) -> TrainConfig:
    """configs/train/tiny.yaml's model on the test dataset, tuned to overfit four samples on CPU."""
    return TrainConfig.model_validate({
        "model": {"vlm": "tiny:qwen2_vl", "sam": "tiny:sam2_video", "lora_r": 16, "lora_alpha": 64},
        "data": {"run_dir": str(run_dir), "num_frames": 4, "max_phrases": 4},
        "train": {"output": str(output), "steps": 500, "batch_size": 2, "lr": 0.001, "save_every": 250,
                  "log_every": 50, **train},
        "ray": {"num_workers": 2},
    })


WORDS = ("a", "an", "the", "man", "woman", "dog", "cat", "cup", "red", "blue", "small", "big", "rabbit", "tree",
         "grass", "bird", "sky", "apple", "person", "ball", "car", "in", "holds")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BERT (one layer, 64 wide) with a word-level vocabulary, saved as `--text-model` loads it.
    Position, segment and special-token embeddings ([UNK] aside) are zero, so a phrase's mean embedding is its
    words': unlike phrases score well below 0.5 and identical ones 1.0, which the recall tests need on both
    sides."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join([*specials, *WORDS]) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(specials) + len(WORDS), hidden_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=37, max_position_embeddings=64,
                                 initializer_range=0.5))
    with torch.no_grad():
        model.embeddings.position_embeddings.weight.zero_()
        model.embeddings.token_type_embeddings.weight.zero_()
        model.embeddings.word_embeddings.weight[[0, 2, 3, 4]] = 0.0  # [UNK] keeps one: unknown words still match
    model.save_pretrained(folder)
    return folder
