import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from annotator import paths
from annotator.cli import app
from annotator.config import ConfigError, load_config
from annotator.testing.fake_server import FakeServer
from tests.helpers import endpoint_sets

DEMO = paths.PIPELINES_DIR / "demo.yaml"
RAW = paths.PIPELINES_DIR / "raw_videos.yaml"


def edited(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    edit(data)
    out = tmp_path / "p.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def stage(data: dict, name: str) -> dict:
    return next(s for s in data["stages"] if s["stage"] == name)


def test_shipped_pipelines_validate() -> None:
    assert [s.stage for s in load_config(DEMO).stages][:2] == ["ingest", "caption"]
    assert load_config(RAW).executor.kind == "ray"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: stage(d, "detect")["params"].update(box_treshold=0.3),
         "stages.detect.params.box_treshold: unknown key"),
        (lambda d: d.update(exporter={}), "exporter: unknown key"),
        (lambda d: stage(d, "ingest")["params"].update(max_frames="many"), "stages.ingest.params.max_frames"),
        (lambda d: stage(d, "track")["params"].update(model="./models/no-such-sam2"),
         "stages.track.params.model: path ./models/no-such-sam2 does not exist"),
        (lambda d: stage(d, "caption")["params"].update(prompt="prompts/missing.md"), "prompts/missing.md"),
        (lambda d: stage(d, "caption").update(concurrency=0),
         "stages.caption.concurrency: expected a number of actors (1 or more), auto, or {min: a, max: b}; got 0"),
        (lambda d: stage(d, "detect").update(concurrency="many"), "stages.detect.concurrency: expected a number"),
        (lambda d: stage(d, "detect").update(concurrency={"min": 4, "max": 2}),
         "stages.detect.concurrency: max (2) is below min (4)"),
        (lambda d: stage(d, "detect").update(concurrency={"mn": 1}), "stages.detect.concurrency: mn:"),
        (lambda d: stage(d, "caption")["params"].update(prompt="prompts/gcg_questions.md"),
         "prompts/gcg_questions.md: prompt templates are versioned"),
        (lambda d: stage(d, "assemble").update(params={"questions": "prompts/caption.v1.md"}),
         "prompts/caption.v1.md: expected a markdown list"),
        (lambda d: stage(d, "phrases")["params"].update(backend="llm", endpoint="http://127.0.0.1:9/v1", model="m",
                                                         prompt="prompts/caption.v1.md"),
         "prompts/caption.v1.md: the template must contain {caption}"),
    ],
)
def test_mistakes_give_one_pointed_line(tmp_path: Path, edit, expected: str) -> None:
    path = edited(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path)) and expected in message
    assert message.count("got ") <= 1  # the rejected value is named once (it read `got 0 (got 0)`)


