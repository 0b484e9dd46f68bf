"""Training reads its run directory from the S3 test server (moto on 127.0.0.1): a demo run copied there trains
with the same loss curve as the same run on local disk, frames fetched by DataLoader worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator import storage
from annotator.train.loop import train
from tests.conftest import BUCKET
from tests.train.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_training_on_a_run_directory_on_s3(s3: dict[str, str], dataset_run: Path, tmp_path: Path) -> None:
    remote = f"s3://{BUCKET}/runs/train-demo"
    fs, root = storage.filesystem(remote)
    for path in dataset_run.rglob("*"):
        if path.is_file() and "review" not in path.parts:  # like `aws s3 sync` of a finished run
            storage.write_bytes(storage.join(remote, str(path.relative_to(dataset_run))), path.read_bytes())
    assert storage.exists(storage.join(remote, "manifest.json"))
    assert storage.list_files(storage.join(remote, "export", "parquet", "qa"), ".parquet")
    assert fs.glob(f"{root}/frames/*/*.jpg"), "the frame store travels with the run"

    sources = dataset_run.parent / "in"
    sources.rename(sources.with_name("in-hidden"))  # frames can only come from the frame store on S3
    try:
        on_s3 = train(tiny_config(remote, tmp_path / "s3", steps=4, save_every=4))  # data.num_workers: 2
    finally:
        sources.with_name("in-hidden").rename(sources)
    on_disk = train(tiny_config(str(dataset_run), tmp_path / "disk", steps=4, save_every=4))
    assert [r["step"] for r in on_s3] == [1, 2, 3, 4]
    for a, b in zip(on_disk, on_s3, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    assert (tmp_path / "s3" / "checkpoints" / "step-4" / "trainable.pt").exists()
