"""The data model: one `VideoItem` flows through every stage; export tables have fixed Arrow schemas.

Frame positions inside an item (`Detection.frame`, `Track.frames`, ...) index the *sampled* frames
(`VideoInfo.frame_indices`); exports translate them to source-video frame indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from pydantic import TypeAdapter


@dataclass
class VideoInfo:
    """What ingest learned about a video and which frames the pipeline looks at."""

    width: int
    height: int
    fps: float
    num_frames: int
    frame_indices: list[int]
    keyframes: list[int]  # positions into frame_indices
    scene_cuts: list[int] = field(default_factory=list)  # positions where a new shot starts (also keyframes)
    stored_frames: bool = False  # the sampled frames are in the run directory's frame store
    source_width: int = 0  # the source's own size when the frame store keeps frames smaller (0: the same)
    source_height: int = 0
    header_frames: int = 0  # what the container's header claimed (num_frames is what decoding found, when less)


@dataclass
class Phrase:
    """A grounded noun phrase: `caption[start:end] == text`; `norm` is what the detector is prompted with.

    Records from masks-only sources have no caption yet: their spans are -1 until one is written.
    """

    text: str
    start: int
    end: int
    norm: str


@dataclass
class DroppedPhrase:
    text: str
    reason: str


@dataclass
class DroppedObject:
    """An object a quality check removed: its phrase keeps its words but loses `<p> … </p> [SEG]`."""

    object_id: int
    phrase: str
    reason: str


@dataclass
class Hold:
    """An item a stage stopped without an error: `filtered` (a quality check said no), `pending` (review), or
    `short` (the executor could not rebuild it where it re-entered the stream; the run redoes it at its end)."""

    state: str  # filtered | pending | short
    stage: str
    reason: str


@dataclass
class Detection:
    frame: int  # sampled-frame position (a keyframe)
    phrase: int  # index into VideoItem.phrases
    box: list[float]  # x0, y0, x1, y1 in source pixels
    score: float


@dataclass
class MaskTrack:
    """Per-frame COCO RLE masks (compressed `counts` strings) at the video's frame size."""

    frames: list[int] = field(default_factory=list)
    rles: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


@dataclass
class Track:
    """One object followed through the video; `masks` run from its first to its last visible frame."""

    track_id: int
    phrase: int
    prompt_frame: int  # keyframe whose detection started it
    prompt_box: list[float]
    masks: MaskTrack = field(default_factory=MaskTrack)
    first_frame: int = 0
    last_frame: int = 0
    visible_frames: int = 0
    mean_score: float = 0.0  # mean presence score over visible frames


@dataclass
class LinkedObject:
    """One grounded entity of the answer: the union of the tracks its phrase links to."""

    object_id: int
    phrase: int
    track_ids: list[int]
    masks: MaskTrack = field(default_factory=MaskTrack)
    # who vouches for it: dataset (a source dataset's own masks), machine (no person looked), reviewed (a person
    # accepted it as is), edited (renamed or merged by a person), fixed (a person's clicks made its masks)
    provenance: str = "machine"


@dataclass
class QA:
    qa_id: str
    question: str
    answer: str
    object_ids: list[int]


@dataclass
class ItemError:
    stage: str
    error_type: str
    message: str


@dataclass
class VideoItem:
    """The unit of work. Stages fill their fields in; `error` set means later stages pass it through."""

    video_id: str
    path: str
    info: VideoInfo | None = None
    caption: str | None = None
    caption_model: str | None = None
    question: str | None = None  # the VLM's own question (free-form QA prompts); None: a GCG question is picked
    phrases: list[Phrase] = field(default_factory=list)
    dropped_phrases: list[DroppedPhrase] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    objects: list[LinkedObject] = field(default_factory=list)
    qa: list[QA] = field(default_factory=list)
    stages_done: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # "stage.event" -> count (requests, retries, ...)
    dropped_objects: list[DroppedObject] = field(default_factory=list)
    hold: Hold | None = None  # set: later stages pass the item through, like an error, but it is no failure
    review_priority: float | None = None  # set by the review gate: lower is reviewed first
    error: ItemError | None = None

    @property
    def state(self) -> str:
        """ok | error | filtered | pending."""
        return "error" if self.error is not None else self.hold.state if self.hold is not None else "ok"

    def count(self, stage: str, counters: Mapping[str, int]) -> None:
        for key, value in counters.items():
            name = f"{stage}.{key}"
            self.counters[name] = self.counters.get(name, 0) + value

    def to_json(self) -> str:
        return _ITEM.dump_json(self).decode()

    @staticmethod
    def from_json(text: str | bytes) -> VideoItem:
        return _ITEM.validate_json(text)


_ITEM = TypeAdapter(VideoItem)

_INTS = pa.list_(pa.int32())

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("num_frames", pa.int32()),
        ("frame_indices", _INTS),
        ("keyframe_indices", _INTS),
        ("caption", pa.string()),
        ("caption_model", pa.string()),
    ]
)

OBJECTS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("object_id", pa.int32()),
        ("phrase", pa.string()),
        ("phrase_norm", pa.string()),
        ("phrase_start", pa.int32()),
        ("phrase_end", pa.int32()),
        ("track_ids", _INTS),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("frame_indices", _INTS),
        ("mask_rles", pa.list_(pa.string())),
        ("mask_scores", pa.list_(pa.float32())),
        ("provenance", pa.string()),  # dataset | machine | reviewed | edited | fixed
    ]
)

QA_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("qa_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("object_ids", _INTS),
        ("caption", pa.string()),
        ("pipeline", pa.string()),
        ("run_id", pa.string()),
        ("stage_fingerprints", pa.string()),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
    ]
)
