"""The training loop under Ray Train (`TorchTrainer`): one worker per process, CPU (gloo) or GPU (nccl).

Each worker builds the model and its shard of the data (a `DistributedSampler` over the dataset), wraps the
model with `ray.train.torch.prepare_model` (DDP) and reports its losses; the first worker reports a checkpoint
(the trained tensors, the optimizer state and the step) every `save_every` steps. Ray Train writes checkpoints to
`ray.storage_path` (any filesystem it supports: a local path, `s3://…`, …) or to `train.output` when unset.
"""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch

from annotator.train.config import TrainConfig


def _worker(config_json: str) -> None:
    import ray.train
    import ray.train.torch
    from torch.utils.data import DataLoader, DistributedSampler

    from annotator.train.data import collate, to_device
    from annotator.train.loop import make_dataset, seed_everything
    from annotator.train.model import GroundingModel, load_trainable

    config = TrainConfig.model_validate_json(config_json)
    spec = config.train
    seed_everything(spec.seed)
    model = GroundingModel(config.model.build())
    dataset = make_dataset(config, model)
    context = ray.train.get_context()
    sampler = DistributedSampler(dataset, num_replicas=context.get_world_size(), rank=context.get_world_rank(),
                                 shuffle=True, seed=spec.seed)
    loader = DataLoader(dataset, batch_size=spec.batch_size, sampler=sampler,
                        collate_fn=partial(collate, pad_id=model.processor.tokenizer.pad_token_id))
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
    while step < spec.steps:
        sampler.set_epoch(step // max(1, len(loader)))
        for batch in loader:
            out = ddp(to_device(batch, device))
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()
            step += 1
            metrics = {"step": step, **{k: float(v.detach()) for k, v in out.items()}}
            if step % spec.save_every == 0 or step == spec.steps:
                with tempfile.TemporaryDirectory() as folder:
                    checkpoint = None
                    if context.get_world_rank() == 0:
                        torch.save(model.trainable_state(), Path(folder) / "trainable.pt")
                        torch.save(optimizer.state_dict(), Path(folder) / "optimizer.pt")
                        (Path(folder) / "state.json").write_text(json.dumps({"step": step}))
                        checkpoint = ray.train.Checkpoint.from_directory(folder)
                    ray.train.report(metrics, checkpoint=checkpoint)
            else:
                ray.train.report(metrics)
            if step >= spec.steps:
                break


def train_on_ray(config: TrainConfig, name: str = "annotator-train") -> Any:
    """Run the training under Ray Train; returns Ray's `Result` (metrics, checkpoint, path)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = config.ray.storage_path or str(Path(config.train.output).resolve())
    trainer = TorchTrainer(
        partial(_worker, config.model_dump_json()),
        torch_config=TorchConfig(backend="nccl" if config.ray.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=config.ray.num_workers, use_gpu=config.ray.use_gpu),
        run_config=RunConfig(name=name, storage_path=storage),
    )
    return trainer.fit()
