"""`annotator train`, `annotator predict`, `annotator evaluate`: the trainer's commands, registered on the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from annotator.config import ConfigError
from annotator.terminal import console
from annotator.terminal import fail as _fail


def train(
    config_file: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="trainer config (configs/train/)")],
    resume: Annotated[bool, typer.Option("--resume", help="continue from the newest checkpoint")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="run under Ray Train (ray.num_workers workers)")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="override a config key: a.b=value")] = None,
) -> None:
    """Train the grounding model on a run's dataset; checkpoints in train.output/checkpoints/."""
    from annotator.train.config import load_train_config

    try:
        config = load_train_config(config_file, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))
        return
    from annotator import storage

    if not storage.exists(storage.join(config.data.run_dir, "manifest.json")):
        _fail(f"{config_file}: data.run_dir: {config.data.run_dir} is not a run directory (no manifest.json)")
    if ray:
        from annotator.train.ray_train import train_on_ray

        try:
            result = train_on_ray(config, resume=resume)
        except ValueError as exc:
            _fail(str(exc))
            return
        console.print(f"done: {result.metrics}; checkpoint {result.checkpoint.path if result.checkpoint else None}",
                      highlight=False)
        return
    from annotator.train.loop import train as run

    def show(row: dict[str, float]) -> None:
        console.print(f"step {int(row['step'])}/{config.train.steps}  loss {row['loss']:.4f}  lm {row['lm']:.4f}  "
                      f"bce {row['bce']:.4f}  dice {row['dice']:.4f}  ({row['seconds']:.0f}s)", highlight=False)

    rows = run(config, resume=resume, on_log=show)
    console.print(f"checkpoints: {Path(config.train.output) / 'checkpoints'}; log: "
                  f"{Path(config.train.output) / 'log.csv'}" + ("" if rows else " (already at train.steps)"),
                  highlight=False)


def predict(
    config_file: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="the config the model was trained with")],
    checkpoint: Annotated[str | None, typer.Option(help="checkpoint folder; none: the untrained model")] = None,
    data: Annotated[str | None, typer.Option(help="run directory to predict for (default: data.run_dir)")] = None,
    out: Annotated[Path, typer.Option(help="predictions file (JSON lines)")] = Path("predictions.jsonl"),
    answers: Annotated[str, typer.Option(help="generate (GCG) or dataset (teacher-forced answers)")] = "generate",
    limit: Annotated[int | None, typer.Option(help="the first N triplets only")] = None,
) -> None:
    """Answer and masks for each QA triplet of a run, as JSON lines (see annotator/train/predict.py)."""
    from annotator.train.config import load_train_config
    from annotator.train.loop import load_checkpoint
    from annotator.train.model import GroundingModel
    from annotator.train.predict import predict as run

    if answers not in ("generate", "dataset"):
        _fail(f"--answers {answers}: use generate or dataset")
    try:
        config = load_train_config(config_file)
    except ConfigError as exc:
        _fail(str(exc))
        return
    model = GroundingModel(config.model.build())
    if checkpoint:
        if not (Path(checkpoint) / "trainable.pt").exists():
            _fail(f"--checkpoint {checkpoint}: not a checkpoint folder (no trainable.pt)")
        load_checkpoint(Path(checkpoint), model)
    path = run(model, data or config.data.run_dir, out, config.data.num_frames, config.data.max_phrases,
               config.data.seed, limit, config.predict.get("max_new_tokens", 64), answers)
    console.print(f"predictions: {path}", highlight=False)


def evaluate(
    predictions: Annotated[Path | None, typer.Option(help="predictions file (JSON lines, or GLaMM-style JSON)")] = None,
    dataset: Annotated[str | None, typer.Option(help="the run directory whose dataset is the ground truth")] = None,
    protocol: Annotated[str, typer.Option(help="annotator (default, penalises missed objects), videoglamm or "
                                               "glamm: see the README's Evaluation table")] = "annotator",
    text_model: Annotated[str, typer.Option(help="checkpoint (hub id or folder) for phrase similarity "
                                                 "(videoglamm, glamm)")] = "bert-base-uncased",
    review: Annotated[str | None, typer.Option(metavar="RUN_DIR", help="instead: the machine's accuracy measured "
                                                                        "by the run's human review decisions")] = None,
) -> None:
    """GCG metrics (mIoU, recall, AP50, CIDEr, METEOR) under a protocol, or machine-vs-review agreement; the last
    line printed is one JSON object."""
    if review is not None:
        from annotator.review.agreement import compute

        try:
            figures = compute(review).to_dict()
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
            return
        console.print(json.dumps(figures), highlight=False, soft_wrap=True)
        return
    from annotator.train.evaluate import evaluate as run

    if predictions is None or dataset is None:
        _fail("evaluate needs --predictions FILE and --dataset RUN_DIR (or --review RUN_DIR)")
        return
    if not predictions.exists():
        _fail(f"--predictions {predictions}: no such file")
    try:
        result = run(predictions, dataset, protocol, text_model)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    for key, value in result.items():
        if key != "failures":
            console.print(f"{key:>8}: {value}", highlight=False)
    for failure in result.get("failures", []):
        console.print(f"  failed (scored 0): {failure}", highlight=False)
    console.print(json.dumps(result), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(predict)
    app.command()(evaluate)
