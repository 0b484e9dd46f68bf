"""Trainer configuration (`configs/train/*.yaml`): model, data and optimisation, validated with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from annotator.config import ConfigError, apply_overrides
from annotator.train.model import ModelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    vlm: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    sam: str = "facebook/sam2.1-hiera-large"
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_targets: str | list[str] = "all-linear"
    lm_weight: float = Field(default=1.0, ge=0)
    bce_weight: float = Field(default=2.0, ge=0)
    dice_weight: float = Field(default=0.5, ge=0)

    def build(self) -> ModelConfig:
        return ModelConfig(**self.model_dump())


class DataSpec(_Strict):
    run_dir: str  # a finished run: its Parquet export and frame store
    num_frames: int = Field(default=4, ge=1)
    max_phrases: int = Field(default=4, ge=1)
    limit: int | None = Field(default=None, ge=1)  # the first N triplets only
    seed: int = 0
    num_workers: int = Field(default=2, ge=0)  # DataLoader processes building samples ahead (0: in the loop)
    prefetch: int = Field(default=2, ge=1)  # batches each of them keeps ready


class TrainSpec(_Strict):
    output: str
    steps: int = Field(default=100, ge=1)
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    lr: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    save_every: int = Field(default=50, ge=1)
    log_every: int = Field(default=10, ge=1)
    seed: int = 0


class RaySpec(_Strict):
    num_workers: int = Field(default=2, ge=1)
    use_gpu: bool = False
    storage_path: str | None = None  # any filesystem Ray Train writes to (local path, s3://...)


class TrainConfig(_Strict):
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec
    train: TrainSpec
    ray: RaySpec = Field(default_factory=RaySpec)
    predict: dict[str, int] = Field(default_factory=lambda: {"max_new_tokens": 64})


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    data = apply_overrides(data, overrides or [])
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
