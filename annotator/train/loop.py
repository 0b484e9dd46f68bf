"""Training with Accelerate: gradient accumulation, mixed precision on GPU, checkpoints that resume exactly.

A checkpoint (`OUTPUT/checkpoints/step-N/`) holds only what training changes (adapters, new token rows, the
projection, the mask decoder), the optimizer state, every RNG state and the step; `--resume` continues from the
newest one: same step counter, same optimizer moments, same data order (a seeded permutation per epoch, the
finished batches of the current epoch skipped) and the same random streams, so the loss curve continues as if
never stopped. Every step is logged to `OUTPUT/log.csv`; every `log_every` steps to the console.
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from annotator import storage
from annotator.train.config import TrainConfig
from annotator.train.data import GcgDataset, collate, to_device
from annotator.train.model import GroundingModel, load_trainable
from annotator.train.stream import StreamingRecords

FIELDS = ["step", "loss", "lm", "bce", "dice", "lr", "seconds"]
WORKER_TIMEOUT_S = 600  # a batch no worker delivers in this long (a stalled read) fails the run instead of hanging


class EpochPermutation(Sampler[int]):
    """A seeded permutation per epoch: the data order is a function of (seed, epoch), so a resumed run sees the
    same batches as an uninterrupted one. With `world` workers, worker `rank` takes every `world`-th sample of
    it: the shares are disjoint, differ by at most one sample, and together cover the epoch once. `start` skips
    the first samples of this worker's share (the finished batches of a resumed epoch) without loading them."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch = self.start = 0

    def share(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        random.Random(self.seed * 7919 + epoch).shuffle(order)
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.share(self.epoch)[self.start:])

    def __len__(self) -> int:
        return max(0, len(range(self.rank, self.size, self.world)) - self.start)


def loader(dataset: GcgDataset, sampler: EpochPermutation, config: TrainConfig, pad_id: int) -> DataLoader:
    """Batches in the sampler's order; `data.num_workers` processes build samples ahead of the step (frames
    fetched and masks decoded there), `data.prefetch` batches each."""
    workers = config.data.num_workers
    # A forked worker inherits the object store client's threads' locks mid-use (botocore's, in fsspec's IO
    # thread) and can wait on them forever: on an object store, workers start from a clean forkserver.
    context = "forkserver" if workers and storage.is_uri(config.data.run_dir) else None
    return DataLoader(dataset, batch_size=config.train.batch_size, sampler=sampler,
                      collate_fn=partial(collate, pad_id=pad_id), num_workers=workers,
                      prefetch_factor=config.data.prefetch if workers else None, persistent_workers=workers > 0,
                      multiprocessing_context=context, timeout=WORKER_TIMEOUT_S if workers else 0)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(output: str | Path) -> list[Path]:
    folder = Path(output) / "checkpoints"
    found = [p for p in folder.glob("step-*") if (p / "done").exists()] if folder.exists() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(folder: Path, model: GroundingModel, optimizer: torch.optim.Optimizer, step: int) -> Path:
    """Written to a temporary folder, then renamed: a checkpoint exists whole or not at all."""
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(model.trainable_state(), tmp / "trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    (tmp / "done").write_text("")
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_checkpoint(folder: Path, model: GroundingModel, optimizer: torch.optim.Optimizer | None = None) -> int:
    load_trainable(model, torch.load(folder / "trainable.pt", map_location="cpu", weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
        set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
    return int(json.loads((folder / "state.json").read_text())["step"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_dataset(config: TrainConfig, model: GroundingModel) -> GcgDataset:
    """Samples streamed from the run's export (`annotator.train.stream`): only an index is held in memory."""
    records = StreamingRecords(config.data.run_dir)
    if config.data.limit:
        records.limit(config.data.limit)
    if not len(records):
        raise ValueError(f"{config.data.run_dir}: the export holds no QA triplet to train on")
    return GcgDataset(config.data.run_dir, model.processor, model.sam_processor, config.data.num_frames,
                      config.data.max_phrases, config.data.seed, records)


def train(config: TrainConfig, resume: bool = False, stop_after: int | None = None,
          on_log: Callable[[dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train (or resume) to `config.train.steps`; `stop_after` ends early after that step (tests, budgets).
    Returns this invocation's log rows."""
    from accelerate import Accelerator

    spec = config.train
    output = Path(spec.output)
    output.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(gradient_accumulation_steps=spec.grad_accum, mixed_precision=spec.mixed_precision,
                              cpu=not torch.cuda.is_available())
    seed_everything(spec.seed)
    model = GroundingModel(config.model.build())
    dataset = make_dataset(config, model)
    sampler = EpochPermutation(len(dataset), spec.seed)
    batches = loader(dataset, sampler, config, model.processor.tokenizer.pad_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    step = 0
    if resume and (found := checkpoints(output)):
        step = load_checkpoint(found[-1], model, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    per_epoch = -(-len(dataset) // spec.batch_size)
    rows: list[dict[str, float]] = []
    (output / "config.json").write_text(config.model_dump_json(indent=2))
    log_path = output / "log.csv"
    fresh = not log_path.exists() or not resume
    with log_path.open("w" if fresh else "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if fresh:
            writer.writeheader()
        started = time.time()
        while step < spec.steps:
            sampler.epoch = step // per_epoch
            sampler.start = (step % per_epoch) * spec.batch_size
            for batch in batches:
                with accelerator.accumulate(model):
                    out = model(to_device(batch, accelerator.device))
                    accelerator.backward(out["loss"])
                    optimizer.step()
                    optimizer.zero_grad()
                step += 1
                row = {"step": step, **{k: round(float(v.detach()), 6) for k, v in out.items()},
                       "lr": spec.lr, "seconds": round(time.time() - started, 2)}
                rows.append(row)
                writer.writerow(row)
                fh.flush()
                if on_log and (step % spec.log_every == 0 or step == spec.steps):
                    on_log(row)
                if step % spec.save_every == 0 or step == spec.steps:
                    save_checkpoint(output / "checkpoints" / f"step-{step}", accelerator.unwrap_model(model),
                                    optimizer, step)
                if step >= spec.steps or (stop_after is not None and step >= stop_after):
                    return rows
    return rows
