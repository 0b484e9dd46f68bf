"""Where the project's own files live, and how relative paths in a pipeline YAML are resolved."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PIPELINES_DIR = PROJECT_ROOT / "pipelines"
SAMPLES_DIR = PROJECT_ROOT / "datasets" / "samples"


def cache_dir() -> Path:
    """Built tiny models and other reusable artefacts; `ANNOTATOR_CACHE` overrides."""
    env = os.environ.get("ANNOTATOR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "annotator"


def resolve(path: str | Path) -> Path:
    """A relative path is looked up from the working directory first, then from the project root."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = PROJECT_ROOT / p
    return candidate if candidate.exists() else p


def looks_local(ref: str) -> bool:
    """Model refs that name a local path (hub ids like `org/name` do not start like this)."""
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).exists()
