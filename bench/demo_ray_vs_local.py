"""`annotator demo` wall time on Ray (the default, embedded cluster) vs `--executor local`, side by side, each
in a fresh process with a fresh run directory (models already built, so neither pays for that). The two
alternate `--repeat` times and the medians are compared, so a noisy neighbour does not decide the ratio.

    .venv/bin/python bench/demo_ray_vs_local.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def demo(out: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "annotator.cli", "demo", "--output", str(out), *args],
                          capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    local, ray, leaked = [], [], 0
    with tempfile.TemporaryDirectory() as tmp:
        demo(Path(tmp) / "warm", "--executor", "local")  # builds the tiny models once
        for i in range(args.repeat):
            local.append(demo(Path(tmp) / f"local{i}", "--executor", "local")[0])
            seconds, output = demo(Path(tmp) / f"ray{i}")
            ray.append(seconds)
            leaked += sum("core_worker" in line or line.startswith("20") for line in output.splitlines())
            print(f"run {i + 1}: ray {ray[-1]:.1f}s, local {local[-1]:.1f}s", flush=True)
    print(f"annotator demo, medians of {args.repeat}: ray {statistics.median(ray):.1f}s, "
          f"local {statistics.median(local):.1f}s; Ray log lines printed: {leaked}")
    print(f"ratio = {statistics.median(ray) / statistics.median(local):.3f}")


if __name__ == "__main__":
    main()
