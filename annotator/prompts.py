"""Versioned prompt templates: `prompts/<name>.v<N>.md`, whose version and text hash enter cache keys.

A template's text is the prompt itself; a question set is a markdown list, one question per `- ` line.
Editing a template's text changes its hash, so the stages that use it are recomputed on the next run;
copying it to `.v<N+1>` keeps the old version reproducible.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator import paths

_VERSIONED = re.compile(r"^(?P<name>[\w-]+)\.v(?P<version>\d+)\.(md|txt)$")


@dataclass(frozen=True)
class Template:
    path: Path
    name: str
    version: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def cache_key(self) -> dict[str, str | int]:
        """What a stage puts in its fingerprint and the manifest: which template, which version, which text."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def items(self) -> list[str]:
        """The `- ` lines of a list template (a question set), without their bullets."""
        found = [line.strip()[2:].strip() for line in self.text.splitlines() if line.strip().startswith("- ")]
        if not found:
            raise ValueError(f"{self.path}: expected a markdown list, one '- ' line per entry")
        return found


def name_and_version(path: str | Path) -> tuple[str, int]:
    """A template's file name must carry a version (`caption.v1.md`) so datasets say which one made them."""
    match = _VERSIONED.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: prompt templates are versioned, name the file like 'caption.v1.md'")
    return match["name"], int(match["version"])


def load(path: str | Path) -> Template:
    name, version = name_and_version(path)
    resolved = paths.resolve(path)
    try:
        text = resolved.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the prompt template ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the prompt template is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path}: the prompt template is empty")
    return Template(path=resolved, name=name, version=version, text=text)


def check(path: str | Path, slot: str | None = None, as_list: bool = False) -> None:
    """Config-time check of a template's name and, when the file is there, its content (a missing file is
    reported by the stage's `required_paths`)."""
    name_and_version(path)
    if not paths.resolve(path).exists():
        return
    template = load(path)
    if slot is not None and slot not in template.text:
        raise ValueError(f"{path}: the template must contain {slot}")
    if as_list:
        template.items()


class PromptedStage:
    """Mixin for a stage driven by the template in its `prompt` param (put it before the `Stage` base): the path
    is checked with the config, the template's version and hash join the cache key, and the text is read once
    in the driver (`preload`), so it travels to workers inside the pickled stage. `uses_prompt()` says whether
    the current settings use the template at all."""

    prompt: str

    def uses_prompt(self) -> bool:
        return True

    def required_paths(self) -> dict[str, str]:
        found: dict[str, str] = super().required_paths()  # type: ignore[misc]
        return {**found, "prompt": self.prompt} if self.uses_prompt() else found

    def cache_inputs(self) -> dict[str, Any]:
        inputs: dict[str, Any] = super().cache_inputs()  # type: ignore[misc]
        return {**inputs, "prompt": load(self.prompt).cache_key()} if self.uses_prompt() else inputs

    def preload(self) -> None:
        super().preload()  # type: ignore[misc]
        if self.uses_prompt():
            _ = self.prompt_text

    @functools.cached_property
    def prompt_text(self) -> str:
        """The template's text, read once per process (not a dataclass field: not part of the params)."""
        return load(self.prompt).text
