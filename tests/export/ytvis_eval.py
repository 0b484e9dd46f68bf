"""The YouTube-VIS evaluation API (`YTVIS`, `YTVISeval`, from youtubevos/cocoapi) as shipped in mmdet.

mmdet's package `__init__` needs mmcv (a compiled extension); these two modules need only numpy and
pycocotools, so they are loaded straight from the installed files. They predate NumPy 1.24 and use the
removed alias `np.float`, which their namespace gets back.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy


class _NumpyWithOldAliases:
    float = float
    int = int

    def __getattr__(self, name: str) -> object:
        return getattr(numpy, name)


def _load(name: str) -> ModuleType:
    spec = importlib.util.find_spec("mmdet")
    assert spec is not None and spec.submodule_search_locations, "mmdet is a test dependency"
    path = Path(next(iter(spec.submodule_search_locations))) / "evaluation" / "functional" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"ytvis_api_{name}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.np = _NumpyWithOldAliases()  # type: ignore[attr-defined]
    return module


YTVIS = _load("ytvis").YTVIS
YTVISeval = _load("ytviseval").YTVISeval
