"""The raw-video flow with calibrated fakes for the models, registered as stages (`fake-*`) so a test can run
them through `Pipeline` and the CLI like any configured pipeline; `link` and everything after it are real."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.records import VideoItem
from annotator.stage import PerItemStage, register
from annotator.stages.assemble import AssembleStage
from annotator.stages.link import LinkStage
from annotator.testing import fake_stages as fakes

TALLY_ENV = "ANNOTATOR_TEST_TALLY"


class Tallied:
    """With $ANNOTATOR_TEST_TALLY set, leaves one file per video a call processed under `<tally>/<stage>/`: a
    count of the work done that no kill can take back, so a test sees work done twice even when its checkpoint
    was lost."""

    name: str

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        out = super().process(batch)  # type: ignore[misc]
        if root := os.environ.get(TALLY_ENV):
            folder = Path(root, self.name)
            folder.mkdir(parents=True, exist_ok=True)
            for item in batch:
                (folder / f"{item.video_id}.{uuid.uuid4().hex}").touch()
        return out


@register
@dataclass
class Ingest(Tallied, fakes.FakeIngest):
    name = "fake-ingest"


@register
@dataclass
class Caption(Tallied, fakes.FakeCaption):
    name = "fake-caption"


@register
@dataclass
class Phrases(Tallied, fakes.FakePhrases):
    name = "fake-phrases"


@register
@dataclass
class Detect(Tallied, fakes.FakeDetect):
    name = "fake-detect"


@register
@dataclass
class Track(Tallied, fakes.FakeTrack):
    name = "fake-track"


@register
@dataclass
class Scores(PerItemStage):
    """Sets every object's mask scores (and its phrase's detection scores) to a known value per video."""

    name = "fake-scores"
    outputs = ("objects", "detections")

    scores: dict[str, float] | None = None

    def process_item(self, item: VideoItem) -> VideoItem:
        score = (self.scores or {}).get(item.video_id, 0.9)
        for obj in item.objects:
            obj.masks.scores = [score] * len(obj.masks.scores)
        for d in item.detections:
            d.score = max(score, 0.0)
        return item


@register
@dataclass
class TalliedLink(Tallied, LinkStage):
    name = "tally-link"


@register
@dataclass
class TalliedAssemble(Tallied, AssembleStage):
    name = "tally-assemble"


def marks(marker: str) -> int:
    """How many marker files `marker0`, `marker1`, ... a fault stage has left: the times it struck."""
    return len(list(Path(marker).parent.glob(Path(marker).name + "*")))


@register
@dataclass
class Crash(PerItemStage):
    """Kills its worker process on one video, `times` times (marker files count them)."""

    name = "fake-crash"
    outputs = ()

    victim: str = "v03"
    marker: str = ""
    times: int = 1

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.video_id == self.victim and (seen := marks(self.marker)) < self.times:
            Path(f"{self.marker}{seen}").touch()
            os._exit(1)
        return item


FLOW = [Ingest(frames=8), Caption(cost_s=0), Phrases(), Detect(cost_s=0), Track(cost_s=0), LinkStage()]


def flow_specs(frames: int = 8) -> list[dict[str, Any]]:
    """Pipeline YAML entries for FLOW (no sleeping)."""
    specs = [{"stage": s.name, "params": {"cost_s": 0} if hasattr(s, "cost_s") else {}} for s in FLOW]
    specs[0]["params"] = {"frames": frames}
    return specs


@register
@dataclass
class Fails(PerItemStage):
    """Raises for the videos in `fail`: their item error names this stage (what a bad input does to a model)."""

    name = "fake-fails"
    outputs = ()

    fail: list[str] | None = None

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.video_id in (self.fail or []):
            raise ValueError(f"cannot read {item.video_id}")
        return item
