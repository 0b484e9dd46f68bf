"""Session fixtures: tiny real models (built once, loaded through from_pretrained), short real clips, Ray."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from annotator import paths, storage, video

SAMPLE = paths.SAMPLES_DIR / "bigbuckbunny.mp4"
BUCKET = "annotator-test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny:` refs build into a per-session cache, never the user's."""
    cache = tmp_path_factory.mktemp("annotator-cache")
    os.environ["ANNOTATOR_CACHE"] = str(cache)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return cache


@pytest.fixture(scope="session")
def tiny_models(model_cache: Path) -> dict[str, str]:
    from annotator.models import refs, tiny

    return {role: refs.resolve(f"tiny:{role}") for role in tiny.ROLES}


def write_clip(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two short 320x180 clips cut from the bundled Big Buck Bunny sample, and one corrupt file."""
    folder = tmp_path_factory.mktemp("clips")
    frames = video.read_frames(SAMPLE, list(range(0, 100)))
    small = np.stack([cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA) for f in frames])
    out = {
        "a": write_clip(folder / "clip_a.mp4", small[:25]),
        "b": write_clip(folder / "clip_b.mp4", small[60:85]),
    }
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4096))
    out["broken"] = broken
    return out


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"ANNOTATOR_CACHE": os.environ["ANNOTATOR_CACHE"]}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3(clips: dict[str, Path]) -> Iterator[dict[str, str]]:
    """A real S3 server (moto, HTTP on 127.0.0.1) with a bucket holding the two clips under inputs/; the
    environment points boto3 and s3fs at it for the module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    storage._filesystem.cache_clear()
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        for name in ("a", "b"):
            storage.write_bytes(f"s3://{BUCKET}/inputs/clip_{name}.mp4", clips[name].read_bytes())
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        storage._filesystem.cache_clear()
        server.stop()
