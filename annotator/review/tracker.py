"""Click-to-fix: a reviewer's positive/negative points on one frame become a mask track over the sampled frames,
by the pipeline's own tracker run from that frame forward and backward (loaded on first use, one at a time)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from annotator import frames, masks
from annotator.models.protocols import Prompt, Tracker
from annotator.records import VideoItem


class MaskFixer:
    def __init__(self, manifest: dict[str, Any], tracker: Tracker | None = None) -> None:
        """`tracker`: the one to use instead of the pipeline's own (loaded on first use)."""
        from annotator.stage import stage_class

        # the pipeline's own tracker: track's SAM2, or segment's SAM 3 (whose tracker takes the same clicks)
        specs = [s for s in manifest["pipeline"]["stages"] if s["stage"] in ("track", "segment")]
        name = specs[0]["stage"] if specs else "track"
        self.model: str = stage_class(name)(**(specs[0]["params"] if specs else {})).model  # type: ignore[attr-defined]
        self._tracker: Tracker | None = tracker
        self._lock = threading.Lock()  # one model, one fix at a time: it holds the whole clip's features

    def tracker(self) -> Tracker:
        if self._tracker is None:
            from annotator.models.sam2_video import Sam2VideoTracker

            self._tracker = Sam2VideoTracker(self.model)
        return self._tracker

    def fix(self, item: VideoItem, run_root: str, object_id: int, position: int,
            points: list[tuple[float, float, int]]) -> dict[str, Any]:
        """{frames, rles, scores} of the object over the sampled frames where the new mask is not empty."""
        assert item.info is not None
        positions = list(range(len(item.info.frame_indices)))
        clip = frames.read(item, positions, run_root)
        prompt = [Prompt(obj_id=object_id, frame=position, points=[(float(x), float(y), int(k)) for x, y, k in points])]
        with self._lock:
            session = self.tracker().open(clip, positions)  # one session: each frame's features computed once
            session.add(prompt)
            found: dict[int, tuple[np.ndarray, float]] = {}
            for reverse in (False, True):
                for frame in session.propagate(position, reverse=reverse):
                    if object_id in frame.masks:
                        found.setdefault(frame.position, (frame.masks[object_id], frame.scores[object_id]))
        keep = [p for p in sorted(found) if found[p][0].any()]
        rles = masks.encode_batch(masks.stack_column_major([found[p][0] for p in keep])) if keep else []
        return {"frames": keep, "rles": list(rles), "scores": [found[p][1] for p in keep]}
