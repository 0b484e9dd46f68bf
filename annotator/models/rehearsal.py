"""Production-size checkpoints with random weights: the exact architectures and processor settings the production
pipelines name, written with `save_pretrained` and loaded back through the same `from_pretrained` path.

Random weights cost what trained ones cost (same shapes, same FLOPs), so these measure size, memory and our
wrappers' overhead without the hub. Each config is the one transformers' conversion script records for the
published checkpoint; each parameter count is compared with the published one, counted on the meta device
(no memory allocated). Tokenizers are built locally with the published vocabulary sizes and the special-token
ids the models rely on (Grounding DINO masks on BERT's `[CLS]`/`[SEP]`/`.`/`?` ids; CLIP pools on its `eos`).

One departure from the published settings, for measurement only: random weights never clear a trained score
threshold, so the SAM 3 checkpoint keeps detections from score 0 (capped at `SAM3_MAX_OBJECTS` objects), and
the SAM2 and SAM 3 trackers' object-score heads are biased to "present"; otherwise they would find and track
nothing and cost nothing. With every one of SAM 3's 200 queries a detection, its mask NMS (all pairs of
288x288 masks: 26 GB) is off; a trained model passes NMS a handful of detections, whose cost is negligible.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SAM3_MAX_OBJECTS = 16
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
# Words the fake captioner says: whole tokens in both vocabularies (anything else splits into letters).
_WORDS = ["a", "an", "the", "man", "woman", "person", "dog", "cat", "cup", "ball", "car", "tree", "rabbit", "bird",
          "apple", "flower", "grass", "rock", "sky", "table", "hand", "red", "white", "green", "big", "small"]


@dataclass(frozen=True)
class Checkpoint:
    name: str  # the hub id it stands in for
    published: int  # parameters of the published checkpoint
    source: str  # where that figure is published
    config: Callable[[], Any]
    model: Callable[[Any], torch.nn.Module]
    processor: Callable[[], Any]
    after: Callable[[torch.nn.Module], None] | None = None  # adjust random weights before saving
    compared: tuple[str, ...] = ()  # the submodules the published figure counts (empty: the whole model)

    @property
    def folder(self) -> str:
        return self.name.split("/")[-1]


def count_parameters(spec: Checkpoint) -> tuple[int, int]:
    """(all parameters, those the published figure counts) of the architecture, built on the meta device:
    shapes only, no memory."""
    with torch.device("meta"):
        model = spec.model(spec.config())
    total = sum(p.numel() for p in model.parameters())
    if not spec.compared:
        return total, total
    return total, sum(p.numel() for name in spec.compared for p in getattr(model, name).parameters())


def _bert_tokenizer() -> Any:
    """bert-base-uncased's layout (30,522 ids; `[PAD]` 0, `[UNK]` 100, `[CLS]` 101, `[SEP]` 102, `[MASK]` 103,
    `,` 1010, `.` 1012, `?` 1029) with letters and continuation letters, so that any phrase tokenizes."""
    from transformers import BertTokenizerFast

    fixed = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1010: ",", 1012: ".", 1029: "?"}
    words = list(dict.fromkeys([*_LETTERS, *(f"##{c}" for c in _LETTERS), *"0123456789", *_WORDS]))
    vocab: list[str] = []
    spare = iter(words)
    for i in range(30522):
        vocab.append(fixed.get(i) or next(spare, None) or f"[unused{i}]")
    return BertTokenizerFast(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)


def _clip_tokenizer() -> Any:
    """CLIP's layout (49,408 ids; `<|startoftext|>` 49406, `<|endoftext|>` 49407): letters, merges that make
    whole words, the rest unreachable fillers. SAM 3 pads and never truncates text prompts to 32 tokens."""
    from transformers import CLIPTokenizer

    from annotator.models.tiny import clip_pieces

    tokens, merges = clip_pieces(_WORDS)
    tokens += [f"<|filler{i}|>" for i in range(49406 - len(tokens))]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=32)


def _grounding_dino_config(base: bool) -> Any:
    """src/transformers/models/grounding_dino/convert_grounding_dino_to_hf.py, `get_grounding_dino_config`."""
    from transformers import GroundingDinoConfig

    config = GroundingDinoConfig()
    swin = config.backbone_config
    if base:
        swin.window_size, swin.image_size, swin.embed_dim = 12, 384, 128
        swin.depths, swin.num_heads = [2, 2, 18, 2], [4, 8, 16, 32]
    else:
        swin.window_size, swin.image_size, swin.embed_dim = 7, 224, 96
        swin.depths, swin.num_heads = [2, 2, 6, 2], [3, 6, 12, 24]
    swin.out_indices = [2, 3, 4]
    return config


def _grounding_dino_processor() -> Any:
    """The published processor: shortest edge 800, longest 1333, ImageNet mean/std, bert-base-uncased."""
    from transformers import GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    image = GroundingDinoImageProcessorPil(size={"shortest_edge": 800, "longest_edge": 1333})
    return GroundingDinoProcessor(image_processor=image, tokenizer=_bert_tokenizer())


def _sam2_config(large: bool) -> Any:
    """src/transformers/models/sam2_video/convert_sam2_video_to_hf.py, `get_config` for `sam2.1_hiera_*`."""
    from transformers import Sam2HieraDetConfig, Sam2VideoConfig, Sam2VisionConfig

    if large:
        hiera = Sam2HieraDetConfig(hidden_size=144, embed_dim_per_stage=[144, 288, 576, 1152],
                                   num_attention_heads_per_stage=[2, 4, 8, 16], blocks_per_stage=[2, 6, 36, 4],
                                   global_attention_blocks=[23, 33, 43],
                                   window_positional_embedding_background_size=[7, 7],
                                   window_size_per_stage=[8, 4, 16, 8])
        vision = Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[1152, 576, 288, 144])
    else:
        vision = Sam2VisionConfig(backbone_config=Sam2HieraDetConfig())
    return Sam2VideoConfig(vision_config=vision, enable_temporal_pos_encoding_for_object_pointers=True,
                           enable_occlusion_spatial_embedding=True)


def _sam2_processor() -> Any:
    """1024 x 1024 input, ImageNet mean/std (the conversion script's defaults)."""
    from transformers import Sam2ImageProcessor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    return Sam2VideoProcessor(image_processor=Sam2ImageProcessor(), video_processor=Sam2VideoVideoProcessor())


def _sam3_config() -> Any:
    """src/transformers/models/sam3/convert_sam3_to_hf.py: `Sam3Config()` as is (the video model's default
    detector and tracker); detection thresholds lowered for random weights (module docstring)."""
    from transformers import Sam3VideoConfig

    return Sam3VideoConfig(score_threshold_detection=0.0, new_det_thresh=0.0, max_num_objects=SAM3_MAX_OBJECTS,
                           det_nms_thresh=0.0)


def _sam3_processor() -> Any:
    """1008 x 1008 input, mean/std 0.5, CLIP tokenizer padded to 32 (the conversion script's processor)."""
    from transformers import Sam2VideoVideoProcessor, Sam3ImageProcessor, Sam3VideoProcessor

    return Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(),
        video_processor=Sam2VideoVideoProcessor(size={"height": 1008, "width": 1008}, image_mean=[0.5] * 3,
                                                image_std=[0.5] * 3),
        tokenizer=_clip_tokenizer())


