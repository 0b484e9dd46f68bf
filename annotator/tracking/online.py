"""Online multi-object tracking over keyframe detections, window by window.

The video is cut into windows of W sampled frames that overlap by one frame; only the current and the
previous window are decoded at any time, so memory is flat in video length. Each window is one tracker
session (`Tracker.open`), so each frame's image features are computed once per window. In each window:

1. live tracks continue: each is prompted with its mask on the last frame it was visible and
   propagated to the window's end (SAM2 re-acquires an object that comes back into view);
2. on each keyframe, detections are segmented and matched one-to-one to live tracks of the same phrase by
   mask IoU (Hungarian assignment); a matched detection keeps the track's id and, with `recondition`
   `box` or `mask`, re-prompts the track from that keyframe on (a track that drifted is pulled back by
   each fresh detection); an unmatched one starts a new track that is propagated forward *and backward*
   (into the previous window, until the object is out of view), so it has masks from its true first
   visible frame, not from the keyframe that found it;
3. a track that is not re-detected stays alive while the tracker still sees it (presence score and
   area above thresholds) and ends after `max_lost_frames` frames without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from annotator import masks
from annotator.models.protocols import Prompt, Tracker, TrackResult, TrackSession, collect
from annotator.records import Detection, MaskTrack, Track


@dataclass(frozen=True)
class TrackingParams:
    window: int = 32  # sampled frames per window
    iou_threshold: float = 0.5  # detection <-> track mask IoU to keep an id
    score_threshold: float = 0.5  # presence probability below which a frame counts as "not seen"
    min_area: int = 1  # pixels below which a frame counts as "not seen"
    max_lost_frames: int = 16  # consecutive unseen frames that end a track
    recondition: Literal["box", "mask", "off"] = "box"  # re-prompt a matched live track with its detection

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("window must be at least 2 frames")
        if not 0 < self.max_lost_frames < self.window:
            raise ValueError("max_lost_frames must be between 1 and window - 1 (a lost track is re-prompted "
                             "from its last visible frame, which must still be decoded)")


@dataclass
class _Live:
    track_id: int
    phrase: int
    prompt_frame: int
    prompt_box: list[float]
    frames: dict[int, tuple[str, float, bool]] = field(default_factory=dict)  # pos -> (rle, score, seen)
    alive: bool = True

    def last_seen(self) -> int | None:
        seen = [f for f, (_, _, s) in self.frames.items() if s]
        return max(seen) if seen else None


def match(iou: np.ndarray, threshold: float) -> dict[int, int]:
    """Row -> column pairs of a one-to-one assignment (Hungarian algorithm): as many pairs with IoU at least
    `threshold` as there can be, and among those the largest total IoU. A negative IoU marks a pair that may
    never match (another phrase); pairs under the threshold never block a valid one."""
    from scipy.optimize import linear_sum_assignment

    if not iou.size:
        return {}
    valid = (iou >= threshold) & (iou >= 0)
    rows, cols = linear_sum_assignment(np.where(valid, iou, -1e6), maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if valid[r, c]}


class OnlineTracking:
    def __init__(self, tracker: Tracker, params: TrackingParams, height: int, width: int) -> None:
        self.tracker = tracker
        self.params = params
        self.height, self.width = height, width
        self.tracks: dict[int, _Live] = {}

    def _seen(self, mask: np.ndarray, score: float) -> bool:
        return int(mask.sum()) >= self.params.min_area and score >= self.params.score_threshold

    def _check(self, found: np.ndarray) -> None:
        """Masks at any other size than the frames would encode into RLEs no reader can decode."""
        if found.ndim != 3 or found.shape[1:] != (self.height, self.width):
            raise ValueError(f"tracker returned masks of shape {tuple(found.shape[1:])} for frames of "
                             f"{self.height}x{self.width}")

    def _record(self, result: TrackResult, track: _Live, since: int | None = None, replace: bool = False) -> None:
        """Keep the frames not recorded yet (`replace`: overwrite them) and, with `since`, only from there on."""
        self._check(result.masks)
        keep = [i for i, f in enumerate(result.frames)
                if (replace or f not in track.frames) and (since is None or f >= since)]
        if not keep:
            return
        picked = result.masks if len(keep) == len(result.frames) else masks.stack_column_major(
            [result.masks[i] for i in keep])  # keeps the tracker's column-major layout: encoding copies nothing
        rles = masks.encode_batch(picked)
        for i, rle in zip(keep, rles, strict=True):
            track.frames[result.frames[i]] = (rle, result.scores[i], self._seen(result.masks[i], result.scores[i]))

    def _mask_at(self, track: _Live, position: int) -> np.ndarray:
        return masks.decode(track.frames[position][0], self.height, self.width)

    def _continue_live(self, session: TrackSession, a: int) -> None:
        groups: dict[int, list[_Live]] = {}
        for t in self.tracks.values():
            if t.alive:
                last = t.last_seen()
                groups.setdefault(t.prompt_frame if last is None else last, []).append(t)
        for start, group in sorted(groups.items()):
            session.add([Prompt(t.track_id, start, mask=self._mask_at(t, start)) for t in group])
            results = collect(session.propagate(start, objects=[t.track_id for t in group]))
            for t in group:
                if t.track_id in results:
                    self._record(results[t.track_id], t, since=a)

    def _keyframe(self, session: TrackSession, k: int, detections: list[Detection]) -> None:
        det_masks = session.segment(k, [d.box for d in detections])
        self._check(det_masks)
        usable = [i for i, m in enumerate(det_masks) if int(m.sum()) >= self.params.min_area]
        live = [t for t in self.tracks.values() if t.alive and k in t.frames]
        iou = np.full((len(usable), len(live)), -1.0)  # -1: another phrase, never a match
        for r, i in enumerate(usable):
            for c, t in enumerate(live):
                if t.phrase == detections[i].phrase:
                    iou[r, c] = masks.iou(det_masks[i], self._mask_at(t, k))
        matched = match(iou, self.params.iou_threshold)
        refresh, born = [], []
        for r, i in enumerate(usable):
            det = detections[i]
            if r in matched:
                if self.params.recondition != "off":
                    mask = det_masks[i] if self.params.recondition == "mask" else None
                    refresh.append(Prompt(live[matched[r]].track_id, k, box=None if mask is not None else det.box,
                                          mask=mask))
                continue
            track_id = max(self.tracks, default=0) + 1
            self.tracks[track_id] = _Live(track_id, det.phrase, k, det.box)
            born.append(Prompt(track_id, k, box=det.box))
        if not refresh and not born:
            return
        session.add(refresh + born)
        forward = collect(session.propagate(k, objects=[p.obj_id for p in refresh + born]))
        backward = collect(session.propagate(k, reverse=True, objects=[p.obj_id for p in born])) if born else {}
        for p in refresh:
            if p.obj_id in forward:
                self._record(forward[p.obj_id], self.tracks[p.obj_id], since=k, replace=True)
        for p in born:
            if p.obj_id in forward:
                self._record(forward[p.obj_id], self.tracks[p.obj_id])
            if p.obj_id in backward:
                self._record(self._until_unseen(backward[p.obj_id]), self.tracks[p.obj_id])

    def _until_unseen(self, result: TrackResult) -> TrackResult:
        """The leading run of frames where the object is seen: backward fill stops where it was out of view."""
        n = 0
        while n < len(result.frames) and self._seen(result.masks[n], result.scores[n]):
            n += 1
        return TrackResult(frames=result.frames[:n], masks=result.masks[:n], scores=result.scores[:n])

    def _update_lifecycles(self, upto: int) -> None:
        for t in self.tracks.values():
            if not t.alive:
                continue
            last = t.last_seen()
            if last is None or upto - last >= self.params.max_lost_frames:
                t.alive = False

    def run(self, read: Callable[[list[int]], np.ndarray], num_frames: int,
            detections: dict[int, list[Detection]]) -> list[Track]:
        """`read(positions)` decodes ascending sampled-frame positions, forward only."""
        w = self.params.window
        prev_frames = np.zeros((0, self.height, self.width, 3), dtype=np.uint8)
        prev_positions: list[int] = []
        a = 0
        while True:
            b = min(a + w - 1, num_frames - 1)
            fresh = list(range(a if a == 0 else a + 1, b + 1))
            new = read(fresh) if fresh else prev_frames[:0]
            # previous window (for backward reach and re-prompting lost tracks) + this window
            frames = np.concatenate([prev_frames, new]) if len(prev_positions) else new
            positions = prev_positions + fresh
            session = self.tracker.open(frames, positions)
            self._continue_live(session, a)
            last_window = b == num_frames - 1
            for k in sorted(detections):
                if a <= k < b or (last_window and k == b):
                    self._keyframe(session, k, detections[k])
            self._update_lifecycles(b)
            if last_window:
                break
            cut = positions.index(a) if a in positions else 0
            prev_frames, prev_positions = frames[cut:], positions[cut:]  # keep only this window
            a = b
        ordered = sorted(self.tracks.values(), key=lambda t: t.track_id)
        return [self._finish(t) for t in ordered if t.last_seen() is not None]

    def _finish(self, t: _Live) -> Track:
        """Frames from first to last seen (unseen frames inside keep their masks and scores)."""
        seen = sorted(f for f, (_, _, s) in t.frames.items() if s)
        frames = [f for f in sorted(t.frames) if seen[0] <= f <= seen[-1]]
        scores = [t.frames[f][1] for f in seen]
        return Track(
            track_id=t.track_id, phrase=t.phrase, prompt_frame=t.prompt_frame, prompt_box=t.prompt_box,
            masks=MaskTrack(frames=frames, rles=[t.frames[f][0] for f in frames],
                            scores=[t.frames[f][1] for f in frames]),
            first_frame=seen[0], last_frame=seen[-1], visible_frames=len(seen),
            mean_score=round(float(np.mean(scores)), 6),
        )

