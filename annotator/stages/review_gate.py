"""Review gate (between filter and assemble): sends items to people under a policy, applies their decisions.

Policies: `all`, `none`, `{sample: FRACTION}` (seeded per video id, so an item's draw never depends on the
others) and `{below: {score: T}}` (an item goes to review when any object's mean mask score, or the best
detection score of its phrase, is below T). The gate's own output records what the policy did: an item it let
through counts `review_gate.released_by_policy` in its index row; the gate never writes to the decisions store,
whose one writer of people's decisions is the review server. A sent item is `pending` until a reviewer accepts
or rejects it; each run re-reads the store, applies the decisions in force (`review.apply`) and releases
decided items.

Review priority (lower first): `min_score` = the lowest over the item's objects of min(mean mask score, best
detection score of its phrase), 0 for an item without objects; `mean_score` = the mean of those per-object
scores. The item's newest applied decision id is kept in its index row (`review_gate._decision`), so a later
decision on a finished item makes the next run redo it from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from annotator.records import Hold, VideoItem
from annotator.review import apply as decisions
from annotator.review.store import DecisionStore
from annotator.stage import PerItemStage, Probability, Resources, register

DECISION_COUNTER = "_decision"  # a state, not an event: leading underscore keeps it out of the manifest sums
POLICY_COUNTER = "released_by_policy"


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sample(_Policy):
    sample: Probability


class Below(_Policy):
    class Score(_Policy):
        score: Probability

    below: Score


def score_parts(item: VideoItem) -> list[tuple[float | None, float | None]]:
    """Per object: (mean mask score, best detection score of its phrase), None where the item has none."""
    best: dict[int, float] = {}
    for d in item.detections:
        best[d.phrase] = max(best.get(d.phrase, 0.0), d.score)
    return [(sum(obj.masks.scores) / len(obj.masks.scores) if obj.masks.scores else None, best.get(obj.phrase))
            for obj in item.objects]


def object_scores(item: VideoItem) -> list[float]:
    """Per object: min(mean mask score, best detection score of its phrase)."""
    out = []
    for mask, detect in score_parts(item):
        mask = 0.0 if mask is None else mask
        out.append(min(mask, mask if detect is None else detect))
    return out


@register
@dataclass
class ReviewGateStage(PerItemStage):
    name = "review_gate"
    resources = Resources(cpus=0.1)
    batch_size = 16
    outputs = ("caption", "phrases", "objects", "dropped_objects", "review_priority")

    policy: Literal["all", "none"] | Sample | Below = "none"
    seed: int = 0
    priority: Literal["min_score", "mean_score"] = "min_score"
    lease_s: float = 600.0  # how long the review page holds an item for one reviewer (renewed while open)

    def _store(self) -> DecisionStore:
        """The run's decisions (any filesystem: local, shared or an object store), kept for the worker's later
        batches."""
        assert self.run_root is not None, "the runner binds the run directory"
        store = getattr(self, "_opened", None)
        if store is None:
            store = self._opened = DecisionStore(self.run_root)
        return store

    def rank(self, item: VideoItem) -> float:
        scores = object_scores(item)
        if not scores:
            return 0.0
        return round(min(scores) if self.priority == "min_score" else sum(scores) / len(scores), 6)

    def sends(self, item: VideoItem) -> bool:
        if self.policy == "all":
            return True
        if isinstance(self.policy, Sample):
            digest = hashlib.sha256(f"{self.seed}:{item.video_id}".encode()).digest()
            return int.from_bytes(digest[:8], "big") / 2**64 < self.policy.sample
        if isinstance(self.policy, Below):
            return any(s < self.policy.below.score for s in object_scores(item)) or not item.objects
        return False

    def describe(self) -> str:
        if isinstance(self.policy, Sample):
            return f"sample {self.policy.sample} (seed {self.seed})"
        if isinstance(self.policy, Below):
            return f"no object scored below {self.policy.below.score}"
        return f"policy {self.policy}"

    def process_item(self, item: VideoItem) -> VideoItem:
        item.review_priority = self.rank(item)
        current = self._store().latest(item.video_id)  # re-listed every few seconds at most
        if not any(d.field == "status" for d in current):
            if self.sends(item):
                item.hold = Hold("pending", self.name, f"awaiting review (priority {item.review_priority:g})")
                return item
            item.count(self.name, {POLICY_COUNTER: 1})
        decisions.apply(item, current)
        item.count(self.name, {DECISION_COUNTER: max((d.id for d in current), default=0)})
        return item

    def stale(self, rows: pa.Table) -> set[str]:
        """Finished items with a decision newer than the one applied: the next run redoes them from here. Only
        the rows of items someone decided are looked at one by one."""
        if not rows.num_rows:
            return set()
        newest = DecisionStore(self.run_root or "").last_ids()
        if not newest:
            return set()
        decided = rows.filter(pc.and_(pc.is_in(rows["status"], pa.array(["ok", "filtered"])),
                                      pc.is_in(rows["video_id"], pa.array(sorted(newest), pa.string()))))
        key = f"{self.name}.{DECISION_COUNTER}"
        applied = pc.fill_null(pc.map_lookup(decided["counters"], key, "first"), 0).to_pylist()
        return {vid for vid, done in zip(decided["video_id"].to_pylist(), applied, strict=True)
                if newest[vid] > done}
