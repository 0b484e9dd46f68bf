"""Versioned prompt templates: `prompts/<name>.v<N>.md`, whose version and text hash enter cache keys.

A template's text is the prompt itself; a question set is a markdown list, one question per `- ` line.
Editing a template's text changes its hash, so the stages that use it are recomputed on the next run;
copying it to `.v<N+1>` keeps the old version reproducible.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

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
