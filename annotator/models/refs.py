"""Model references in pipeline YAML: a hub id, a local path, or `tiny:<role>` (built on first use)."""

from __future__ import annotations

from annotator import paths

TINY_PREFIX = "tiny:"


def is_tiny(ref: str) -> bool:
    return ref.startswith(TINY_PREFIX)


def resolve(ref: str) -> str:
    """What to hand to `from_pretrained`: tiny refs are built into the cache dir once, paths are resolved."""
    if is_tiny(ref):
        role = ref[len(TINY_PREFIX):]
        out = paths.cache_dir() / "tiny" / role
        if (out / "config.json").exists():  # built already: no need to import torch to know it
            return str(out)
        from annotator.models import tiny

        return str(tiny.build(role, out))
    if paths.looks_local(ref):
        return str(paths.resolve(ref))
    return ref


def device(choice: str = "auto") -> str:
    """`auto` is the GPU when there is one; anything else is passed to torch as is."""
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype(name: str) -> object:
    """A torch dtype from its config name (`float32`, `bfloat16`, `float16`)."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
