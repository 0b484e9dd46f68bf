#!/usr/bin/env bash
# The GPU check, for a machine with CUDA and torch preinstalled and no network (README: "GPU check").
#   bash bench/gpu_check.sh [WHEELS_DIR]
# WHEELS_DIR holds the wheels listed in bench/gpu_wheels.txt (`pip download` them where there is network).
# It installs them and this checkout without touching torch, runs the `gpu` tests, then the production-size
# rehearsal on CUDA in bfloat16: seconds per frame, peak memory and FPS next to the published anchors.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="${1:-wheels}"
PY="${PYTHON:-python3}"
if [ -d "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" -r bench/gpu_wheels.txt
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . 2>/dev/null \
    || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, transformers; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/models/test_gpu.py
timeout 420 "$PY" bench/rehearsal.py --device cuda --dtype bfloat16 --frames 8
