"""The training loader stays flat in the size of the dataset: peak RSS and start-up time of the loader for
N = 10,000 against N = 1,000 videos, and samples/s with 2 DataLoader workers.

A synthetic run directory in the real layout is written for each N: the fake stages' items (4 frames at
160x90, their masks and QA triplets) as export parts of 64 videos, the last stage's index rows, the input set
and a frame store of JPEG files. Each measure runs in a fresh process so peaks do not mix, `--repeat` times
with the sizes alternating; the figures are medians:
- start-up: from building the loader's index (`StreamingRecords`) over the run directory to the first batch
  in hand (workers started, first samples built); the index's own share is printed beside it;
- peak RSS of the training process (index, the model's processors, 128 samples drawn through 2 workers);
  the growth above torch and the processors, and the workers' own peak, are printed beside it, and all for
  the whole export read into memory (`load_records`, the loader before streaming) for comparison;
- samples/s: samples built per second by 2 workers (frames read from the store, masks decoded for the drawn
  frames, the tiny models' processors), batches of 2, after the first batch.

    .venv/bin/python bench/train_loader.py [--small 1000] [--large 10000] [--repeat 3]

The last line is `ratio = X`, the RSS ratio (goal <= 1.2); the start-up ratio's goal is <= 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_PART = 64


def write_run(root: str, videos: int) -> None:
    """A finished run directory of `videos` fake videos (see the module docstring)."""
    import numpy as np

    from annotator import frames, storage
    from annotator.export.parquet import tables
    from annotator.records import VideoItem
    from annotator.rundir import RunDir
    from annotator.stage import PerItemStage
    from annotator.stages.assemble import AssembleStage
    from annotator.stages.link import LinkStage
    from annotator.testing import fake_stages as fakes

    stages: list[PerItemStage] = [fakes.FakeIngest(frames=4, keyframe_every=2, width=160, height=90),
                                  fakes.FakeCaption(cost_s=0), fakes.FakePhrases(), fakes.FakeDetect(cost_s=0),
                                  fakes.FakeTrack(cost_s=0), LinkStage(),
                                  AssembleStage(questions=["Describe the video and segment what you mention."])]
    for stage in stages:
        stage.setup()
    run = RunDir(root)
    run.write_manifest({"pipeline": {"name": "bench"}, "run_id": "bench", "stages": [{"stage": "assemble"}],
                        "fingerprints": {"assemble": "fp"}, "finished": True})
    jpeg = frames.encode_jpeg(np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8), 90)
    inputs = []
    for start in range(0, videos, PER_PART):
        name = f"part-bench-{start // PER_PART:06d}.parquet"
        items = []
        for n in range(start, min(start + PER_PART, videos)):
            item = VideoItem(f"v{n:07d}", f"/fake/v{n:07d}.mp4")
            for stage in stages:
                item = stage.process_item(item)
            items.append(item)
            assert item.info is not None
            for index in item.info.frame_indices:
                Path(frames.frame_path(root, item.video_id, index)).parent.mkdir(parents=True, exist_ok=True)
                Path(frames.frame_path(root, item.video_id, index)).write_bytes(jpeg)
            inputs.append({"video_id": item.video_id, "path": item.path, "status": "queued", "reason": ""})
        for table, data in tables(items, "bench", "bench", {"assemble": "fp"}).items():
            storage.write_table(run.export_part(table, name), data)
        run.write_index("assemble", name, [
            {"video_id": it.video_id, "path": it.path, "stage": "assemble", "fingerprint": "fp", "shard": name,
             "status": "ok", "error_type": "", "reason": "", "seconds": 0.0, "busy": 0.0, "node": "n",
             "worker": "w", "finished": float(n), "counters": [], "generation": 1, "seq": n}
            for n, it in enumerate(items)])
    run.write_inputs(inputs)


def child(root: str, draw: int, eager: bool) -> None:
    """The loader as the trainer builds it, with the model's processors (not the model: its weights are no
    part of the loader's memory)."""
    import torch
    from transformers import AutoProcessor, Sam2Processor

    from annotator.models import refs
    from annotator.train.config import TrainConfig
    from annotator.train.data import SPECIAL, GcgDataset, load_records
    from annotator.train.loop import EpochPermutation, loader
    from annotator.train.stream import StreamingRecords

    torch.set_num_threads(1)
    config = TrainConfig.model_validate({
        "data": {"run_dir": root, "num_frames": 2, "max_phrases": 4, "num_workers": 2},
        "train": {"output": str(Path(root) / "out"), "batch_size": 2}})
    processor = AutoProcessor.from_pretrained(refs.resolve("tiny:qwen2_vl"))
    processor.tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
    sam_processor = Sam2Processor.from_pretrained(refs.resolve("tiny:sam2_video"))
    before = _rss_now_mib()
    started = time.perf_counter()
    records = load_records(root) if eager else StreamingRecords(root)
    startup = time.perf_counter() - started
    dataset = GcgDataset(root, processor, sam_processor, 2, 4, 0, records, cache=0)
    batches = loader(dataset, EpochPermutation(len(dataset), 0), config, processor.tokenizer.pad_token_id)
    drawn, first = 0, None
    for batch in batches:
        drawn += len(batch["names"])
        if first is None:
            first = (time.perf_counter(), drawn)
            to_first = first[0] - started
        if drawn >= draw:
            break
    assert first is not None
    rate = (drawn - first[1]) / (time.perf_counter() - first[0])
    del batches  # stops the workers, so their peak is in RUSAGE_CHILDREN
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"samples": len(records), "index_s": startup, "startup_s": to_first, "samples_per_s": rate,
                      "peak_mib": peak, "own_mib": peak - before,
                      "workers_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def _rss_now_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(root: str, draw: int, eager: bool = False) -> dict:
    extra = ["--eager"] if eager else []
    out = subprocess.run([sys.executable, __file__, "--child", root, "--draw", str(draw), *extra], capture_output=True,
                         text=True, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--draw", type=int, default=128, help="samples drawn through the loader per size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size and loader; medians are printed")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.draw, args.eager)
        return
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("ANNOTATOR_CACHE", str(Path(tmp) / "models"))
        from annotator.models import refs

        refs.resolve("tiny:qwen2_vl"), refs.resolve("tiny:sam2_video")  # built here, not in a measured child
        roots = {}
        for n in (args.small, args.large):
            roots[n] = str(Path(tmp) / f"run-{n}")
            started = time.perf_counter()
            write_run(roots[n], n)
            print(f"wrote a synthetic run of {n} videos in {time.perf_counter() - started:.0f} s", flush=True)
        runs: dict[tuple[int, bool], list[dict]] = {}
        for _ in range(args.repeat):  # the sizes alternate, so a noisy moment hits both
            for n in (args.small, args.large):
                for eager in (False, True):
                    runs.setdefault((n, eager), []).append(measure(roots[n], args.draw, eager))
        got = {key: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for key, rows in runs.items()}
        for n in (args.small, args.large):
            g, e = got[(n, False)], got[(n, True)]
            print(f"N = {n}: {g['samples']:.0f} samples, start-up {g['startup_s']:.2f} s (index {g['index_s']:.2f} s), "
                  f"peak RSS {g['peak_mib']:.0f} MiB ({g['own_mib']:.0f} MiB above torch and the processors; workers "
                  f"{g['workers_peak_mib']:.0f} MiB), {g['samples_per_s']:.1f} samples/s with 2 workers", flush=True)
            print(f"    for comparison, the whole export in memory (load_records): start-up {e['startup_s']:.2f} s "
                  f"(index {e['index_s']:.2f} s), peak RSS {e['peak_mib']:.0f} MiB ({e['own_mib']:.0f} MiB above; "
                  f"workers {e['workers_peak_mib']:.0f} MiB)", flush=True)
    small, large = got[(args.small, False)], got[(args.large, False)]
    print(f"start-up ratio = {large['startup_s'] / small['startup_s']:.2f} (goal <= 2); the loader's own memory "
          f"{small['own_mib']:.0f} -> {large['own_mib']:.0f} MiB")
    print(f"ratio = {large['peak_mib'] / small['peak_mib']:.3f}")


if __name__ == "__main__":
    main()
