"""A pixel-grounding video model in Sa2VA's shape: a vision-language model whose hidden state at each `[SEG]`
token prompts SAM2's mask decoder over SAM2 image features of each sampled frame.

The VLM is any `AutoModelForImageTextToText` checkpoint with LoRA adapters (peft; base frozen; the embeddings
of the added `[SEG]`, `<p>`, `</p>` tokens trained); SAM2's image encoder is frozen, its mask decoder trained.
Loss = `lm_weight` x LM cross-entropy + `bce_weight` x mask BCE + `dice_weight` x Dice, on the decoder's
low-resolution masks against the ground truth resized to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from annotator.models import refs
from annotator.train.data import SEG, SPECIAL


@dataclass
class ModelConfig:
    vlm: str = "tiny:qwen2_vl"
    sam: str = "tiny:sam2_video"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_targets: str | list[str] = "all-linear"
    lm_weight: float = 1.0
    bce_weight: float = 2.0
    dice_weight: float = 0.5


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1)
    return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


class GroundingModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForImageTextToText, AutoProcessor, Sam2Model, Sam2Processor

        self.config = config
        vlm_path, sam_path = refs.resolve(config.vlm), refs.resolve(config.sam)
        self.processor = AutoProcessor.from_pretrained(vlm_path)
        self.processor.tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL})
        self.seg_id = int(self.processor.tokenizer.convert_tokens_to_ids(SEG))
        base = AutoModelForImageTextToText.from_pretrained(vlm_path)
        base.resize_token_embeddings(len(self.processor.tokenizer))
        new_ids = self.processor.tokenizer.convert_tokens_to_ids(SPECIAL)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=config.lora_targets,
                          trainable_token_indices=list(new_ids), exclude_modules=r".*visual.*")
        self.vlm = get_peft_model(base, lora)
        self.sam_processor = Sam2Processor.from_pretrained(sam_path)
        self.sam = Sam2Model.from_pretrained(sam_path)
        self.sam.vision_encoder.requires_grad_(False)
        self.sam.prompt_encoder.requires_grad_(False)
        hidden = base.config.get_text_config().hidden_size
        width = self.sam.config.mask_decoder_config.hidden_size
        self.project = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, width))

    def seg_states(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Per sample, the last layer's hidden states at its [SEG] tokens, in order."""
        return [hidden[b][input_ids[b] == self.seg_id] for b in range(len(input_ids))]

    def masks(self, sam_pixels: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """(N_obj, T, h, w) mask logits: each prompt embedding decoded on each of the T frames."""
        with torch.no_grad():
            features = self.sam.get_image_embeddings(sam_pixels)  # frozen encoder: (T, C, h, w) per level
        frames = sam_pixels.shape[0]
        position = self.sam.get_image_wide_positional_embeddings().repeat(frames, 1, 1, 1)
        sparse = self.project(prompts).unsqueeze(1).unsqueeze(0).expand(frames, -1, -1, -1)  # (T, N, 1, C)
        dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            frames, -1, *features[-1].shape[-2:])
        low_res, *_ = self.sam.mask_decoder(image_embeddings=features[-1], image_positional_embeddings=position,
                                            sparse_prompt_embeddings=sparse.to(features[-1].dtype),
                                            dense_prompt_embeddings=dense, multimask_output=False,
                                            high_resolution_features=features[:-1])
        return low_res[:, :, 0].transpose(0, 1)  # (T, N, h, w) -> (N, T, h, w)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        vlm_inputs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        out = self.vlm(**vlm_inputs, output_hidden_states=True)
        states = self.seg_states(out.hidden_states[-1], batch["input_ids"])
        bce, dice, count = out.loss.new_zeros(()), out.loss.new_zeros(()), 0
        for b, (prompt, target, pixels) in enumerate(zip(states, batch["masks"], batch["sam_pixel_values"],
                                                         strict=True)):
            if len(prompt) != len(target):
                raise ValueError(f"{batch['names'][b]}: {len(prompt)} {SEG} tokens in the input, {len(target)} masks")
            if not len(prompt):
                continue
            logits = self.masks(pixels, prompt)
            goal = F.interpolate(target.float(), size=logits.shape[-2:], mode="area")
            bce = bce + F.binary_cross_entropy_with_logits(logits, goal)
            dice = dice + dice_loss(logits.flatten(0, 1), goal.flatten(0, 1))
            count += 1
        bce, dice = bce / max(count, 1), dice / max(count, 1)
        c = self.config
        loss = c.lm_weight * out.loss + c.bce_weight * bce + c.dice_weight * dice
        return {"loss": loss, "lm": out.loss.detach(), "bce": bce.detach(), "dice": dice.detach()}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What training changes (adapters, new token rows, projection, mask decoder): all a checkpoint holds."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def load_trainable(model: GroundingModel, state: dict[str, Any]) -> None:
    missing = set(model.trainable_state()) - set(state)
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trained tensors (e.g. {sorted(missing)[0]})")
    model.load_state_dict(state, strict=False)
