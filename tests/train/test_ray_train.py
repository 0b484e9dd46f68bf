"""Ray Train: two CPU workers (gloo) stream disjoint shares that cover every sample once per epoch (also when
the shares are uneven), report checkpoints, and a resumed run continues the uninterrupted run's loss curve."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from annotator.train.config import TrainConfig
from annotator.train.ray_train import train_on_ray
from annotator.train.stream import StreamingRecords
from tests.train.conftest import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_for_training() -> Iterator[None]:
    import ray

    ray.init(num_cpus=4, include_dashboard=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"ANNOTATOR_CACHE": os.environ["ANNOTATOR_CACHE"]}})
    yield
    ray.shutdown()


def drawn(output: Path) -> dict[int, list[dict[str, str]]]:
    """rank -> its audit rows (step, epoch, weight, loss, samples)."""
    return {rank: list(csv.DictReader((output / "ranks" / f"rank-{rank}.csv").open())) for rank in (0, 1)}


def config(dataset_run: Path, output: Path, steps: int) -> TrainConfig:
    built = tiny_config(dataset_run, output, steps=steps, save_every=2, batch_size=1)
    built.data.limit = 3  # shares of 2 and 1: the second worker joins the last step of each epoch at weight 0
    return built


@pytest.fixture(scope="module")
def whole(dataset_run: Path, tmp_path_factory: pytest.TempPathFactory, ray_for_training: None) -> tuple[Path, Any]:
    """An uninterrupted run of 4 steps (2 epochs): the shares to check, and the loss curve a resume must match."""
    output = tmp_path_factory.mktemp("whole")
    return output, train_on_ray(config(dataset_run, output, 4))


def test_two_workers_read_disjoint_shares_that_cover_each_epoch(dataset_run: Path, whole: tuple[Path, Any]) -> None:
    output, result = whole
    assert result.error is None
    assert result.metrics["step"] == 4 and result.metrics["loss"] > 0
    assert result.checkpoint is not None
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / "trainable.pt", weights_only=True)
        assert any("lora" in k for k in state) and any(k.startswith("project.") for k in state)
    assert str(output) in result.path

    names = [f"{r.qa['video_id']}/{r.qa['qa_id']}" for r in StreamingRecords(str(dataset_run)).limit(3)]
    rows = drawn(output)
    assert [int(r["step"]) for r in rows[0]] == [int(r["step"]) for r in rows[1]] == [1, 2, 3, 4], "lockstep"
    for epoch in ("0", "1"):
        shares = {rank: [r["samples"] for r in rows[rank] if r["epoch"] == epoch and float(r["weight"]) == 1.0]
                  for rank in (0, 1)}
        assert (len(shares[0]), len(shares[1])) == (2, 1)
        assert sorted(shares[0] + shares[1]) == sorted(names), "disjoint, and every sample once per epoch"
        (joined,) = [r for r in rows[1] if r["epoch"] == epoch and float(r["weight"]) == 0.0]
        assert joined["step"] == str(2 * int(epoch) + 2)
    assert rows[0][0]["samples"] != rows[0][2]["samples"] or rows[0][1]["samples"] != rows[0][3]["samples"], \
        "each epoch is its own permutation"


def test_a_resumed_run_continues_the_same_loss_curve(dataset_run: Path, tmp_path: Path,
                                                     whole: tuple[Path, Any]) -> None:
    assert train_on_ray(config(dataset_run, tmp_path / "stopped", 3)).error is None  # stopped mid-epoch
    result = train_on_ray(config(dataset_run, tmp_path / "stopped", 4), resume=True)
    assert result.error is None and result.metrics["step"] == 4
    expected, got = drawn(whole[0]), drawn(tmp_path / "stopped")
    for rank in (0, 1):
        assert [r["step"] for r in got[rank]] == [str(s) for s in range(1, 5)], "step 4 came after the resume"
        assert [r["samples"] for r in got[rank]] == [r["samples"] for r in expected[rank]]
        for a, b in zip(expected[rank], got[rank], strict=True):
            assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4, abs=1e-5), (rank, a, b)
    with pytest.raises(ValueError, match="holds a Ray Train run already: pass --resume"):
        train_on_ray(config(dataset_run, tmp_path / "stopped", 4))  # without --resume Ray would continue it
