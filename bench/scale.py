"""Bookkeeping at scale: what a run's own machinery costs per video, with zero-cost fake models.

The registered fake flow (`tests/fake_flow.py`: fake ingest, caption, phrases, detect, track; real link and
assemble) runs through `Pipeline.run`, the CLI's code path, over N copies of one tiny clip (hard links; the fake
ingest never opens them, the exports that draw frames decode them), on local disk or, with `--s3`, with inputs
and run directory on an S3 server (moto in its own process on 127.0.0.1). Each measure runs in its own process,
so peaks do not mix. One line per measure with its goal, then `worst = R`, the largest measured/goal ratio
(R <= 1.0: every goal met):

- index and shard files per stage <= N / 100 + 4 x workers (after the run, before nothing else touched it);
- `annotator status` of a killed, uncompacted run <= 0.1 ms a video: the command in its own process, timed from
  after its imports and start-up (the process's whole time is printed too: start-up is the same at any N); the run
  is SIGKILLed once half its videos are exported;
- resume scan of that run (what `Pipeline.run` does before it admits a video: every stage's index compacted, then
  the work left found from them) <= 0.2 ms a video locally, 3 ms on S3;
- driver peak RSS at N over N / 10 <= 1.25;
- scheduler and bookkeeping overhead <= 2 ms a video locally: the run's wall time, less the time the fake models
  spent in their own calls (their index rows' `seconds`: the fake tracker draws and encodes real masks), over N;
- export peak RSS at N / 10 over N / 100 <= 1.3, for every format.

    .venv/bin/python bench/scale.py --videos 10000 [--s3] [--executor ray]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "scale-bench"


def config(executor: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.fake_flow import flow_specs

    specs = [*flow_specs(frames=2), {"stage": "assemble", "params": {"questions": ["What happens?"]}}]
    for spec in specs:
        spec["batch_size"] = 1 if spec["stage"] in ("fake-detect", "fake-track") else 8  # production shapes
    return {"name": "scale", "executor": {"kind": executor}, "stages": specs}


def child_run(inputs: str, out: str, executor: str) -> None:
    """One run in this process; prints its wall time and this process's peak RSS."""
    from annotator.config import PipelineConfig
    from annotator.pipeline import Pipeline

    pipeline = Pipeline(PipelineConfig.model_validate(config(executor)))
    started = time.perf_counter()
    summary = pipeline.run([inputs], out, show_progress=False)
    wall = time.perf_counter() - started
    assert summary.errors == 0 and summary.completed == summary.videos, summary
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from annotator.rundir import RunDir
    from annotator.status import collect

    run = RunDir(out)
    model = sum(s.model for s in collect(run, run.read_manifest()).stages)  # the fake models' own time
    print(json.dumps({"wall": wall, "model": model, "rss": rss, "videos": summary.videos}))


def child_scan(out: str, executor: str) -> None:
    """What a resumed run reads before it admits its first video, timed: each stage's index compacted (a killed run
    is compacted by the next one before resume reads it), then the work left found from the indexes
    (`Pipeline.work`), as `Pipeline.run` does after listing its inputs."""
    from annotator.config import PipelineConfig
    from annotator.pipeline import Pipeline
    from annotator.rundir import RunDir

    pipeline = Pipeline(PipelineConfig.model_validate(config(executor)))
    run = RunDir(out)
    found = run.current_table()
    started = time.perf_counter()
    for built in pipeline.stages:
        run.compact_index(built.name)
    compacted = time.perf_counter()
    todo, _, settled = pipeline.work(run, found)
    done = time.perf_counter()
    assert settled, "no video counted as finished: the fingerprints differ from the killed run's"
    print(json.dumps({"scan": done - started, "compaction": compacted - started, "work": done - compacted,
                      "settled": settled, "todo": len(todo)}))


def child_status(out: str) -> None:
    """`annotator status` (the CLI command, its output discarded), timed from after its imports and start-up: the
    modules it imports on first use, the storage client (on S3: importing s3fs, 0.25 s here, and creating its
    client, 0.13 s) and pyarrow's compute functions (their first call imports pandas, 0.16 s): the same at any N."""
    import contextlib
    import io

    import pyarrow as pa
    import pyarrow.compute as pc

    import annotator.status  # noqa: F401
    from annotator import storage
    from annotator.cli import app

    fs, _ = storage.filesystem(out)
    if hasattr(fs, "connect"):  # s3fs: the client, made before any request
        fs.connect()
    pc.equal(pa.array(["a"]), "a")
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            app(["status", out])
        except SystemExit as exc:
            assert not exc.code, exc.code
    print(json.dumps({"status": time.perf_counter() - started}))


