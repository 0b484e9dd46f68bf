"""Stages whose model runs as a vLLM engine inside Ray Data (`ray.data.llm`), e.g. `caption.backend: vllm-engine`.

The chain for such a stage is: a CPU `map` that decodes frames and builds each item's chat request (off the
GPU's critical path), the `ray.data.llm` processor (chat template, multimodal preparation, tokenisation,
vLLM generation, detokenisation), then a `map` that hands each answer back to the stage and checkpoints
the item. Items that must not be generated (an earlier error, or already done on a resumed run) ride
through with a one-token request, so the chain stays one stream with no branch to recompute upstream.
"""

from __future__ import annotations

import time
from typing import Any

from annotator.executors.runner import StageRunner, StageTask
from annotator.models import refs
from annotator.records import VideoItem
from annotator.stage import EngineSpec, error_from

# a skip row has the shape of a real one (content parts, the same sampling keys), so a block mixing both
# still converts to Arrow instead of falling back to pickled objects
_SKIP = [{"role": "user", "content": [{"type": "text", "text": "."}]}]


def _spec(task: StageTask) -> EngineSpec:
    spec = task.stage.engine_spec()
    if spec is None or spec.engine != "vllm":
        raise ValueError(f"stage {task.stage.name} does not run in a vLLM engine")
    return spec


def processor_config(task: StageTask) -> Any:
    """The `vLLMEngineProcessorConfig` for a stage: its model, engine args, batch size and replica count."""
    from ray.data.llm import vLLMEngineProcessorConfig

    spec = _spec(task)
    return vLLMEngineProcessorConfig(
        model_source=refs.resolve(spec.model),  # hub id, local path, or a built tiny checkpoint
        engine_kwargs=spec.engine_kwargs,
        batch_size=task.batch_size,
        concurrency=_replicas(task),
        chat_template_stage=True,
        prepare_multimodal_stage={"enabled": True},
        tokenize_stage=True,
        detokenize_stage=True,
        should_continue_on_error=True,  # one bad video becomes that item's error, not a failed run
    )


def _replicas(task: StageTask) -> int | tuple[int, int]:
    """Engine replicas: fixed, or Ray Data's autoscaled (min, max); `auto` goes up to one replica per GPU."""
    if task.scale is None:
        return task.concurrency
    import ray

    low, high = task.scale
    return low, high if high is not None else max(low, int(ray.cluster_resources().get("GPU", 1)))


class Prepare:
    """CPU side: the item's chat request (frames decoded and JPEG-encoded here, not on the engine's GPU)."""

    def __init__(self, task: StageTask) -> None:
        self.stage = task.stage
        self.sampling = _spec(task).sampling_params

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        item = VideoItem.from_json(row["item"])
        if item.error is not None or self.stage.name in item.stages_done:
            return self._skip(row["item"])
        try:
            messages = self.stage.engine_messages(item)
        except Exception as exc:  # noqa: BLE001 - an undecodable video is this item's error
            item.error = error_from(self.stage.name, exc)
            return self._skip(item.to_json())
        return {"item": row["item"], "skip": False, "messages": messages, "sampling_params": dict(self.sampling)}

    def _skip(self, item_json: str) -> dict[str, Any]:
        sampling = {**self.sampling, "max_tokens": 1}
        return {"item": item_json, "skip": True, "messages": _SKIP, "sampling_params": sampling}


def carry(row: dict[str, Any]) -> dict[str, Any]:
    """The processor's postprocess: keep only what `Finish` needs."""
    return {"item": row["item"], "skip": row["skip"], "generated_text": row.get("generated_text", "")}


class Finish:
    """Back on the stage's side: the answer (or the engine's error) onto the item, then its checkpoint."""

    def __init__(self, task: StageTask) -> None:
        self.task = task
        self.runner = StageRunner(task)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        item = VideoItem.from_json(row["item"])
        if row.get("skip"):
            return {"item": item.to_json()}
        started = time.perf_counter()
        failure = row.get("__inference_error__") or ""
        self.task.stage.engine_finish(item, RuntimeError(f"vLLM engine: {failure}") if failure
                                      else str(row.get("generated_text") or ""))
        self.runner.checkpoint([item], 0.0, started)  # the engine's time is not measured per item
        self.runner.flush()  # Ray Data gives no last call to flush in
        return {"item": item.to_json()}


def apply(ds: Any, task: StageTask) -> Any:
    """Append the stage to a Ray Data stream of `{"item": json}` rows."""
    from ray.data.llm import build_processor

    processor = build_processor(
        processor_config(task), postprocess=carry, preprocess=Prepare(task),
        preprocess_map_kwargs={"num_cpus": task.cpus},
    )
    return processor(ds).map(Finish(task), num_cpus=task.cpus)
