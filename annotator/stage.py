"""The stage contract: small dataclasses whose fields are the YAML `params`; executors run them.

Stages never import Ray. A failure on one item becomes `item.error` and never stops the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import ConfigDict, Field

from annotator import frames, paths
from annotator.records import ItemError, VideoItem

# Parameter ranges, checked when a pipeline YAML is validated (pydantic reads the annotations): a value out of range
# fails at config time with one line naming the key, never later on every video.
Count = Annotated[int, Field(ge=1)]  # how many of something: at least one
NonNegative = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(gt=0.0)]
Rate = Annotated[float, Field(gt=0.0)]


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0  # fractional values pack several small models on one GPU
    custom: dict[str, float] = dataclasses.field(default_factory=dict)  # Ray custom resources: pin to node types


@dataclass
class EngineSpec:
    """A model the executor hosts for a stage (a vLLM engine inside Ray Data) instead of the stage's own actors.

    The stage still builds each item's request (`engine_messages`) and reads each answer (`engine_finish`);
    only the generation in between runs in the engine.
    """

    engine: str  # "vllm"
    model: str
    engine_kwargs: dict[str, Any]
    sampling_params: dict[str, Any]


@dataclass(frozen=True)
class Served:
    """Where a stage's model is served (OpenAI-compatible endpoints) and under which name: the stage is I/O-bound,
    so executors give it a pool of its own, and a run checks the endpoints before any video starts."""

    endpoints: tuple[str, ...]
    model: str
    api_key_env: str = "OPENAI_API_KEY"

    @staticmethod
    def at(endpoint: str | list[str] | None, model: str | None, api_key_env: str = "OPENAI_API_KEY") -> Served:
        """From a stage's `endpoint` param: one URL, or a list of the model's replicas."""
        urls = [endpoint] if isinstance(endpoint, str) else list(endpoint or [])
        return Served(tuple(u for u in urls if u), model or "", api_key_env)


class Stage(ABC):
    """Base class. Subclasses are `@dataclass`es registered with `@register`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"  # bump when outputs change meaning: invalidates cached results
    resources: ClassVar[Resources] = Resources()
    batch_size: ClassVar[int] = 1
    outputs: ClassVar[tuple[str, ...]] = ()  # the item fields this stage sets: all its checkpoint holds
    # params that change how the work is done, never its result (concurrency, timeouts, retries): left out
    # of the fingerprint, so tuning them on a resumed run reuses what is finished
    runtime_params: ClassVar[tuple[str, ...]] = ()
    # pydantic validates the dataclass fields from YAML and rejects unknown keys
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    def setup(self) -> None:
        """Load models once per worker."""

    def preload(self) -> None:
        """Read the files this stage needs (prompt templates) into the instance, in the driver: they then travel
        to remote workers inside the pickled stage, which never look for them on their own disk."""

    def check_resources(self, resources: Resources) -> None:
        """Raise ValueError (one line) at config time when this stage cannot work within `resources`."""

    def bind(self, run_root: str | None) -> None:
        """The run directory this stage works in (its frame store); set by the runner, not a param."""
        self._run_root = run_root

    @property
    def run_root(self) -> str | None:
        return getattr(self, "_run_root", None)

    def frames(self, item: VideoItem, positions: list[int]) -> np.ndarray:
        """RGB frames at sampled positions, from the frame store when ingest wrote one."""
        return frames.read(item, positions, self.run_root)

    @abstractmethod
    def process(self, batch: list[VideoItem]) -> list[VideoItem]: ...

    def teardown(self) -> None:
        """Free what `setup` loaded."""

    def engine_spec(self) -> EngineSpec | None:
        """Set when the model runs in an executor-hosted engine; such a stage also implements the two below."""
        return None

    def served(self) -> Served | None:
        """Set when the stage sends its work to a model server instead of running a model itself."""
        return None

    def engine_messages(self, item: VideoItem) -> list[dict[str, Any]]:
        raise NotImplementedError(f"stage {self.name} has no engine")

    def engine_finish(self, item: VideoItem, reply: str | Exception) -> None:
        raise NotImplementedError(f"stage {self.name} has no engine")

    def stale(self, rows: pa.Table) -> set[str]:
        """Videos whose finished result here (`rows`: each video's newest index row with today's fingerprint, as
        Arrow: video_id, status, counters) no longer holds for a reason the fingerprint cannot see (a reviewer's
        new decision): redone from here."""
        return set()

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def cache_inputs(self) -> dict[str, Any]:
        """Anything beyond params that changes outputs (prompt text hashes, ...)."""
        return {}

    def model_ids(self) -> dict[str, str]:
        """Model references this stage loads, for dry runs and the manifest."""
        return {k: v for k, v in self.params().items() if k == "model" or k.endswith("_model")}

    def required_paths(self) -> dict[str, str]:
        """Params naming local files that must exist (checked at config time, before any model loads)."""
        return {k: v for k, v in self.model_ids().items() if v and paths.looks_local(v)}

    def fingerprint(self, upstream: str = "") -> str:
        payload = {
            "stage": self.name,
            "version": self.version,
            "params": {k: v for k, v in self.params().items() if k not in self.runtime_params},
            "inputs": self.cache_inputs(),
            "upstream": upstream,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class PerItemStage(Stage):
    """A stage that handles items one at a time, turning any exception into that item's error."""

    def process(self, batch: list[VideoItem]) -> list[VideoItem]:
        out = []
        for item in batch:
            try:
                out.append(self.process_item(item))
            except Exception as exc:  # noqa: BLE001 - per-item isolation is the contract
                item.error = error_from(self.name, exc)
                out.append(item)
        return out

    @abstractmethod
    def process_item(self, item: VideoItem) -> VideoItem: ...


def error_from(stage: str, exc: BaseException) -> ItemError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return ItemError(stage=stage, error_type=type(exc).__name__, message=message[:500])


STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    if cls.name in STAGES:
        raise ValueError(f"stage {cls.name!r} registered twice")
    STAGES[cls.name] = cls
    return cls


def stage_class(name: str) -> type[Stage]:
    import annotator.stages  # noqa: F401 - registers the built-in stages

    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}")
    return STAGES[name]
