"""Caption efficiency of `raw_videos.yaml`'s first stages, run as a user runs them: `annotator run` on Ray.

The pipeline is `pipelines/raw_videos.yaml` cut after `phrases`, with its ingest, caption and phrases settings
as they are (pools, batch sizes, `max_concurrency`), its endpoints pointed at a fake OpenAI-compatible server
that answers every request after a fixed latency, in its own process as vLLM would be. Short synthetic clips
keep decoding cheap, so what is measured is how well the executor keeps the captioner fed.

    E = ideal caption time / actual caption time

ideal = ceil(videos / max_concurrency) x latency: every slot busy from the first caption request on;
actual = from the first caption request's arrival to the last caption answer. The server also records the
most caption requests it held at once, which must equal caption's `max_concurrency`. Goal: E >= 0.90.

    .venv/bin/python bench/caption_pipeline.py [--videos 96 --latency 4]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import yaml

from annotator import paths
from annotator.testing.fake_server import FakeServer, caption_and_phrases

sys.path.insert(0, str(Path(__file__).parent))
from clips import clip

CAPTION = "a red square slides over a colour gradient"
LAST_STAGE = "phrases"


def serve(latency: float, pipe: Connection) -> None:
    """The fake server in its own process; reports each answered caption request's (arrival, answer) times."""
    server = FakeServer(latency_s=latency, reply=caption_and_phrases(CAPTION, ["a red square", "a colour gradient"]))
    pipe.send(server.url)
    pipe.recv()
    spans = [(r["time"], r["answered"]) for r in server.requests
             if "response_format" not in r["body"] and "answered" in r]  # phrase requests carry a JSON schema
    pipe.send((spans, server.max_in_flight))
    server.close()


def peak(spans: list[tuple[float, float]]) -> int:
    """The most spans open at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def pipeline(url: str, out: Path) -> Path:
    """raw_videos.yaml up to phrases, endpoints pointed at the fake server."""
    config = yaml.safe_load((paths.PROJECT_ROOT / "pipelines" / "raw_videos.yaml").read_text())
    names = [s["stage"] for s in config["stages"]]
    config["stages"] = config["stages"][: names.index(LAST_STAGE) + 1]
    for stage in config["stages"]:
        if "endpoint" in stage.get("params", {}):
            stage["params"]["endpoint"] = url
    config["name"] = "caption_pipeline_bench"
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=96)
    parser.add_argument("--latency", type=float, default=4.0, help="server seconds per request")
    parser.add_argument("--seconds", type=int, default=2, help="clip length")
    args = parser.parse_args()
    source = clip(args.seconds, 320, 240)
    ours, theirs = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(args.latency, theirs), daemon=True)
    server.start()
    url = ours.recv()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = work / "videos"
        videos.mkdir()
        for i in range(args.videos):
            shutil.copy(source, videos / f"clip{i:05d}.mp4")
        config = pipeline(url, work)
        settings = yaml.safe_load(config.read_text())["stages"]
        caption = next(s for s in settings if s["stage"] == "caption")
        concurrency = caption["params"]["max_concurrency"]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "annotator.cli", "run", str(config), "--input", str(videos),
                               "--output", str(work / "run")], capture_output=True, text=True)
        wall = time.perf_counter() - started
        ours.send("done")
        spans, server_peak = ours.recv()
        server.join(5)
        if done.returncode != 0:
            sys.exit(f"annotator run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    actual = max(end for _, end in spans) - min(start for start, _ in spans)
    ideal = math.ceil(args.videos / concurrency) * args.latency
    for s in settings:
        print(f"  {s['stage']}: concurrency {s.get('concurrency', 1)}, batch {s.get('batch_size', 'default')}, "
              f"params {s.get('params', {})}")
    print(f"videos={args.videos} latency={args.latency}s caption requests={len(spans)} run wall {wall:.1f}s")
    print(f"caption: ideal {ideal:.1f}s, actual {actual:.1f}s; peak caption requests in flight {peak(spans)} "
          f"(configured {concurrency}); peak requests in flight, all stages {server_peak}")
    print(f"E = {ideal / actual:.3f}")


if __name__ == "__main__":
    main()