def child_export(out: str, fmt: str, dest: str) -> None:
    from annotator.export.base import ExportOptions, exporter
    from annotator.rundir import RunDir

    exporter(fmt).write(RunDir(out), Path(dest), ExportOptions())
    print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def sub(*args: str, env: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tiny_clip(path: str) -> bytes:
    """12 frames of 320x180 (what the fake ingest samples, frames 0 and 10, exists): a few kilobytes."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 180))
    for i in range(12):
        writer.write(np.full((180, 320, 3), 20 * i, np.uint8))
    writer.release()
    return Path(path).read_bytes()


def make_inputs(base: str, n: int, s3: bool, clip: str) -> str:
    """N inputs, each the same tiny clip: hard links on local disk, small objects on S3."""
    from annotator import storage

    folder = f"{base}/in{n}"
    names = [f"{folder}/v{i:07d}.mp4" for i in range(n)]
    if s3:
        data = Path(clip).read_bytes()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda p: storage.write_bytes(p, data), names))
    else:
        os.makedirs(folder, exist_ok=True)
        for i, name in enumerate(names):
            source = f"{clip}.{i // 50_000}"  # a file takes at most 65,000 links (ext4)
            if i % 50_000 == 0 and not os.path.exists(source):
                shutil.copy(clip, source)
            os.link(source, name)
    return folder


def files_per_stage(out: str) -> int:
    from annotator import storage
    from annotator.rundir import RunDir

    run = RunDir(out)
    return max(len(storage.list_files(run.stage_dir(s["stage"]), ".parquet"))
               + len(storage.list_files(run.index_dir(s["stage"]), ".parquet")) for s in run.read_manifest()["stages"])


def killed_run(inputs: str, out: str, n: int, executor: str, env: dict[str, str]) -> None:
    """Start a run and SIGKILL its process group once half the videos are exported (export parts counted)."""
    from annotator import storage

    proc = subprocess.Popen([sys.executable, __file__, "run", inputs, out, executor], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 3600
    parts = f"{out}/export/parquet/qa"
    while proc.poll() is None and time.monotonic() < deadline:
        if len(storage.list_files(parts, ".parquet")) * 100 >= n // 2:  # flush_rows 100 per part
            break
        time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit("the run finished before it could be killed: use more videos")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def moto(env: dict[str, str]) -> subprocess.Popen:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})
    os.environ.update(env)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--s3", action="store_true", help="inputs and run directory on an S3 server (moto)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    n = args.videos
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    server = moto(env) if args.s3 else None
    tmp = tempfile.mkdtemp(prefix="scale-")
    base = f"s3://{BUCKET}" if args.s3 else tmp
    ratios: dict[str, float] = {}

    def report(name: str, value: float, goal: float, unit: str) -> None:
        ratios[name] = value / goal
        print(f"{name}: {value:.4g} {unit} (goal <= {goal:.4g} {unit}, ratio {value / goal:.3f})", flush=True)

    try:
        runs = {}
        clip = f"{tmp}/clip.mp4"
        tiny_clip(clip)
        for size in (n // 100, n // 10, n):
            inputs = make_inputs(base, size, args.s3, clip)
            runs[size] = (inputs, f"{base}/run{size}")
            result = sub("run", inputs, runs[size][1], args.executor, env=env)
            runs[size] += (result,)
        wall, model, rss = runs[n][2]["wall"], runs[n][2]["model"], runs[n][2]["rss"]
        workers = 1 if args.executor == "local" else os.cpu_count() or 1
        report("files per stage", files_per_stage(runs[n][1]), n / 100 + 4 * workers, "files")
        print(f"run: {1000 * wall / n:.3g} ms a video, of which the fake models' own time (index `seconds`) "
              f"{1000 * model / n:.3g} ms")
        if not args.s3:
            report("overhead per video", 1000 * (wall - model) / n, 2.0, "ms")
        report("driver peak RSS N / (N/10)", rss / runs[n // 10][2]["rss"], 1.25, "x")

        killed = f"{base}/killed{n}"
        killed_run(runs[n][0], killed, n, args.executor, env)
        started = time.perf_counter()
        status = subprocess.run([sys.executable, __file__, "status", killed], env=env, capture_output=True,
                                text=True, check=False)
        took = time.perf_counter() - started
        assert status.returncode == 0, status.stdout + status.stderr
        work = json.loads(status.stdout.strip().splitlines()[-1])["status"]
        print(f"`annotator status` process: {took:.2f} s, of which imports and start-up {took - work:.2f} s "
              "(the same at any N)")
        report("status of a running run", 1000 * work / n, 0.1, "ms/video")
        scan = sub("scan", killed, args.executor, env=env)  # after status: it compacts the killed run
        print(f"resume of the killed run: {scan['settled']} videos settled, {scan['todo']} to do; compaction "
              f"{scan['compaction']:.2f} s, then the work left {scan['work']:.2f} s")
        report("resume scan of a killed run", 1000 * scan["scan"] / n, 3.0 if args.s3 else 0.2, "ms/video")

        from annotator.export.base import exporter_names

        for fmt in exporter_names():
            peaks = [sub("export", runs[size][1], fmt, f"{tmp}/export-{fmt}-{size}", env=env)["rss"]
                     for size in (n // 100, n // 10)]
            report(f"export {fmt} peak RSS N/10 / (N/100)", peaks[1] / peaks[0], 1.3, "x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if server is not None:
            server.terminate()
    print(f"worst = {max(ratios.values()):.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        child_run(*sys.argv[2:5])
    elif len(sys.argv) > 1 and sys.argv[1] == "scan":
        child_scan(*sys.argv[2:4])
    elif len(sys.argv) > 1 and sys.argv[1] == "status":
        child_status(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "export":
        child_export(*sys.argv[2:5])
    else:
        main()
