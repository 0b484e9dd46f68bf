"""Mask encoding cost: `annotator.masks.encode_batch` on a track batch vs bare pycocotools on the same
column-major masks (64 frames of 720p, one object).

Ours gets the batch as the SAM2 adapter hands it over (column-major per mask: transposed on the device); the
C-ordered case (other trackers; one OpenCV transpose per mask) is printed too.

    .venv/bin/python bench/rle.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pycocotools import mask as mask_utils

from annotator import masks


def track_batch(frames: int = 64, h: int = 720, w: int = 1280) -> np.ndarray:
    y, x = np.ogrid[:h, :w]
    return np.stack([((y - 300 - 2 * f) / 150) ** 2 + ((x - 200 - 10 * f) / 90) ** 2 <= 1 for f in range(frames)])


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    c_order = track_batch()
    from_tracker = masks.stack_column_major([np.asfortranarray(m) for m in c_order])  # the SAM2 adapter's layout
    fortran = np.asfortranarray(np.moveaxis(from_tracker.view(np.uint8), 0, -1))  # what pycocotools wants
    ours = best(lambda: masks.encode_batch(from_tracker), args.repeat)
    ours_c = best(lambda: masks.encode_batch(c_order), args.repeat)
    bare = best(lambda: [r["counts"].decode("ascii") for r in mask_utils.encode(fortran)], args.repeat)
    want = [r["counts"].decode("ascii") for r in mask_utils.encode(fortran)]
    assert masks.encode_batch(from_tracker) == masks.encode_batch(c_order) == want
    print(f"64 masks 1280x720: ours {ours * 1000:.1f} ms (tracker layout), {ours_c * 1000:.1f} ms from C-ordered "
          f"masks; bare pycocotools {bare * 1000:.1f} ms")
    print(f"ratio = {ours / bare:.3f}")


if __name__ == "__main__":
    main()