def _sam3_present(model: torch.nn.Module) -> None:
    torch.nn.init.constant_(model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias, 5.0)


def _sam2_present(model: torch.nn.Module) -> None:
    torch.nn.init.constant_(model.mask_decoder.pred_obj_score_head.proj_out.bias, 5.0)


def _classes(name: str) -> Callable[[Any], torch.nn.Module]:
    def make(config: Any) -> torch.nn.Module:
        import transformers

        return getattr(transformers, name)(config)

    return make


CHECKPOINTS: dict[str, Checkpoint] = {c.folder: c for c in (
    Checkpoint("IDEA-Research/grounding-dino-base", 233_000_000, "hub model card: 233M params",
               lambda: _grounding_dino_config(base=True), _classes("GroundingDinoForObjectDetection"),
               _grounding_dino_processor),
    Checkpoint("facebook/sam2.1-hiera-large", 224_400_000, "sam2 README, SAM 2.1 checkpoints table: 224.4M",
               lambda: _sam2_config(large=True), _classes("Sam2VideoModel"), _sam2_processor, _sam2_present),
    # 848M is the detector with both necks (SAM 3's and the tracker's); the video tracker's memory attention,
    # memory encoder and mask decoder (11.7M here) are outside it
    Checkpoint("facebook/sam3", 848_000_000, "SAM 3 paper and README: 848M parameters",
               _sam3_config, _classes("Sam3VideoModel"), _sam3_processor, _sam3_present,
               compared=("detector_model", "tracker_neck")),
    Checkpoint("IDEA-Research/grounding-dino-tiny", 172_000_000, "hub model card: 172M params",
               lambda: _grounding_dino_config(base=False), _classes("GroundingDinoForObjectDetection"),
               _grounding_dino_processor),
    Checkpoint("facebook/sam2.1-hiera-tiny", 38_900_000, "sam2 README, SAM 2.1 checkpoints table: 38.9M",
               lambda: _sam2_config(large=False), _classes("Sam2VideoModel"), _sam2_processor, _sam2_present),
)}
PRODUCTION = ("grounding-dino-base", "sam2.1-hiera-large", "sam3")


def build(folder: str, out: str | Path) -> Path:
    """Write one checkpoint (random weights, seed 0) into `out`, atomically; an existing one is kept."""
    spec = CHECKPOINTS[folder]
    out = Path(out)
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        torch.manual_seed(0)
        model = spec.model(spec.config()).eval()
        if spec.after is not None:
            spec.after(model)
        model.save_pretrained(tmp)
        spec.processor().save_pretrained(tmp)
        del model
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
