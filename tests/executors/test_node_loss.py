"""A node lost mid-run on a real 2-node Ray cluster on this machine: the run finishes with pools shrunk to what
the surviving node holds, 0 errors, the dataset of an undisturbed run, and no finished checkpoint recomputed
except work that was in flight on the lost node."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest

from annotator.executors.local import LocalExecutor
from annotator.rundir import RunDir
from tests.executors.test_cluster import _free_port
from tests.helpers import current_export

pytestmark = pytest.mark.slow

VIDEOS, FIRST_DONE, IN_FLIGHT = 12, 4, 4  # the node goes once 4 videos are done, with 4 more let into the flow

DRIVER = textwrap.dedent("""
    import json, sys
    from annotator.executors.ray import RayExecutor
    from tests.executors.test_node_loss import refs, tasks
    root, address, release, out = sys.argv[1:5]
    executor = RayExecutor(address=address, restart_wait_s=2.0)
    rows = list(executor.run(tasks(root, release), refs()))
    with open(out, "w") as f:
        json.dump(rows, f)
""")


def refs() -> list:
    from annotator.executors.runner import WorkRef

    return [WorkRef(f"v{i:02d}", f"/fake/v{i:02d}.mp4") for i in range(VIDEOS)]


def tasks(root: str, release: str) -> list:
    """The calibrated fake flow with a gate after ingest; the GPU stages at two actors of half a GPU each."""
    from annotator.executors.runner import ExportSpec, StageTask
    from annotator.testing.fake_stages import Gate, fake_stages

    stages = fake_stages(caption_s=0.05, detect_s=0.01, track_s=0.002, frames=8)
    held = [f"v{i:02d}" for i in range(FIRST_DONE + IN_FLIGHT, VIDEOS)]
    stages.insert(1, Gate(release=release, hold=held, wait_s=240.0))
    export = ExportSpec("fake", "run1", {s.name: "fp" for s in stages})
    out = []
    for i, stage in enumerate(stages):
        gpus = stage.resources.gpus and 0.5
        out.append(StageTask(stage, f"fp-{stage.name}", root, concurrency=2 if gpus else 1, batch_size=1,
                             cpus=0.1, gpus=gpus, export=export if i == len(stages) - 1 else None,
                             flush_rows=1))  # every video indexed as it finishes: what the test watches
    return out


def _finished(root: Path) -> int:
    try:
        return RunDir(str(root)).read_index("assemble").num_rows
    except (OSError, FileNotFoundError):
        return 0


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_lost_node_costs_only_its_in_flight_work(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    memory = 200 * 1024**2
    # six half-GPU actors across 4 logical GPUs: the head (2) cannot hold every pool at its size once the worker
    # is gone
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 2, "num_gpus": 2, "object_store_memory": memory, "gcs_server_port": _free_port(),
        "include_dashboard": False})
    root, release = tmp_path / "run", tmp_path / "release"
    try:
        worker = cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=memory)
        cluster.wait_for_nodes()
        lost = worker.node_id[:12]
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(root), cluster.address, str(release),
                                   str(tmp_path / "rows.json")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        try:
            _wait(lambda: _finished(root) >= FIRST_DONE or driver.poll() is not None, 240, "the first videos")
            cluster.remove_node(worker)
            release.touch()
            output, _ = driver.communicate(timeout=400)
        finally:
            driver.kill()
        assert driver.returncode == 0, output
    finally:
        cluster.shutdown()
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert sorted(r["video_id"] for r in rows) == [f"v{i:02d}" for i in range(VIDEOS)]
    assert {r["status"] for r in rows} == {"ok"}, [r for r in rows if r["status"] != "ok"]
    assert "a node was lost" in output or "could not restart" in output or "gives one up" in output, output
    pools = RunDir(str(root)).read_pools()
    assert sum(pools[name] for name in ("caption", "detect", "track")) <= 4, pools  # 2 GPUs of half-GPU actors, not 6
    assert all(size >= 1 for size in pools.values()), pools

    run = RunDir(str(root))
    for task in tasks(str(root), str(release)):
        by_video = defaultdict(list)
        for row in sorted(run.read_index(task.stage.name).to_pylist(), key=lambda r: r["finished"]):
            by_video[row["video_id"]].append(row["node"])
        again = {v: nodes for v, nodes in by_video.items() if len(nodes) > 1}
        assert all(node == lost for nodes in again.values() for node in nodes[:-1]), (task.stage.name, again)

    undisturbed = tmp_path / "undisturbed"
    release_all = tmp_path / "open"
    release_all.touch()
    local = tasks(str(undisturbed), str(release_all))
    assert {r["status"] for r in LocalExecutor(show_progress=False).run(local, refs())} == {"ok"}
    for table, key in (("qa", ("video_id", "question", "answer", "object_ids")),
                       ("objects", ("video_id", "object_id", "frame_indices", "mask_rles"))):
        got = current_export(run, table, key)
        want = current_export(RunDir(str(undisturbed)), table, key)
        assert got == want and len(want) >= VIDEOS, table

