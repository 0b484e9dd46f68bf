"""The training loop under Ray Train (`TorchTrainer`): one worker per process, CPU (gloo) or GPU (nccl).

Each worker streams its own share of the samples (`EpochPermutation` with its rank: every `world`-th sample of
the epoch's seeded permutation), so the shares are disjoint and together cover each epoch once; no worker
reads the others'. Workers step in lockstep (DDP all-reduces every step): an epoch lasts as many steps as the
largest share has batches, and a worker whose share ran out a step early joins that step with a zero-weight
loss. Every step is seeded by (seed, step, rank), so a resumed run continues the uninterrupted run's loss curve
with no RNG state to carry. The first worker reports a checkpoint (trained tensors, optimizer state, step) every
`save_every` steps to `ray.storage_path` (any filesystem Ray Train writes to) or `train.output`; `--resume`
continues from the newest one. With a local `train.output`, each worker appends what it drew to
`train.output/ranks/rank-R.csv` (step, epoch, weight, loss, sample names): the audit of who read what.
"""

from __future__ import annotations

import csv
import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch

from annotator import storage
from annotator.train.config import TrainConfig

NAME = "annotator-train"


def _worker(config_json: str) -> None:
    import ray.train
    import ray.train.torch

    from annotator.train.data import collate, to_device
    from annotator.train.loop import EpochPermutation, loader, make_dataset, seed_everything
    from annotator.train.model import GroundingModel, load_trainable

    config = TrainConfig.model_validate_json(config_json)
    spec = config.train
    seed_everything(spec.seed)
    model = GroundingModel(config.model.build())
    dataset = make_dataset(config, model)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    pad_id = model.processor.tokenizer.pad_token_id
    sampler = EpochPermutation(len(dataset), spec.seed, rank, world)
    batches = loader(dataset, sampler, config, pad_id)
    largest = -(-len(dataset) // world)
    per_epoch = -(-largest // spec.batch_size)  # an epoch lasts as many steps as the largest share has batches
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec.lr,
                                  weight_decay=spec.weight_decay)
    step = 0
    resumed = ray.train.get_checkpoint()
    if resumed:
        with resumed.as_directory() as folder:
            load_trainable(model, torch.load(Path(folder) / "trainable.pt", weights_only=True))
            optimizer.load_state_dict(torch.load(Path(folder) / "optimizer.pt", weights_only=True))
            step = json.loads((Path(folder) / "state.json").read_text())["step"]
    ddp = ray.train.torch.prepare_model(model, parallel_strategy="ddp",
                                        parallel_strategy_kwargs={"find_unused_parameters": True})
    device = ray.train.torch.get_device()
    audit = _audit(config, rank, fresh=step == 0)
    while step < spec.steps:
        epoch, at = divmod(step, per_epoch)
        sampler.epoch, sampler.start = epoch, at * spec.batch_size
        mine = iter(batches)
        for _ in range(at, per_epoch):
            batch, weight = next(mine, None), 1.0
            if batch is None:  # this share ran out a step before the largest one: join with a zero weight, on
                share = sampler.share(epoch)  # a sample fixed by the epoch, so a resumed run joins the same way
                batch, weight = collate([dataset[share[0] if share else 0]], pad_id), 0.0
            seed_everything(spec.seed * 1_000_003 + step * world + rank)
            out = ddp(to_device(batch, device))
            optimizer.zero_grad()
            (out["loss"] * weight).backward()
            optimizer.step()
            step += 1
            metrics = {"step": step, **{k: float(v.detach()) for k, v in out.items()}}
            if audit is not None:
                with audit.open("a", newline="") as fh:
                    csv.writer(fh).writerow([step, epoch, weight, round(metrics["loss"], 6),
                                             " ".join(batch["names"])])
            _report(metrics, step, spec.save_every, spec.steps, rank, model, optimizer)
            if step >= spec.steps:
                break


def _audit(config: TrainConfig, rank: int, fresh: bool) -> Path | None:
    """This worker's audit file (started anew by a fresh run, continued by a resumed one); None off local disk."""
    local = storage.local_path(config.train.output)
    if local is None:
        return None
    path = local / "ranks" / f"rank-{rank}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh or not path.exists():
        path.write_text("step,epoch,weight,loss,samples\n")
    return path


def _report(metrics: dict[str, float], step: int, every: int, steps: int, rank: int, model: Any,
            optimizer: torch.optim.Optimizer) -> None:
    import ray.train

    if step % every and step != steps:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if rank == 0:
            torch.save(model.trainable_state(), Path(folder) / "trainable.pt")
            torch.save(optimizer.state_dict(), Path(folder) / "optimizer.pt")
            (Path(folder) / "state.json").write_text(json.dumps({"step": step}))
            checkpoint = ray.train.Checkpoint.from_directory(folder)
        ray.train.report(metrics, checkpoint=checkpoint)


def train_on_ray(config: TrainConfig, resume: bool = False, name: str = NAME) -> Any:
    """Run the training under Ray Train; returns Ray's `Result`. Ray Train continues a run of the same name and
    storage from its newest checkpoint by itself, so a run that exists is continued with `resume` and refused
    without it (never mixed silently into a fresh start)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage_path = config.ray.storage_path or str(Path(config.train.output).resolve())
    if not resume and storage.exists(storage.join(storage_path, name)):
        raise ValueError(f"{storage.join(storage_path, name)} holds a Ray Train run already: pass --resume to "
                         "continue it, or choose another train.output (ray.storage_path)")
    trainer = TorchTrainer(
        partial(_worker, config.model_dump_json()),
        torch_config=TorchConfig(backend="nccl" if config.ray.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=config.ray.num_workers, use_gpu=config.ray.use_gpu),
        run_config=RunConfig(name=name, storage_path=storage_path),
    )
    return trainer.fit()
