"""Pipeline YAML -> validated config and stage instances; every mistake becomes one pointed line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from annotator import paths
from annotator.stage import Resources, Stage, stage_class


class ConfigError(Exception):
    """A config mistake; `str()` is a single line naming the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResourcesSpec(_Strict):
    cpus: float = Field(default=1.0, gt=0)
    gpus: float = Field(default=0.0, ge=0)
    custom: dict[str, float] = Field(default_factory=dict)  # Ray custom resources, e.g. {node_a100: 0.01}


class ScaleSpec(_Strict):
    """An autoscaled pool's bounds (`concurrency: auto` is `{min: 1}`): the Ray executor sizes it in between."""

    min: int = Field(default=1, ge=1)
    max: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> ScaleSpec:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class StageSpec(_Strict):
    stage: str
    params: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesSpec | None = None
    concurrency: int | ScaleSpec = 1  # a fixed pool size, `auto`, or {min: a, max: b}
    batch_size: int | None = Field(default=None, ge=1)
    call_timeout_s: float = Field(default=1800.0, gt=0)  # a call past it has hung: its actor restarts (Ray)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> int | ScaleSpec:
        if value == "auto":
            return ScaleSpec()
        if isinstance(value, dict):
            try:
                return ScaleSpec.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                msg = first["msg"].removeprefix("Value error, ")
                raise ValueError(f"{where}: {msg}" if where else msg) from None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError(f"expected a number of actors (1 or more), auto, or {{min: a, max: b}}; got {value!r}")


class ExecutorSpec(_Strict):
    kind: Literal["local", "ray"] = "local"
    address: str | None = None  # None: embedded local Ray; "auto" or host:port joins a cluster
    num_cpus: int | None = Field(default=None, ge=1)
    num_gpus: float | None = Field(default=None, ge=0)
    autoscale_interval_s: float = Field(default=10.0, gt=0)  # how often autoscaled pools are re-planned
    flush_rows: int = Field(default=100, ge=1)  # a worker writes its checkpoints every this many videos per stage,
    flush_s: float = Field(default=60.0, gt=0)  # or this often, and when it stops: a kill loses one such buffer


class ExportSpec(_Strict):
    formats: list[Literal["parquet"]] = Field(default_factory=lambda: ["parquet"])


class PipelineConfig(_Strict):
    name: str
    description: str = ""
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    stages: list[StageSpec]
    export: ExportSpec = Field(default_factory=ExportSpec)


class BuiltStage:
    """A validated stage instance with the resources the executor should give it."""

    def __init__(self, stage: Stage, resources: Resources, concurrency: int | ScaleSpec, batch_size: int,
                 call_timeout_s: float = 1800.0) -> None:
        self.stage = stage
        self.resources = resources
        fixed = isinstance(concurrency, int)
        self.concurrency = concurrency if fixed else concurrency.min  # the pool's size at start
        self.scale = None if fixed else (concurrency.min, concurrency.max)  # autoscaled between these
        self.batch_size = batch_size
        self.call_timeout_s = call_timeout_s

    @property
    def name(self) -> str:
        return self.stage.name


def _loc(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """pydantic location -> dotted key, naming stages by their `stage:` rather than list index."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if i == 1 and loc[0] == "stages" and isinstance(part, int):
            stages = data.get("stages") or []
            name = stages[part].get("stage") if part < len(stages) and isinstance(stages[part], dict) else None
            parts.append(str(name) if name else str(part))
        else:
            parts.append(str(part))
    return ".".join(parts)


def _one_line(source: str, err: ValidationError, data: dict[str, Any], prefix: tuple[Any, ...] = ()) -> str:
    first = err.errors()[0]
    loc = _loc(prefix + tuple(first["loc"]), data)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key (check the spelling, or see the stage's parameters in the README)"
    elif "input" in first and not isinstance(first["input"], dict | list) and "; got " not in msg:
        msg = f"{msg} (got {first['input']!r})"  # unless the validator's own message names it already
    return f"{source}: {loc}: {msg}"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`--set a.b.c=value` edits; `stages.<name>` selects a stage by its name. Values parse as YAML."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key=value, e.g. stages.detect.params.top_k=3")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        node: Any = data
        parts = key.split(".")
        for j, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                match = [s for s in node if isinstance(s, dict) and s.get("stage") == part]
                if not match:
                    raise ConfigError(f"--set {key}: no stage named {part!r}")
                node = match[0]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, dict | list):
                raise ConfigError(f"--set {key}: {'.'.join(parts[: j + 1])} is not a mapping")
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise ConfigError(f"{source}: pipeline file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}:{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(source, exc, data)) from None
    build_stages(config, source, data)  # validates params, model paths and files now, loading nothing
    return config


def build_stages(
    config: PipelineConfig, source: str = "pipeline", data: dict[str, Any] | None = None
) -> list[BuiltStage]:
    data = data if data is not None else config.model_dump()
    built = []
    for i, spec in enumerate(config.stages):
        try:
            cls = stage_class(spec.stage)
        except KeyError as exc:
            raise ConfigError(f"{source}: stages.{i}.stage: {exc.args[0]}") from None
        try:
            stage = TypeAdapter(cls).validate_python(spec.params)
        except ValidationError as exc:
            raise ConfigError(_one_line(source, exc, data, ("stages", i, "params"))) from None
        for key, value in stage.required_paths().items():
            if not paths.resolve(value).exists():
                raise ConfigError(f"{source}: stages.{spec.stage}.params.{key}: path {value} does not exist")
        resources = Resources(**spec.resources.model_dump()) if spec.resources else cls.resources
        try:
            stage.check_resources(resources)
        except ValueError as exc:
            raise ConfigError(f"{source}: stages.{spec.stage}: {exc}") from None
        built.append(BuiltStage(stage, resources, spec.concurrency, spec.batch_size or cls.batch_size,
                                spec.call_timeout_s))
    return built
