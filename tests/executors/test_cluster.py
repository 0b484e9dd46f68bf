"""A real 2-node Ray cluster on this machine (two raylets, each with its own custom resource): the CLI joins it
with --address, stages pinned by custom resources run on both nodes, and the dataset equals the local one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from annotator.rundir import RunDir
from annotator.status import collect, stage_table
from tests.helpers import DEMO, SMALL, demo_pipeline, export_rows

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_node_cluster_runs_pinned_stages_on_both_nodes(clips: dict[str, Path], tiny_models,
                                                           tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    memory = 200 * 1024**2
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "resources": {"node_a": 1}, "object_store_memory": memory, "gcs_server_port": _free_port(),
        "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=memory)
        cluster.wait_for_nodes()
        out = tmp_path / "cluster"
        args = [sys.executable, "-m", "annotator.cli", "run", str(DEMO), "--input", str(clips["a"]),
                "--input", str(clips["b"]), "--output", str(out), "--executor", "ray", "--address", cluster.address]
        pins = ["stages.ingest.resources={cpus: 0.2, custom: {node_a: 0.5}}",
                "stages.track.resources={cpus: 0.4, custom: {node_b: 0.5}}"]
        for setting in [*SMALL, *pins]:
            args += ["--set", setting]
        env = {**os.environ, "RAY_ADDRESS": ""}
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2/2 videos done" in done.stdout
        assert "core_worker" not in done.stdout + done.stderr, "Ray's own log lines stay hidden"
    finally:
        cluster.shutdown()
    run = RunDir(str(out))
    rows, _ = stage_table(run.read_manifest(), collect(run, run.read_manifest()))
    nodes = {r["stage"]: set(r["node_ids"]) for r in rows}
    assert len(nodes["ingest"]) == len(nodes["track"]) == 1
    assert nodes["ingest"] != nodes["track"], "the pinned stages ran on different nodes"
    assert len(set().union(*nodes.values())) == 2
    local = tmp_path / "local"
    demo_pipeline().run([clips["a"], clips["b"]], local, executor="local", show_progress=False)
    key = ("video_id", "question", "answer", "object_ids")
    assert [[r[k] for k in key] for r in export_rows(out, "qa")] == [[r[k] for k in key]
                                                                     for r in export_rows(local, "qa")]
    assert export_rows(out, "objects") == export_rows(local, "objects")
