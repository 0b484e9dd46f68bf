"""Track: prompt SAM2 with keyframe boxes and propagate them into per-frame masks.

First version: each phrase starts its objects at the first keyframe that detected it (its best
`max_objects_per_phrase` boxes), and masks run forward from there. Re-detection matching, backward
propagation and windows for long videos are the tracking issue's work.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotator import masks, video
from annotator.models.protocols import BoxPrompt, Tracker
from annotator.records import MaskTrack, Track, VideoItem
from annotator.stage import PerItemStage, Resources, register


def first_prompts(item: VideoItem, per_phrase: int) -> list[tuple[BoxPrompt, int]]:
    """(prompt, phrase index) for each phrase's best boxes on its first detecting keyframe; ids from 1."""
    prompts: list[tuple[BoxPrompt, int]] = []
    for phrase in range(len(item.phrases)):
        hits = [d for d in item.detections if d.phrase == phrase]
        if not hits:
            continue
        first = min(d.frame for d in hits)
        best = sorted((d for d in hits if d.frame == first), key=lambda d: -d.score)[:per_phrase]
        for d in best:
            prompts.append((BoxPrompt(obj_id=len(prompts) + 1, frame=first, box=d.box), phrase))
    return prompts


@register
@dataclass
class TrackStage(PerItemStage):
    name = "track"
    resources = Resources(cpus=1.0, gpus=0.5)

    model: str = "facebook/sam2.1-hiera-large"
    max_objects_per_phrase: int = 1

    def setup(self) -> None:
        from annotator.models.sam2_video import Sam2VideoTracker

        self._tracker: Tracker = Sam2VideoTracker(self.model)

    def process_item(self, item: VideoItem) -> VideoItem:
        if item.info is None:
            raise ValueError("ingest has not run")
        item.tracks = []
        prompts = first_prompts(item, self.max_objects_per_phrase)
        if not prompts:
            return item
        frames = video.read_frames(item.path, item.info.frame_indices)
        results = self._tracker.track(frames, [p for p, _ in prompts])
        for prompt, phrase in prompts:
            result = results.get(prompt.obj_id)
            if result is None:
                continue
            item.tracks.append(Track(
                track_id=prompt.obj_id, phrase=phrase, prompt_frame=prompt.frame, prompt_box=prompt.box,
                masks=MaskTrack(frames=result.frames, rles=masks.encode_batch(result.masks), scores=result.scores),
            ))
        return item
