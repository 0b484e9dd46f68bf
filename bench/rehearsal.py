"""Production-size rehearsal: the production pipelines' detect + track and segment stages at real model size.

Random-weight checkpoints with the production architectures (`annotator models rehearsal`) run on a 720p clip
at the pipelines' own parameters (window 32, the processors' input sizes), after ingest, a served caption
(the project's fake OpenAI-compatible server, as the pipeline would call vLLM) and served phrases. Each stage
runs in its own process (its peak RSS is its own), then the same model calls are made on the bare
transformers models (`bench/replay.py`). Per stage it prints seconds per frame, peak RSS, the overhead ratio
(stage wall time / bare model time) and what a window holds per frame and per object; the last line is
`worst = X`, the largest ratio.

    python bench/rehearsal.py [--frames 4] [--device cpu|cuda] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch
from clips import clip

from annotator import paths
from annotator.config import load_config
from annotator.models import rehearsal
from annotator.pipeline import Pipeline
from annotator.records import VideoItem
from annotator.testing.fake_server import FakeServer, caption_and_phrases

CAPTION = "A man in a red shirt holds a white cup near a green tree while a dog runs on the grass."
PHRASES = ["a man", "a white cup", "a dog"]
PIPELINES = {"detect": "raw_videos.yaml", "track": "raw_videos.yaml", "segment": "raw_videos_sam3.yaml"}
ANCHORS = {"detect": " (published: Grounding DINO-T about 8 FPS)",
           "track": " (published: SAM2.1-L 39.5 FPS on an A100, sam2 README)"}
ROWS = paths.cache_dir() / "bench" / "rehearsal.jsonl"
MODEL_OF = {"detect": "grounding-dino-base", "track": "sam2.1-hiera-large", "segment": "sam3"}


def checkpoints(root: Path) -> dict[str, Path]:
    """The production checkpoints, built once into `root`."""
    out = {}
    for folder in rehearsal.PRODUCTION:
        print(f"checkpoint {folder}: {rehearsal.count_parameters(rehearsal.CHECKPOINTS[folder])[0] / 1e6:.1f}M "
              "parameters", flush=True)
        out[folder] = rehearsal.build(folder, root / folder)
    return out


def overrides(stage: str, models: dict[str, Path], url: str, frames: int, device: str = "auto",
              dtype: str = "float32") -> list[str]:
    sets = [f"stages.ingest.params.max_frames={frames}", f"stages.caption.params.endpoint={url}",
            f"stages.phrases.params.endpoint={url}", f"stages.{stage}.params.model={models[MODEL_OF[stage]]}",
            f"stages.{stage}.params.device={device}", f"stages.{stage}.params.dtype={dtype}"]
    if stage == "track":
        sets.append(f"stages.detect.params.model={models['grounding-dino-base']}")
    return sets


def prepare(models: dict[str, Path], frames: int, work: Path) -> dict[str, Path]:
    """Ingest, caption and phrases for the clip (cheap stages), pickled per production pipeline."""
    video = clip(6)
    out = {}
    with FakeServer(reply=caption_and_phrases(CAPTION, PHRASES)) as server:
        for name in sorted(set(PIPELINES.values())):
            pipeline = Pipeline(load_config(paths.PIPELINES_DIR / name,
                                            overrides("segment" if "sam3" in name else "track", models,
                                                      server.url, frames)))
            item = VideoItem("rehearsal", str(video))
            for built in pipeline.stages:
                if built.name in ("detect", "track", "segment"):
                    break
                built.stage.setup()
                (item,) = built.stage.process([item])
                if item.error is not None:
                    raise SystemExit(f"{built.name}: {item.error.message}")
            out[name] = work / f"{name}.pkl"
            out[name].write_bytes(pickle.dumps(item))
    return out


def run_stage(stage: str, item_file: Path, models: dict[str, Path], frames: int, device: str, dtype: str,
              detected_file: Path) -> dict:
    """One stage in this process: the stage on the item, then the bare replay of its model calls."""
    from replay import DetectorRecorder, SegmenterRecorder, TrackerRecorder

    item: VideoItem = pickle.loads(item_file.read_bytes())
    if stage == "track":
        item = pickle.loads(detected_file.read_bytes())
    pipeline = Pipeline(load_config(paths.PIPELINES_DIR / PIPELINES[stage],
                                    overrides(stage, models, "http://127.0.0.1:9/v1", frames, device, dtype)))
    (built,) = [b for b in pipeline.stages if b.name == stage]
    built.stage.setup()
    loaded = psutil.Process().memory_info().rss
    wrapped = {"detect": ("_detector", DetectorRecorder), "track": ("_tracker", TrackerRecorder),
               "segment": ("_segmenter", SegmenterRecorder)}[stage]
    recorder = wrapped[1](getattr(built.stage, wrapped[0]))
    recorder.warm_up(built.stage.frames(item, [0])[0], [p.norm for p in item.phrases])
    started = time.perf_counter()
    (done,) = built.stage.process([item])
    wall = time.perf_counter() - started
    if done.error is not None:
        raise SystemExit(f"{stage}: {done.error.message}")
    if stage == "detect":
        detected_file.write_bytes(pickle.dumps(done))
    bare = recorder.replay()
    sampled = len(done.info.frame_indices)
    row = {"stage": stage, "model": rehearsal.CHECKPOINTS[MODEL_OF[stage]].name, "frames": sampled,
           "objects": len(done.tracks) if stage != "detect" else len(done.detections),
           "s_per_frame": wall / sampled, "wall_s": wall, "bare_s": bare, "ratio": wall / bare,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
           "loaded_rss_gb": loaded / 1024**3}
    if stage == "detect":
        row["passes"] = len(recorder.passes)
    if torch.cuda.is_available() and device != "cpu":
        row["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1024**3
    held, outputs = getattr(recorder, "held", ({}, 0))
    if held:
        row["session_bytes"], row["session_outputs"] = held, outputs
        model = getattr(built.stage, wrapped[0]).model
        row["weights_bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="sampled frames of the 720p clip (4-8)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--checkpoints", type=Path, default=paths.cache_dir() / "rehearsal")
    parser.add_argument("--stages", default="detect,track,segment", help="a subset (track runs detect first)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = checkpoints(args.checkpoints) if args.one is None else {
        f: args.checkpoints / f for f in rehearsal.PRODUCTION}
    if args.one:
        item_file = args.work / f"{PIPELINES[args.one]}.pkl"
        row = run_stage(args.one, item_file, models, args.frames, args.device, args.dtype,
                        args.work / "detected.pkl")
        print("ROW " + json.dumps(row), flush=True)
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        with ROWS.open("a") as out:  # every measurement kept, for the memory model and the README
            out.write(json.dumps({**row, "device": args.device, "dtype": args.dtype}) + "\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepare(models, args.frames, work)
        rows = []
        wanted = set(args.stages.split(","))
        if "track" in wanted:
            wanted.add("detect")  # track starts from detect's boxes
        for stage in [s for s in ("detect", "track", "segment") if s in wanted]:
            cmd = [sys.executable, __file__, "--one", stage, "--work", str(work), "--frames", str(args.frames),
                   "--device", args.device, "--dtype", args.dtype, "--checkpoints", str(args.checkpoints)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ROW ")]
            if out.returncode != 0 or not lines:
                raise SystemExit(f"{stage} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][4:]))
            r = rows[-1]
            print(f"{stage:8s} {r['model']:34s} {r['frames']} frames {r['objects']:3d} objects  "
                  f"{r['s_per_frame']:7.2f} s/frame  peak RSS {r['peak_rss_gb']:5.1f} GB  "
                  f"stage {r['wall_s']:7.1f} s / bare {r['bare_s']:7.1f} s = {r['ratio']:.3f}", flush=True)
            if "peak_gpu_gb" in r:
                done = r["passes"] if stage == "detect" else r["frames"]
                anchor = ANCHORS.get(stage, "")
                print(f"         GPU peak {r['peak_gpu_gb']:.1f} GB; {done / r['wall_s']:.1f} FPS through the stage, "
                      f"{done / r['bare_s']:.1f} bare{anchor}", flush=True)
            if "session_bytes" in r:
                print(f"         window holds {json.dumps(r['session_bytes'])} for {r['session_outputs']} "
                      "object-frame outputs", flush=True)
    print(f"worst = {max(r['ratio'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
