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

ROLES = ("qwen2_vl", "grounding_dino", "sam2_video")

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


@_seeded
def build_grounding_dino(out: Path) -> None:
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(DETECTOR_WORDS)})
    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          image_size=256, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(DETECTOR_WORDS), hidden_size=32, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    config = GroundingDinoConfig(
        backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        num_queries=20, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=32,
    )
    model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 256, "longest_edge": 256})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)


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


BUILDERS: dict[str, Callable[[Path], None]] = {
    "qwen2_vl": build_qwen2_vl,
    "grounding_dino": build_grounding_dino,
    "sam2_video": build_sam2_video,
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
