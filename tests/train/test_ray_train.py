"""Ray Train: two CPU workers (gloo) train a few steps and report a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from annotator.train.ray_train import train_on_ray
from tests.train.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_two_gloo_workers_train_and_checkpoint(dataset_run: Path, tmp_path: Path) -> None:
    import os

    import ray

    ray.init(num_cpus=4, include_dashboard=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"ANNOTATOR_CACHE": os.environ["ANNOTATOR_CACHE"]}})
    try:
        config = tiny_config(dataset_run, tmp_path / "out", steps=3, save_every=3, batch_size=1)
        result = train_on_ray(config)
    finally:
        ray.shutdown()
    assert result.error is None
    assert result.metrics["step"] == 3 and result.metrics["loss"] > 0
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / "trainable.pt", weights_only=True)
        assert any("lora" in k for k in state) and any(k.startswith("project.") for k in state)
    assert str(tmp_path / "out") in result.path