def test_cli_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = edited(tmp_path, lambda d: stage(d, "detect")["params"].update(box_treshold=0.3))
    result = CliRunner().invoke(app, ["run", str(bad), "--input", str(tmp_path), "--output", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "stages.detect.params.box_treshold" in lines[0]
    assert "Traceback" not in result.output


def test_concurrency_auto_or_bounds_reach_the_executor() -> None:
    from annotator.pipeline import Pipeline

    config = load_config(DEMO, ["stages.detect.concurrency=auto", "stages.track.concurrency={min: 2, max: 6}",
                                "stages.caption.concurrency=3"])
    pipeline = Pipeline(config, str(DEMO))
    plan = {row["stage"]: row["concurrency"] for row in pipeline.describe()}
    assert (plan["detect"], plan["track"], plan["caption"]) == ("auto", "2..6", 3)
    tasks = {t.stage.name: t for t in pipeline.tasks("/tmp/run")}
    assert (tasks["detect"].scale, tasks["detect"].concurrency) == ((1, None), 1)  # starts at its minimum
    assert (tasks["track"].scale, tasks["track"].concurrency) == ((2, 6), 2)
    assert (tasks["caption"].scale, tasks["caption"].concurrency) == (None, 3)


def test_set_overrides_a_stage_param() -> None:
    config = load_config(DEMO, ["stages.detect.params.top_k=5", "executor.kind=local"])
    assert config.stages[3].params["top_k"] == 5 and config.executor.kind == "local"
    with pytest.raises(ConfigError, match="no stage named 'detector'"):
        load_config(DEMO, ["stages.detector.params.top_k=5"])


def test_dry_run_prints_models_and_loads_none(tmp_path: Path) -> None:
    for mod in [m for m in sys.modules if m.startswith("transformers.models.")]:
        sys.modules.pop(mod)
    with FakeServer() as server:  # the dry run asks the served stages' endpoints for their models
        result = CliRunner().invoke(app, ["run", str(RAW), "--input", str(paths.SAMPLES_DIR), "--output",
                                          str(tmp_path / "dry"), "--dry-run", *endpoint_sets(RAW, server.url)],
                                    terminal_width=200)
    assert result.exit_code == 0, result.output
    for expected in ("Qwen/Qwen2.5-VL-7B-Instruct", "IDEA-Research/grounding-dino-base",
                     "facebook/sam2.1-hiera-large", "config valid"):
        assert expected in result.output
    for stage_name in ("ingest", "caption", "phrases", "detect", "track", "link", "assemble"):
        assert stage_name in result.output
    assert not any(m.startswith(("transformers.models.sam2_video", "transformers.models.grounding_dino"))
                   for m in sys.modules)
    assert not (tmp_path / "dry").exists()


def test_dry_run_of_the_sam3_pipeline_names_facebook_sam3_and_loads_nothing(tmp_path: Path) -> None:
    for mod in [m for m in sys.modules if m.startswith("transformers.models.")]:
        sys.modules.pop(mod)
    pipeline = paths.PIPELINES_DIR / "raw_videos_sam3.yaml"
    with FakeServer() as server:
        result = CliRunner().invoke(app, ["run", str(pipeline), "--input", str(paths.SAMPLES_DIR), "--output",
                                          str(tmp_path / "dry"), "--dry-run", *endpoint_sets(pipeline, server.url)],
                                    terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "segment   model=facebook/sam3" in result.output and "config valid" in result.output
    assert "detect" not in result.output and "track " not in result.output
    assert not any(m.startswith("transformers.models.sam3") for m in sys.modules)
    assert not (tmp_path / "dry").exists()


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda d: stage(d, "ingest")["params"].update(max_frames="many"), "stages.ingest.params.max_frames"),
        (lambda d: stage(d, "track")["params"].update(model="./nowhere/sam2"), "./nowhere/sam2"),
    ],
)
def test_cli_wrong_type_and_missing_model_exit_2(tmp_path: Path, edit, names: str) -> None:
    bad = edited(tmp_path, edit)
    result = CliRunner().invoke(app, ["run", str(bad), "--input", str(tmp_path), "--output", str(tmp_path / "r"),
                                      "--dry-run"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and names in lines[0]


@pytest.mark.parametrize("name", ["ytvis_masks", "mevis_refs", "refytvos_refs", "vidstg_boxes", "hcstvg_boxes",
                                  "anet_entities", "images"])
def test_every_source_pipeline_validates_and_shows_its_plan(name: str, tmp_path: Path) -> None:
    pipeline = paths.PIPELINES_DIR / f"{name}.yaml"
    with FakeServer() as server:
        result = CliRunner().invoke(app, ["run", str(pipeline), "--output", str(tmp_path / "dry"), "--dry-run",
                                          *endpoint_sets(pipeline, server.url)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("  source") and "config valid" in result.output
    assert "inputs: " in result.output and not (tmp_path / "dry").exists()


@pytest.mark.parametrize(("pipeline", "models"), [
    ("cpu_small.yaml", ("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "IDEA-Research/grounding-dino-tiny",
                        "facebook/sam2.1-hiera-tiny")),
    ("single_gpu.yaml", ("Qwen/Qwen2.5-VL-3B-Instruct", "IDEA-Research/grounding-dino-base",
                         "facebook/sam2.1-hiera-large")),
])
def test_first_real_run_pipelines_validate_without_a_server(pipeline: str, models: tuple[str, ...],
                                                            tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(paths.PIPELINES_DIR / pipeline), "--input", str(paths.SAMPLES_DIR),
                                      "--output", str(tmp_path / "dry"), "--dry-run"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "config valid" in result.output and all(m in result.output for m in models)
    config = load_config(paths.PIPELINES_DIR / pipeline)
    served = [s.stage for s in config.stages if (s.params or {}).get("endpoint") or
              (s.params or {}).get("backend") in ("openai", "llm", "vllm-engine")]
    assert served == [], "no stage needs a server"
    assert not (tmp_path / "dry").exists()


def test_an_error_shows_its_path_as_it_is(tmp_path: Path) -> None:
    # a file name with brackets is Rich markup: "[red]" vanished from the message, and "[/b]" raised MarkupError
    missing = tmp_path / "clip [red] [" / "b].mp4"
    result = CliRunner().invoke(app, ["run", str(DEMO), "--input", str(missing), "--output", str(tmp_path / "r"),
                                      "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: input {missing} does not exist: pass video files, folders of videos or folders of "
                     "frames"]
