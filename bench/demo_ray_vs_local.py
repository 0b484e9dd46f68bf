"""`annotator demo` wall time on Ray (the default, embedded cluster) vs `--executor local`, side by side, each
in a fresh process with a fresh run directory (models already built, so neither pays for that).

    .venv/bin/python bench/demo_ray_vs_local.py
"""

from __future__ import annotations

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
    with tempfile.TemporaryDirectory() as tmp:
        demo(Path(tmp) / "warm", "--executor", "local")  # builds the tiny models once
        local, _ = demo(Path(tmp) / "local", "--executor", "local")
        ray, output = demo(Path(tmp) / "ray")
    leaked = [line for line in output.splitlines() if "core_worker" in line or line.startswith("20")]
    print(f"annotator demo: ray {ray:.1f}s, local {local:.1f}s; Ray log lines printed: {len(leaked)}")
    print(f"ratio = {ray / local:.3f}")


if __name__ == "__main__":
    main()
