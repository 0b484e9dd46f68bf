"""`caption.backend: vllm-engine`: the ray.data.llm processor built from the stage, and the glue around it.

vLLM itself needs a GPU; on CPU the test checks what is built (processor config, lazy dataset) and runs the
CPU halves of the chain (request preparation, answer handling + checkpoint) on real items.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotator import prompts
from annotator.config import ConfigError
from annotator.executors import vllm_engine
from annotator.executors.runner import StageTask
from annotator.records import VideoItem
from annotator.rundir import RunDir
from annotator.stages.caption import QA_SCHEMA, CaptionStage
from annotator.stages.ingest import IngestStage
from tests.helpers import demo_pipeline


def engine_task(tiny_models: dict[str, str], run_root: Path) -> StageTask:
    stage = CaptionStage(backend="vllm-engine", model=tiny_models["qwen2_vl"], prompt="prompts/qa.v1.md",
                         reply="qa", num_frames=4, max_new_tokens=64, engine_kwargs={"max_model_len": 2048})
    return StageTask(stage=stage, fingerprint="fp1", run_root=str(run_root), concurrency=2, batch_size=4,
                     cpus=0.5, gpus=1.0)


def test_processor_config_comes_from_the_stage(tiny_models: dict[str, str], tmp_path: Path, ray_cluster) -> None:
    from ray.data.llm import vLLMEngineProcessorConfig

    task = engine_task(tiny_models, tmp_path)
    config = vllm_engine.processor_config(task)
    assert isinstance(config, vLLMEngineProcessorConfig)
    assert config.model_source == tiny_models["qwen2_vl"]
    assert (config.batch_size, config.concurrency) == (4, 2)
    assert config.engine_kwargs["max_model_len"] == 2048
    assert config.should_continue_on_error
    assert config.prepare_multimodal_stage == {"enabled": True}
    ds = vllm_engine.apply(ray_cluster.data.from_items([{"item": VideoItem("v", "/v.mp4").to_json()}]), task)
    assert isinstance(ds, ray_cluster.data.Dataset)  # built lazily; running it needs vLLM and a GPU


def test_requests_and_answers_around_the_engine(tiny_models: dict[str, str], clips: dict[str, Path],
                                                tmp_path: Path) -> None:
    task = engine_task(tiny_models, tmp_path)
    good, broken = IngestStage(target_fps=8, max_frames=6).process(
        [VideoItem("a", str(clips["a"])), VideoItem("broken", str(clips["broken"]))])
    assert good.error is None and broken.error is not None
    prepare = vllm_engine.Prepare(task)
    row = prepare({"item": good.to_json()})
    parts = row["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 4 + ["text"]
    assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in parts[:4])
    assert parts[-1]["text"] == prompts.load("prompts/qa.v1.md").text
    assert row["sampling_params"] == {"max_tokens": 64, "temperature": 0.0, "structured_outputs": {"json": QA_SCHEMA}}
    skipped = prepare({"item": broken.to_json()})
    assert skipped["skip"] and skipped["sampling_params"] == {**row["sampling_params"], "max_tokens": 1}

    finish = vllm_engine.Finish(task)
    answer = json.dumps({"question": "What does the rabbit do?", "answer": "A rabbit sits on the grass."})
    done = VideoItem.from_json(finish(vllm_engine.carry({**row, "generated_text": answer}))["item"])
    assert (done.question, done.caption, done.error) == ("What does the rabbit do?", "A rabbit sits on the grass.",
                                                        None)
    assert done.stages_done == ["caption"]
    run = RunDir(str(tmp_path))
    indexed = run.latest("caption", "fp1")["a"]
    assert indexed["status"] == "ok"
    cached = run.load_item("a", good.path, [("caption", CaptionStage.outputs, indexed["shard"])])
    assert cached.caption == "A rabbit sits on the grass."
    failed = VideoItem.from_json(finish({**row, "__inference_error__": "CUDA out of memory"})["item"])
    assert failed.error is not None and "CUDA out of memory" in failed.error.message
    passed = VideoItem.from_json(finish(vllm_engine.carry({**skipped, "generated_text": "x"}))["item"])
    assert passed.error == broken.error and passed.caption is None


def test_engine_backend_needs_the_ray_executor(tiny_models: dict[str, str], clips: dict[str, Path],
                                               tmp_path: Path) -> None:
    pipeline = demo_pipeline("stages.caption.params.backend=vllm-engine")
    with pytest.raises(ConfigError, match="use the ray executor"):
        pipeline.run([clips["a"]], tmp_path / "run", executor="local", show_progress=False)
    assert not (tmp_path / "run").exists(), "refused before any work"
    pipeline.check_executor("ray")


def test_cpu_halves_survive_ray_data_blocks(tiny_models: dict[str, str], clips: dict[str, Path], tmp_path: Path,
                                           ray_cluster) -> None:
    """Skip rows and real rows share one block: their columns must be Arrow-compatible, as ray.data.llm needs."""
    task = engine_task(tiny_models, tmp_path)
    items = IngestStage(target_fps=8, max_frames=6).process(
        [VideoItem("a", str(clips["a"])), VideoItem("broken", str(clips["broken"])), VideoItem("b", str(clips["b"]))])
    answer = json.dumps({"question": "Q?", "answer": "A rabbit."})

    def engine(row: dict) -> dict:
        """Stands in for vLLM plus ray.data.llm's postprocess wrapper: a failed row skips `carry` and keeps
        every column with `__inference_error__` set; the others go through `carry`."""
        texts = [p["text"] for p in row["messages"][0]["content"] if p["type"] == "text"]
        assert len(texts) == 1 and row["sampling_params"]["max_tokens"] in (1, 64)
        if VideoItem.from_json(row["item"]).video_id == "b":
            return {**row, "__inference_error__": "prompt too long"}
        return {**vllm_engine.carry({**row, "generated_text": answer}), "__inference_error__": ""}

    ds = ray_cluster.data.from_items([{"item": it.to_json()} for it in items], override_num_blocks=1)
    prepared = ds.map(vllm_engine.Prepare(task))
    schema = prepared.schema()
    types = {name: str(t) for name, t in zip(schema.names, schema.types, strict=True)}
    assert types["messages"].startswith("list<item: struct<role: string, content: list<"), "Arrow, not pickled"
    assert types["sampling_params"].startswith("struct<max_tokens: int64")
    rows = prepared.map(engine).map(vllm_engine.Finish(task))
    done = {it.video_id: it for it in (VideoItem.from_json(r["item"]) for r in rows.take_all())}
    assert (done["a"].caption, done["a"].question, done["a"].error) == ("A rabbit.", "Q?", None)
    assert done["b"].caption is None and "prompt too long" in done["b"].error.message
    assert done["broken"].error is not None and done["broken"].error.stage == "ingest"
    index = RunDir(str(tmp_path)).latest("caption", "fp1")
    assert {v: r["status"] for v, r in index.items()} == {"a": "ok", "b": "error"}, "the broken video never got here"
