"""Tiny random-weight checkpoints of every model role, saved with `save_pretrained`.

They exist so tests and the offline demo exercise the exact `from_pretrained` path that production
checkpoints take. Random weights mean random text, boxes and masks: use them for structure, not quality.
Tokenizers are built locally (no hub). Config constraints are in DESIGN.md §9b.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

ROLES = ("qwen2_vl", "grounding_dino", "mm_grounding_dino", "sam2_video", "sam3_video")

# A small word vocabulary: the tiny VLM can only "say" these, so demo captions contain nameable things.
CAPTION_WORDS = [
    "<unk>", "a", "an", "the", "and", "with", "on", "in", "near", ".", ",", "user", "assistant",
    "describe", "video", "detail", "rabbit", "butterfly", "tree", "bird", "apple", "flower", "grass",
    "rock", "sky", "hill", "sits", "runs", "looks", "flies", "big", "small", "white", "green",
]
DETECTOR_WORDS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "an", "the", "of", "in", "red",
    "man", "cup", "dog", "cat", "person", "ball", "car", "rabbit", "butterfly", "tree", "bird", "apple",
    "flower", "grass", "rock", "sky", "hill", "white", "green", "big", "small", "hand", "table",
]


def _seeded(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    def wrapper(out: Path) -> None:
        torch.manual_seed(0)
        fn(out)

    return wrapper


@_seeded
def build_qwen2_vl(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    vocab = {t: i for i, t in enumerate(special + CAPTION_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<unk>",
        additional_special_tokens=special,
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {% for c in m['content'] %}"
        "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}"
    )
    config = Qwen2VLConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
            pad_token_id=vocab["<|endoftext|>"],
        ),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size, do_sample_frames=False),
        tokenizer=tokenizer, chat_template=tokenizer.chat_template,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _grounding_dino_family(out: Path, config_cls: type, model_cls: type) -> None:
    """Grounding DINO and MM-Grounding-DINO share config fields, processor and tokenizer."""
    from transformers import BertConfig, BertTokenizerFast, GroundingDinoProcessor, SwinConfig
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(DETECTOR_WORDS)})
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          image_size=256, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(DETECTOR_WORDS), hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    config = config_cls(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=20, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=32,
    )
    model = model_cls(config).eval()
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 256, "longest_edge": 256})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)


@_seeded
def build_grounding_dino(out: Path) -> None:
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection

    _grounding_dino_family(out, GroundingDinoConfig, GroundingDinoForObjectDetection)


@_seeded
def build_mm_grounding_dino(out: Path) -> None:
    from transformers import MMGroundingDinoConfig, MMGroundingDinoForObjectDetection

    _grounding_dino_family(out, MMGroundingDinoConfig, MMGroundingDinoForObjectDetection)


@_seeded
def build_sam2_video(out: Path) -> None:
    from transformers import (
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
        Sam2VisionConfig,
    )
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )

    size, hidden = 128, 128  # hidden: a multiple of 64 above 64 (memory attention hard-codes 64 kv dims)
    backbone = Sam2HieraDetConfig(
        hidden_size=12, image_size=size, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[12, 24, 48, 96],
        num_attention_heads_per_stage=[1, 1, 2, 2], global_attention_blocks=[3],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone, backbone_channel_list=[96, 48, 24, 12],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2], fpn_hidden_size=hidden,
    )
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=hidden, image_size=size, patch_size=16,
                                                           mask_input_channels=8),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=hidden, mlp_dim=64, num_hidden_layers=1,
                                                       num_attention_heads=2, iou_head_hidden_dim=32),
        image_size=size, memory_attention_hidden_size=hidden, memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64, mask_downsampler_embed_dim=hidden, memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32, memory_attention_rope_feat_sizes=[size // 16] * 2,
        num_maskmem=3,
    )
    model = Sam2VideoModel(config).eval()
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size={"height": size, "width": size},
                                           mask_size={"height": size // 4, "width": size // 4}),
        video_processor=Sam2VideoVideoProcessor(size={"height": size, "width": size}),
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def clip_pieces(words: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """CLIP BPE tokens and merges built locally: every letter (any phrase tokenizes), plus the merges that make
    each of `words` one token. Callers place the special tokens (their ids differ between checkpoints)."""
    tokens = {c + end: None for end in ("", "</w>") for c in "abcdefghijklmnopqrstuvwxyz"}
    merges = []
    for word in words:
        acc, *rest = [*word[:-1], word[-1] + "</w>"]
        for piece in rest:
            merges.append((acc, piece))
            acc += piece
            tokens[acc] = None
    return list(tokens), merges


def _clip_tokenizer(words: list[str]) -> object:
    """A CLIP BPE tokenizer built locally, its special tokens first (`eos` doubles as pad)."""
    from transformers import CLIPTokenizer

    tokens, merges = clip_pieces(words)
    vocab = ["<|startoftext|>", "<|endoftext|>", *tokens]
    return CLIPTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, merges=merges)


@_seeded
def build_sam3_video(out: Path) -> None:
    """SAM 3 video (text phrases -> detect + track) whose directory also loads as Sam3TrackerVideoModel."""
    from transformers import (
        CLIPTextConfig,
        Sam2VideoVideoProcessor,
        Sam3Config,
        Sam3DETRDecoderConfig,
        Sam3DETREncoderConfig,
        Sam3GeometryEncoderConfig,
        Sam3ImageProcessor,
        Sam3MaskDecoderConfig,
        Sam3TrackerVideoConfig,
        Sam3TrackerVideoMaskDecoderConfig,
        Sam3TrackerVideoPromptEncoderConfig,
        Sam3VideoConfig,
        Sam3VideoModel,
        Sam3VideoProcessor,
        Sam3VisionConfig,
        Sam3ViTConfig,
    )

    size, patch, hidden = 112, 14, 128  # size % patch == 0; one width (a multiple of 64 above 64) everywhere
    grid = size // patch

    def vision() -> Sam3VisionConfig:  # head_dim % 4 == 0 (2D RoPE); ViT image_size = the processor's size
        vit = Sam3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=size, patch_size=patch, pretrain_image_size=size, window_size=4,
                            global_attn_indexes=[1])
        return Sam3VisionConfig(backbone_config=vit, fpn_hidden_size=hidden,
                                backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2])

    words = sorted({w for w in CAPTION_WORDS + DETECTOR_WORDS if w.isalpha() and w.islower()})
    tokenizer = _clip_tokenizer(words)
    text = CLIPTextConfig(vocab_size=len(tokenizer.get_vocab()), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=32, projection_dim=32,
                          bos_token_id=0, eos_token_id=1, pad_token_id=1)  # >= 32: text prompts are padded to 32
    layers = {"hidden_size": hidden, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    detector = Sam3Config(
        vision_config=vision(), text_config=text, geometry_encoder_config=Sam3GeometryEncoderConfig(**layers),
        detr_encoder_config=Sam3DETREncoderConfig(**layers),
        detr_decoder_config=Sam3DETRDecoderConfig(**layers, num_queries=2),  # detections per phrase per frame
        mask_decoder_config=Sam3MaskDecoderConfig(hidden_size=hidden, num_attention_heads=2, num_upsampling_stages=2))
    tracker = Sam3TrackerVideoConfig(
        vision_config=vision(), image_size=size,  # image_size is required: left out it becomes 1008
        prompt_encoder_config=Sam3TrackerVideoPromptEncoderConfig(hidden_size=hidden, image_size=size,
                                                                  patch_size=patch, mask_input_channels=8),
        mask_decoder_config=Sam3TrackerVideoMaskDecoderConfig(hidden_size=hidden, mlp_dim=64, num_hidden_layers=1,
                                                              num_attention_heads=2, iou_head_hidden_dim=32),
        memory_attention_hidden_size=hidden, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=32, memory_encoder_hidden_size=hidden,
        memory_encoder_output_channels=64, mask_downsampler_embed_dim=hidden, memory_fuser_embed_dim=hidden,
        memory_fuser_intermediate_dim=64, num_maskmem=3)
    # random weights score every query ~0.25: thresholds at 0 so detections exist; ids capped
    config = Sam3VideoConfig(detector_config=detector, tracker_config=tracker, low_res_mask_size=4 * grid,
                             score_threshold_detection=0.0, new_det_thresh=0.0, max_num_objects=6,
                             hotstart_delay=2, hotstart_unmatch_thresh=2, hotstart_dup_thresh=2)
    model = Sam3VideoModel(config).eval()
    # a random object-score head says "absent" and every track dies after its first frame: bias it to present
    torch.nn.init.constant_(model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias, 5.0)
    processor = Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size={"height": size, "width": size},
                                           mask_size={"height": 4 * grid, "width": 4 * grid}),
        video_processor=Sam2VideoVideoProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3,
                                                image_std=[0.5] * 3),
        tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "qwen2_vl": build_qwen2_vl,
    "grounding_dino": build_grounding_dino,
    "mm_grounding_dino": build_mm_grounding_dino,
    "sam2_video": build_sam2_video,
    "sam3_video": build_sam3_video,
}


def build(role: str, out: str | Path) -> Path:
    """Build one role into `out` (atomically: a crash leaves no half-written checkpoint)."""
    if role not in BUILDERS:
        raise KeyError(f"unknown tiny model {role!r}; known: {', '.join(ROLES)}")
    out = Path(out)
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        BUILDERS[role](tmp)
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "config.json").exists():  # lost a race to another builder: theirs is complete
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_all(out_dir: str | Path) -> dict[str, Path]:
    return {role: build(role, Path(out_dir) / role) for role in ROLES}
