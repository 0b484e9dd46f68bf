"""The production pipelines at production size: `raw_videos.yaml` and `raw_videos_sam3.yaml`, pointed at the
rehearsal checkpoints (real architectures, random weights) and the fake OpenAI-compatible server, finish on one
short clip with the local executor and with Ray, at the processors' real input sizes (2 sampled frames).

Minutes of CPU per run: marked `rehearsal` as well as `slow`, and left out of `make test` (see README,
Development: `make test-rehearsal`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator import paths
from annotator.config import load_config
from annotator.models import rehearsal
from annotator.pipeline import Pipeline
from annotator.testing.fake_server import FakeServer, caption_and_phrases
from tests.helpers import export_rows

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal]
CAPTION = "A rabbit sits on the grass under a tree."
PHRASES = ["a rabbit", "the grass"]
MODELS = {"raw_videos.yaml": {"detect": "grounding-dino-base", "track": "sam2.1-hiera-large"},
          "raw_videos_sam3.yaml": {"segment": "sam3"}}


@pytest.fixture(scope="module")
def checkpoints(model_cache: Path) -> dict[str, Path]:
    return {folder: rehearsal.build(folder, model_cache / "rehearsal" / folder) for folder in rehearsal.PRODUCTION}


@pytest.mark.parametrize("executor", ["local", "ray"])
@pytest.mark.parametrize("pipeline", ["raw_videos.yaml", "raw_videos_sam3.yaml"])
def test_production_pipeline_finishes_at_production_size(pipeline: str, executor: str, clips: dict[str, Path],
                                                         checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with FakeServer(reply=caption_and_phrases(CAPTION, PHRASES)) as server:
        sets = ["stages.ingest.params.max_frames=2", "stages.ingest.params.keyframe_every=2",
                f"stages.caption.params.endpoint={server.url}", f"stages.phrases.params.endpoint={server.url}",
                "stages.review_gate.params.policy=none",  # random scores would send the item to review
                *(f"stages.{stage}.params.model={checkpoints[folder]}" for stage, folder in MODELS[pipeline].items()),
                *(f"stages.{stage}.resources.gpus=0" for stage in MODELS[pipeline])]  # CPU: no GPU to ask Ray for
        config = load_config(paths.PIPELINES_DIR / pipeline, sets)
        summary = Pipeline(config, pipeline).run([clips["a"]], tmp_path / "run", executor=executor,
                                                 show_progress=False)
    assert (summary.videos, summary.errors) == (1, 0)
    exported = [r["video_id"] for r in export_rows(tmp_path / "run", "videos")]
    assert (exported, summary.filtered) in ((["clip_a"], 0), ([], 1)), "finished: exported, or filtered with reason"
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 2 and sum("response_format" in b for b in bodies) == 1, "one caption, one phrases request"
    assert {b["model"] for b in bodies} == {"Qwen/Qwen2.5-VL-7B-Instruct"}
