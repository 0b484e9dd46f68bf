"""Training on a real export: it overfits four samples on CPU, resumes exactly, and the GCG evaluator tells a
trained model from an untrained one (and gives 1.0 on the ground truth itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from annotator.cli import app
from annotator.train.data import load_records
from annotator.train.evaluate import evaluate
from annotator.train.loop import checkpoints, train
from tests.train.conftest import tiny_config

pytestmark = pytest.mark.slow


def test_overfits_four_samples_and_the_evaluator_sees_it(dataset_run: Path, tmp_path: Path) -> None:
    config = tiny_config(dataset_run, tmp_path / "out")
    rows = train(config)
    first, last = rows[:4], rows[-20:]
    assert np.mean([r["dice"] for r in last]) <= 0.5 * np.mean([r["dice"] for r in first]), "Dice halves"
    assert np.mean([r["lm"] for r in last]) < np.mean([r["lm"] for r in first]), "LM loss falls"
    (checkpoint,) = checkpoints(tmp_path / "out")[-1:]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(json.dumps(config.model_dump()))
    runner = CliRunner()
    scores = {}
    for name, extra in (("trained", ["--checkpoint", str(checkpoint)]), ("untrained", [])):
        out = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["predict", str(config_file), "--answers", "dataset", "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["evaluate", "--predictions", str(out), "--dataset", str(dataset_run)])
        assert result.exit_code == 0, result.output
        scores[name] = json.loads(result.output.strip().splitlines()[-1])
    assert scores["trained"]["mIoU"] > 0.5
    assert scores["untrained"]["mIoU"] < scores["trained"]["mIoU"] - 0.2, scores


def test_resume_continues_the_same_loss_curve(dataset_run: Path, tmp_path: Path) -> None:
    whole = train(tiny_config(dataset_run, tmp_path / "whole", steps=12, save_every=6))
    stopped = tiny_config(dataset_run, tmp_path / "stopped", steps=12, save_every=6)
    head = train(stopped, stop_after=6)
    assert [r["step"] for r in head] == list(range(1, 7))
    tail = train(stopped, resume=True)
    assert [r["step"] for r in tail] == list(range(7, 13)), "the step counter continues"
    for a, b in zip(whole, head + tail, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5), (a, b)
    logged = (tmp_path / "stopped" / "log.csv").read_text().splitlines()
    assert len(logged) == 13, "one log row per step across both invocations"


def test_ground_truth_as_predictions_scores_one(dataset_run: Path, tmp_path: Path, tiny_bert: Path) -> None:
    lines = []
    for record in load_records(str(dataset_run)):
        lines.append(json.dumps({
            "video_id": record.qa["video_id"], "qa_id": record.qa["qa_id"], "answer": record.qa["answer"],
            "objects": [{"phrase": o["phrase"], "frame_indices": o["frame_indices"], "mask_rles": o["mask_rles"],
                         "score": 1.0} for o in record.objects]}))
    path = tmp_path / "truth.jsonl"
    path.write_text("\n".join(lines))
    result = evaluate(path, str(dataset_run))
    assert (result["mIoU"], result["recall"], result["AP50"]) == (1.0, 1.0, 1.0)
    assert result["objects"] >= 8 and result["samples"] == 4
    for protocol in ("videoglamm", "glamm"):
        output = CliRunner().invoke(app, ["evaluate", "--predictions", str(path), "--dataset", str(dataset_run),
                                          "--protocol", protocol, "--text-model", str(tiny_bert)]).output
        scores = json.loads(output.strip().splitlines()[-1])
        assert (scores["protocol"], scores["mIoU"], scores["recall"], scores["samples"]) == (protocol, 1.0, 1.0, 4)
        assert scores.get("AP50", 1.0) == 1.0 and ("AP50" in scores) == (protocol == "glamm")
    bad = CliRunner().invoke(app, ["evaluate", "--predictions", str(path), "--dataset", str(dataset_run),
                                   "--protocol", "glamm", "--text-model", str(tmp_path / "no-model")])
    assert bad.exit_code == 2 and "--text-model" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_glamm_style_predictions_are_scored_too(dataset_run: Path, tmp_path: Path) -> None:
    entries = []
    for record in load_records(str(dataset_run)):
        entries.append({"video_id": record.qa["video_id"], "caption": record.qa["answer"],
                        "phrases": [o["phrase"] for o in record.objects],
                        "pred_masks": [[{"size": [o["height"], o["width"]], "counts": rle} for rle in o["mask_rles"]]
                                       for o in record.objects],
                        "frame_indices": record.objects[0]["frame_indices"]})
    path = tmp_path / "glamm.json"
    path.write_text(json.dumps(entries))
    result = evaluate(path, str(dataset_run))
    assert (result["mIoU"], result["recall"], result["AP50"], result["samples"]) == (1.0, 1.0, 1.0, 4)
