"""What a tracking window costs in accelerator memory, and whether it fits the GPU a stage is given.

A window's session holds every frame's pixels and image features (per frame) and every object's outputs and
memories on every frame (per object and frame), on top of the weights and the working memory of one forward
pass. The figures below were measured by `bench/rehearsal.py` on the production checkpoints' architectures at
their real input sizes (float32; bfloat16 halves every term), by summing the tensors a session holds after
tracking a window. Models not listed here are not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GIB = 1024**3
HEADROOM = 0.9  # of a GPU's memory: the CUDA context, the allocator's fragmentation


@dataclass(frozen=True)
class WindowCost:
    """Bytes in float32 at the model's production input size."""

    weights: int
    working: int  # peak of one frame's forward pass beyond the weights
    per_frame: int  # pixels and cached image features of one frame
    per_object_frame: int  # one object's masks, memory features and pointers on one frame

    def total(self, window: int, objects: int, dtype_bytes: int = 4) -> int:
        """Bytes for a window of `window` frames tracking `objects` objects."""
        return (self.weights + self.working + window * (self.per_frame + objects * self.per_object_frame)) \
            * dtype_bytes // 4

    def largest_window(self, gpu_bytes: float, objects: int, dtype_bytes: int = 4) -> int:
        """The most frames a window may hold on a GPU of `gpu_bytes` (0: not even the model fits)."""
        free = gpu_bytes * HEADROOM * 4 / dtype_bytes - self.weights - self.working
        return max(0, math.floor(free / (self.per_frame + objects * self.per_object_frame)))


# Measured by `python bench/rehearsal.py --frames 4` on this project's CPU machine (float32; README, Performance:
# production-size rehearsal): weights from the checkpoint; per frame and per object-frame the tensors the
# session holds; working = peak RSS minus weights and session, so it also holds the process's own ~0.8 GB
# (a stand-in for the CUDA context and allocator slack). SAM2 caches every frame's image features for the
# window (one backbone pass per frame); SAM 3 keeps one frame's (its 133 MB are in `working`).
COSTS: dict[str, WindowCost] = {
    "sam2.1-hiera-large": WindowCost(weights=897_786_568, working=2_053_549_232, per_frame=117_440_512,
                                     per_object_frame=5_243_914),
    "sam3": WindowCost(weights=3_439_687_392, working=6_378_976_480, per_frame=12_192_768,
                       per_object_frame=10_451_972),
}


def cost_of(model: str) -> WindowCost | None:
    """The measured cost of a model reference (hub id or a folder named after it), if we have one."""
    name = model.rstrip("/").split("/")[-1]
    return COSTS.get(name)


DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def check_window(model: str, window: int, gpu_gb: float | None, share: float, dtype: str = "float32") -> None:
    """Refuse (one line) a window that cannot fit its share of a GPU of `gpu_gb`, even with a single object."""
    cost = cost_of(model)
    if cost is None or gpu_gb is None or share <= 0:
        return
    given = gpu_gb * GIB * min(share, 1.0)
    size = DTYPE_BYTES[dtype]
    fits = cost.largest_window(given, objects=1, dtype_bytes=size)
    if window > fits:
        need = cost.total(window, 1, size) / GIB
        raise ValueError(f"a window of {window} frames of {model} in {dtype} needs about {need:.0f} GiB, more "
                         f"than the {given / GIB:.0f} GiB it is given ({share:g} of a {gpu_gb:g} GB GPU): "
                         f"use window <= {fits}" + (" or dtype bfloat16" if size == 4 else ""))


def check_window_on_device(stage: str, model: str, window: int, dtype: str, device: str) -> None:
    """At setup on a worker: the same check against the whole GPU the stage landed on, when it is one."""
    if cost_of(model) is None:
        return
    import torch

    from annotator.models import refs

    target = torch.device(refs.device(device))
    if target.type != "cuda" or not torch.cuda.is_available():
        return
    total = torch.cuda.get_device_properties(target.index or 0).total_memory
    try:
        check_window(model, window, total / GIB, 1.0, dtype)
    except ValueError as exc:
        raise RuntimeError(f"{stage}: {exc}") from None


def tensor_bytes(root: Any) -> dict[str, int]:
    """Bytes of the tensors reachable from `root` (attributes, dicts, lists), each storage counted once, by
    the first attribute name on the way to it (so a session's `output_dict_per_obj` is told from its frames)."""
    import torch

    seen: set[int] = set()
    out: dict[str, int] = {}

    def walk(obj: Any, top: str, depth: int) -> None:
        if depth > 12:
            return
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                out[top] = out.get(top, 0) + storage.nbytes()
            return
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, (list, tuple)):
            items = list(enumerate(obj))
        elif hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
            items = list(vars(obj).items())
        else:
            return
        for key, value in items:
            walk(value, top or str(key), depth + 1)

    walk(root, "", 0)
    return out
